"""origin_proxy behind real CDN edges started from the configs shipped in docs/edges/ (issue 17): Apache Traffic
Server 9.2, Varnish 7.1 and nginx 1.22 proxy_cache (Debian 12's packages; tests/edges/edges.py starts them).

One `origin_proxy serve` for the module, with a host-qualified rule (`from: http://cdn.example.com/vod/`, which
needs ATS's pristine_host_hdr), 2 s segments, manifests `max-age=2` (so expiry is quick to reach), CORS for two
listed origins (answers carry `Vary: Origin`) and a JSON access log, which tells what reached the origin. One edge
process per edge kind (the module fixture is parametrized). Every viewer request carries `Host: cdn.example.com`.
Per edge:
- a clip: the body through the edge is the origin's, byte for byte, and the second GET does not reach the origin;
- a Range of the clip is the origin's bytes with its Content-Range;
- HLS (master, media playlist, init, segment), DASH (MPD) and Smooth (Manifest, fragment) are the origin's bytes,
  and a segment fetched again is served from the edge's cache;
- an expired manifest is revalidated: the origin answers 304 and the edge serves the same body;
- the replace-the-source scenario (tests/replaced_source.py) with the edge keeping our Cache-Control: A's init and
  segment 5 fetched through the edge decode clean together; after the file is replaced, A's segment 6 answers 410
  (never B's bytes); once the manifests expire, the new playlist's init + segments 5 and 6 decode clean and are
  B's pictures;
- CORS for two Origins through the edge: each gets its own Access-Control-Allow-Origin (no Origin's cached answer
  handed to the other), preflights allow Range.
Skipped only when an edge's Debian package is not installed (scripts/_bootstrap.sh installs all three).
About 20 s per edge on 2 cores.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import mediatools as mt
from edges import STARTERS, missing, start
from replaced_source import SEGMENT_S, decodes_clean, http_get, install, make_versions, track_urls
from serve_process import ServeProcess

HOST = "cdn.example.com"
PAGE_A = "https://player-a.example"
PAGE_B = "https://player-b.example"
MANIFEST_MAX_AGE_S = 2
CLIP = "/vod/movie.mp4?start=3&end=9"


@pytest.fixture(scope="module")
def origin(tmp_path_factory):
    root = tmp_path_factory.mktemp("edges-origin")
    media = root / "media"
    media.mkdir()
    a, b = make_versions(root)
    install(a, media / "movie.mp4")
    rules = (f"remap:\n  - from: http://{HOST}/vod/\n    to: file://{media}/\n"
             f"    segment_duration_s: {SEGMENT_S}\n")
    config = {"access_log": "json", "cache_control_manifests": f"public, max-age={MANIFEST_MAX_AGE_S}",
              "cors": {"allow_origins": [PAGE_A, PAGE_B]}}
    with ServeProcess(root / "serve", rules, config=config) as svc:
        svc.media, svc.version_a, svc.version_b = media, a, b
        yield svc


@pytest.fixture(scope="module", params=sorted(STARTERS))
def edge(request, origin):
    package = missing(request.param)
    if package is not None:
        pytest.skip(f"{request.param}: Debian package {package} is not installed (scripts/_bootstrap.sh installs it)")
    started = start(request.param, origin.port)
    yield started
    started.stop()


def _via_edge(edge, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    return http_get(edge.base_url + path, {"Host": HOST, **(headers or {})})


def _at_origin(origin, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    return http_get(origin.base_url + path, {"Host": HOST, **(headers or {})})


def _origin_log(origin, path: str) -> list[dict]:
    """The origin's access-log entries for `path` (with its query), in order."""
    entries = []
    for line in origin.stderr().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("path") == path:
                entries.append(entry)
    return entries


def _settled_count(origin, path: str) -> int:
    """How many requests for `path` reached the origin, once its access log stopped growing for 0.5 s (it
    writes a line after the body went out, so a count read at once could miss the last one). Bounded: 5 s."""
    count, stable_since, deadline = -1, time.monotonic(), time.monotonic() + 5
    while time.monotonic() < deadline:
        now = len(_origin_log(origin, path))
        if now != count:
            count, stable_since = now, time.monotonic()
        elif time.monotonic() - stable_since >= 0.5:
            break
        time.sleep(0.1)
    return count


def test_clip_is_identical_and_cached(edge, origin):
    status, _, theirs = _at_origin(origin, CLIP)
    assert status == 200 and len(theirs) > 100_000
    first = _via_edge(edge, CLIP)
    assert first[0] == 200 and first[2] == theirs, edge.logs()
    reached = _settled_count(origin, CLIP)
    second = _via_edge(edge, CLIP)
    assert second[0] == 200 and second[2] == theirs
    assert _settled_count(origin, CLIP) == reached, "the second GET reached the origin: no cache hit"


def test_range_of_a_clip(edge, origin):
    _, _, whole = _at_origin(origin, CLIP)
    for first_byte, last_byte in ((1000, 4999), (len(whole) - 500, len(whole) - 1)):
        status, headers, body = _via_edge(edge, CLIP, {"Range": f"bytes={first_byte}-{last_byte}"})
        assert status == 206, (status, edge.logs())
        assert body == whole[first_byte:last_byte + 1]
        assert headers["content-range"] == f"bytes {first_byte}-{last_byte}/{len(whole)}"


