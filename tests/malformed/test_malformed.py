"""Hostile and out-of-scope inputs over HTTP (STYLE §2.7): every file in ../shared/media/malformed/ (with the
mp4ff fuzz corpus) and ../shared/media/fmp4/, requested as a clip (?start=, ?end=) and as is.

Each answer must be a mapped status (never a 500), arrive within 10 s, carry exactly Content-Length bytes, and,
when a clip is answered 200, be a movie ffprobe opens. The edge must keep serving afterwards.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

import mediatools as mt
from conftest import MEDIA_ROOT

HOSTILE = sorted(
    p.relative_to(MEDIA_ROOT).as_posix()
    for folder in ("malformed", "fmp4")
    for p in (MEDIA_ROOT / folder).rglob("*")
    if p.is_file()
)
QUERIES = {"start": "?start=0.5", "end": "?end=0.5", "whole": ""}
MAPPED = {200, 206, 400, 404, 415, 501, 502}
GOOD_CLIP = "/files/mp4/sample.mp4?start=0.5"
TIMEOUT_S = 10


async def _fetch(client, target: str) -> tuple[int, str, bytes]:
    """(status, Content-Type, body) of one GET, failing on a hang, a missing Content-Length or a short body."""
    async with asyncio.timeout(TIMEOUT_S):
        resp = await client.get(target)
        try:
            body = await resp.read()
        except aiohttp.ClientPayloadError as exc:
            pytest.fail(f"{target}: {resp.status} with a body shorter than Content-Length {resp.content_length}: {exc}")
    assert "Content-Length" in resp.headers, f"{target}: {resp.status} without Content-Length"
    assert len(body) == int(resp.headers["Content-Length"]), target
    return resp.status, resp.headers.get("Content-Type", ""), body


async def _still_serving(client, tmp_path) -> None:
    async with asyncio.timeout(TIMEOUT_S):
        health = await client.get("/healthz")
        assert health.status == 200 and await health.text() == "ok\n"
    status, _, body = await _fetch(client, GOOD_CLIP)
    assert status == 200
    out = tmp_path / "good.mp4"
    out.write_bytes(body)
    assert mt.decode_errors(out) == ""


@pytest.mark.parametrize("query", list(QUERIES), ids=list(QUERIES))
@pytest.mark.parametrize("name", HOSTILE, ids=HOSTILE)
async def test_hostile_file_gets_a_mapped_answer(edge, name, query, tmp_path):
    target = f"/files/{name}{QUERIES[query]}"
    status, content_type, body = await _fetch(edge.client, target)
    assert status in MAPPED, f"{target}: {status} {body[:200]!r}"
    if status >= 400:
        assert content_type.startswith("text/plain"), (target, content_type)
        assert body.endswith(b"\n") and b"\n" not in body[:-1], (target, body[:200])
    elif query == "whole":
        assert body == (MEDIA_ROOT / name).read_bytes()  # passed through as it is
    else:
        assert status == 200, f"{target}: {status} without a Range header"
        out = tmp_path / "clip.mp4"
        out.write_bytes(body)
        assert mt.ffprobe_streams(out), f"{target}: ffprobe finds no stream in the 200 clip"
    await _still_serving(edge.client, tmp_path)


async def test_edge_keeps_serving_after_every_hostile_file(edge, tmp_path):
    """All of the above through one app (one metadata cache), then a health check and a good clip."""
    outcomes = {}
    for name in HOSTILE:
        for query in QUERIES.values():
            status, _, _ = await _fetch(edge.client, f"/files/{name}{query}")
            outcomes[name + query] = status
    assert {t: s for t, s in outcomes.items() if s not in MAPPED} == {}
    await _still_serving(edge.client, tmp_path)
