"""CORS over HTTP (server/cors.py): `*` by default on media, manifests, segments, clips and their errors; a
preflight allowing Range; a configured origin list answered per Origin with `Vary: Origin`; `cors: off` sends
nothing and leaves OPTIONS at 405. The browser side of the same contract is tests/players/test_cors_players.py."""

from __future__ import annotations

import os

from conftest import MEDIA_ROOT

BBB = "mp4/bbb_prog_10s.mp4"
RULES = [{"from": "/files/", "to": "file://" + os.fspath(MEDIA_ROOT) + "/"}]
PAGE = "https://player.example.com"
OTHER = "https://other.example.net"
EXPOSED = {"content-length", "content-range", "etag"}


def _exposed(headers) -> set[str]:
    return {name.strip().lower() for name in headers.get("Access-Control-Expose-Headers", "").split(",")}


async def test_wildcard_on_every_media_answer_without_vary(edge_client):
    client = await edge_client(RULES)
    for path in (f"/files/{BBB}?start=2&end=4", f"/files/{BBB}/master.m3u8", f"/files/{BBB}/manifest.mpd",
                 f"/files/{BBB}/Manifest", f"/files/{BBB}/cmaf1/v1/init.mp4", "/files/mp4/missing.mp4"):
        for method in ("GET", "HEAD"):
            resp = await client.request(method, path, headers={"Origin": PAGE})
            await resp.read()
            assert resp.headers.get("Access-Control-Allow-Origin") == "*", (method, path, resp.status)
            assert EXPOSED <= _exposed(resp.headers), (path, resp.headers)
            assert "origin" not in resp.headers.get("Vary", "").lower(), path
    # A shared cache stores whatever it got first; with `*` the answer without Origin is the same one.
    plain = await client.get(f"/files/{BBB}/master.m3u8")
    assert plain.headers["Access-Control-Allow-Origin"] == "*"
    missing = await client.get("/files/mp4/missing.mp4", headers={"Origin": PAGE})
    assert missing.status == 404


async def test_range_answer_exposes_content_range(edge_client):
    client = await edge_client(RULES)
    resp = await client.get(f"/files/{BBB}?start=2&end=4", headers={"Origin": PAGE, "Range": "bytes=0-99"})
    assert resp.status == 206 and len(await resp.read()) == 100
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert resp.headers["Content-Range"].startswith("bytes 0-99/") and EXPOSED <= _exposed(resp.headers)
    etag = resp.headers["ETag"]
    revalidated = await client.get(f"/files/{BBB}?start=2&end=4", headers={"Origin": PAGE, "If-None-Match": etag})
    assert revalidated.status == 304 and revalidated.headers["Access-Control-Allow-Origin"] == "*"


async def test_preflight_allows_range(edge_client):
    client = await edge_client(RULES)
    resp = await client.options(f"/files/{BBB}/cmaf1/v1/1.m4s", headers={
        "Origin": PAGE, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "range"})
    assert resp.status == 204 and await resp.read() == b""
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    methods = {m.strip() for m in resp.headers["Access-Control-Allow-Methods"].split(",")}
    assert {"GET", "HEAD", "OPTIONS"} <= methods and "POST" not in methods
    assert "range" in {h.strip().lower() for h in resp.headers["Access-Control-Allow-Headers"].split(",")}
    assert int(resp.headers["Access-Control-Max-Age"]) > 0
    # An OPTIONS that is no preflight is still a method media does not take.
    plain = await client.options(f"/files/{BBB}")
    assert plain.status == 405 and plain.headers["Allow"] == "GET, HEAD"


async def test_origin_list_answers_per_origin_with_vary(edge_client):
    client = await edge_client(RULES, cors={"allow_origins": [PAGE]})
    listed = await client.get(f"/files/{BBB}/master.m3u8", headers={"Origin": PAGE})
    assert listed.headers["Access-Control-Allow-Origin"] == PAGE and "Origin" in listed.headers["Vary"]
    other = await client.get(f"/files/{BBB}/master.m3u8", headers={"Origin": OTHER})
    assert other.status == 200 and "Access-Control-Allow-Origin" not in other.headers
    assert "Origin" in other.headers["Vary"]  # a cache must not hand this answer to PAGE, nor PAGE's to OTHER
    none = await client.get(f"/files/{BBB}/master.m3u8")
    assert "Access-Control-Allow-Origin" not in none.headers and "Origin" in none.headers["Vary"]
    refused = await client.options(f"/files/{BBB}/master.m3u8", headers={
        "Origin": OTHER, "Access-Control-Request-Method": "GET"})
    assert refused.status == 204 and "Access-Control-Allow-Origin" not in refused.headers


async def test_off_sends_nothing(edge_client):
    client = await edge_client(RULES, cors=False)
    resp = await client.get(f"/files/{BBB}/master.m3u8", headers={"Origin": PAGE})
    assert resp.status == 200 and not any(h.lower().startswith("access-control-") for h in resp.headers)
    preflight = await client.options(f"/files/{BBB}/master.m3u8", headers={
        "Origin": PAGE, "Access-Control-Request-Method": "GET"})
    assert preflight.status == 405


async def test_not_media_paths_get_nothing(edge_client):
    client = await edge_client(RULES)
    for path in ("/healthz", "/metrics"):
        resp = await client.get(path, headers={"Origin": PAGE})
        assert resp.status == 200 and "Access-Control-Allow-Origin" not in resp.headers, path