def test_hls_dash_smooth_pieces_are_identical_and_cached(edge, origin):
    base = "/vod/movie.mp4"
    init, segments = track_urls(lambda url: _at_origin(origin, url), base, "v1")
    _, _, smooth_manifest = _at_origin(origin, f"{base}/Manifest")
    url_template = smooth_manifest.split(b'Url="', 1)[1].split(b'"', 1)[0].decode()
    fragment = f"{base}/" + url_template.replace("{bitrate}", _first_bitrate(smooth_manifest)).replace(
        "{start time}", "0")
    pieces = [f"{base}/master.m3u8", f"{base}/cmaf1/v1/playlist.m3u8", init, segments[2], f"{base}/manifest.mpd",
              f"{base}/Manifest", fragment]
    for path in pieces:
        status, _, theirs = _at_origin(origin, path)
        assert status == 200, (path, status)
        ours = _via_edge(edge, path)
        assert ours[0] == 200 and ours[2] == theirs, (path, ours[0], edge.logs())
    reached = _settled_count(origin, segments[2])
    assert _via_edge(edge, segments[2])[0] == 200
    assert _settled_count(origin, segments[2]) == reached, "a segment fetched again reached the origin"


def _first_bitrate(manifest: bytes) -> str:
    video = manifest.split(b'Type="video"', 1)[1]
    return video.split(b'Bitrate="', 1)[1].split(b'"', 1)[0].decode()


def test_expired_manifest_is_revalidated_with_304(edge, origin):
    path = "/vod/movie.mp4/manifest.mpd"
    first = _via_edge(edge, path)
    assert first[0] == 200
    time.sleep(MANIFEST_MAX_AGE_S + 1.5)  # let it expire at the edge
    again = _via_edge(edge, path)
    assert again[0] == 200 and again[2] == first[2]
    # The origin writes its access-log line after the body went out: give it a moment (bounded).
    deadline = time.monotonic() + 5
    while 304 not in (statuses := [entry["status"] for entry in _origin_log(origin, path)]) \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    assert 304 in statuses, (statuses, edge.logs())


def test_replacing_the_source_through_the_edge(edge, origin, tmp_path):
    name = f"replace-{edge.kind}.mp4"
    install(origin.version_a, origin.media / name, 0)
    base = f"/vod/{name}"
    get = lambda url: _via_edge(edge, url)  # noqa: E731
    init_a, segments_a = track_urls(get, base, "v1")
    status, _, init_bytes = get(init_a)
    assert status == 200
    status, _, seg5_a = get(segments_a[4])
    assert status == 200

    install(origin.version_b, origin.media / name, 1)
    status, headers, body = get(segments_a[5])
    assert status == 410, (status, headers, edge.logs())
    assert _via_edge(edge, segments_a[5])[0] == 410  # not cached as anything else either
    assert get(init_a)[2] == init_bytes  # the cached init still is A's: its URL names A
    errors, frames = decodes_clean(tmp_path, "a.mp4", [init_bytes, seg5_a])
    assert errors == "" and frames > 0

    time.sleep(MANIFEST_MAX_AGE_S + 1.5)  # the playlist the edge holds expires
    init_b, segments_b = track_urls(get, base, "v1")
    assert init_b != init_a
    pieces = [get(url) for url in (init_b, segments_b[4], segments_b[5])]
    assert [status for status, _, _ in pieces] == [200, 200, 200]
    errors, frames = decodes_clean(tmp_path, "b.mp4", [body for _, _, body in pieces])
    assert errors == "" and frames > 0
    stream = next(s for s in mt.ffprobe_streams(tmp_path / "b.mp4") if s["codec_type"] == "video")
    assert (stream["width"], stream["height"]) == (352, 288)


def test_cors_for_two_origins_through_the_edge(edge, origin):
    path = "/vod/movie.mp4/master.m3u8"
    for page in (PAGE_A, PAGE_B, PAGE_A, PAGE_B):
        status, headers, _ = _via_edge(edge, path, {"Origin": page})
        assert status == 200
        assert headers.get("access-control-allow-origin") == page, (page, headers, edge.logs())
        assert "origin" in headers.get("vary", "").lower()
    status, headers, _ = _via_edge(edge, path, {"Origin": "https://elsewhere.example"})
    assert status == 200 and "access-control-allow-origin" not in headers
    status, headers, _ = http_get(edge.base_url + path, {"Host": HOST, "Origin": PAGE_B})
    assert headers.get("access-control-allow-origin") == PAGE_B
    preflight = _options(edge, path, {"Origin": PAGE_A, "Access-Control-Request-Method": "GET",
                                      "Access-Control-Request-Headers": "range"})
    assert preflight[0] == 204 and preflight[1].get("access-control-allow-origin") == PAGE_A, preflight
    assert "range" in preflight[1].get("access-control-allow-headers", "").lower()


def _options(edge, path: str, headers: dict) -> tuple[int, dict]:
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", edge.port, timeout=20)
    try:
        conn.request("OPTIONS", path, headers={"Host": HOST, **headers})
        response = conn.getresponse()
        response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()
