"""`service.event_loop` / `--event-loop` (server/run.py loop_factory, issue 13): a real `origin-proxy serve` process on
asyncio's loop and on uvloop (the optional `speed` extra; skipped where it is not installed) serves a clip that
ffmpeg decodes, the whole file byte for byte (sendfile on asyncio, reads and writes on uvloop, which has no
loop.sendfile) and a Range of it; and the process says which loop it runs.
"""

from __future__ import annotations

import http.client
import sys

import pytest

import mediatools
from origin_proxy.config import ConfigError
from origin_proxy.server.run import loop_factory


@pytest.fixture(scope="module")
def movie(tmp_path_factory):
    path = tmp_path_factory.mktemp("event_loop") / "movie.mp4"
    mediatools.make_test_movie(path, 6)  # moov at the end: ?start= rewrites the head
    return path


def _get(svc, target: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(svc.connect_host, svc.port, timeout=30)
    try:
        conn.request("GET", target, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.mark.parametrize("event_loop", ["asyncio", "uvloop"])
def test_each_loop_serves_clips_files_and_ranges(serve_process, movie, tmp_path, event_loop):
    if event_loop == "uvloop":
        pytest.importorskip("uvloop")
    svc = serve_process({"/files/": movie.parent}, "--event-loop", event_loop, config="log_level: INFO\n")
    status, clip = _get(svc, "/files/movie.mp4?start=2")
    assert status == 200
    out = tmp_path / "clip.mp4"
    out.write_bytes(clip)
    assert mediatools.decode_errors(out) == ""
    assert abs(mediatools.duration_s(out) - 4) < 0.1

    data = movie.read_bytes()
    assert _get(svc, "/files/movie.mp4") == (200, data)
    assert _get(svc, "/files/movie.mp4", {"Range": "bytes=1000-70999"}) == (206, data[1000:71000])
    svc.stop()
    expected = "uvloop" if event_loop == "uvloop" else "asyncio"
    assert f"event loop: {expected}" in svc.stderr_path.read_text()


def test_uvloop_asked_for_but_missing_is_a_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "uvloop", None)  # `import uvloop` raises ImportError
    with pytest.raises(ConfigError, match="uvloop is not installed"):
        loop_factory("uvloop")
    assert loop_factory("auto") is None  # auto falls back to asyncio's loop
    assert loop_factory("asyncio") is None
