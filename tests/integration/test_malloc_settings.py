"""`service.malloc` (server/malloc.py, issue 13): each serving process sets glibc's mmap and trim thresholds at start,
so the temporaries of a cold moov parse come back from the heap instead of being mapped and faulted in again on
every request. Outcome checked from outside the process: its minor page faults over a run of cold `?start=`
requests (metadata cache of 1 byte, so every request parses), read from /proc, with the thresholds against glibc's
defaults; every answer is a 206 of the asked length, and an ffmpeg decode of one full clip is clean.
"""

from __future__ import annotations

import http.client
import subprocess
import sys

import pytest

import mediatools

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt and /proc")

COLD = "log_level: INFO\ncache:\n  max_bytes: 1\n"
DEFAULTS = COLD + "malloc:\n  mmap_threshold_bytes: 0\n  trim_threshold_bytes: 0\n"
REQUESTS = 12


@pytest.fixture(scope="module")
def movie(tmp_path_factory):
    """120 s at 250 frames/s (30000 video samples, B-frames so there is a ctts, as x264 makes by default) + AAC:
    sample tables big enough that the parse's temporaries are over glibc's default 128 KiB mmap threshold. Without
    B-frames this round's parse (stbl.py) no longer makes temporaries that glibc maps: 2-11 faults for 12 requests
    either way, against ~2300 with them under the defaults."""
    path = tmp_path_factory.mktemp("malloc") / "many.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=64x36:r=250", "-f", "lavfi",
                    "-i", "sine=r=48000", "-t", "120", "-c:v", "libx264", "-preset", "ultrafast", "-bf", "3", "-g", "250",
                    "-c:a", "aac", "-b:a", "32k", "-movflags", "+faststart", str(path)], check=True, timeout=120)
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=has_b_frames",
                            "-of", "csv=p=0", str(path)], check=True, capture_output=True, text=True, timeout=60)
    assert int(probe.stdout.strip()) > 0, "the test movie needs B-frames (a ctts)"
    return path


def _minor_faults(pid: int) -> int:
    """minflt of /proc/PID/stat (field 10), every thread included."""
    fields = open(f"/proc/{pid}/stat").read().rpartition(")")[2].split()
    return int(fields[7])


def _cold_run(serve_process, movie, config: str) -> tuple[int, str]:
    """Minor faults of a serve process over REQUESTS cold seeks (after two untimed ones), and its stderr."""
    svc = serve_process({"/files/": movie.parent}, config=config)
    conn = http.client.HTTPConnection(svc.connect_host, svc.port, timeout=30)

    def seek(start: float) -> None:
        conn.request("GET", f"/files/{movie.name}?start={start:.3f}", headers={"Range": "bytes=0-65535"})
        response = conn.getresponse()
        assert (response.status, len(response.read())) == (206, 65536)

    for warm in (3.0, 50.0, 77.0, 91.0, 13.0, 66.0):  # the first parses grow the heaps either way
        seek(warm)
    before = _minor_faults(svc.pid)
    for k in range(REQUESTS):
        seek(5.0 + 9.1 * k)
    faults = _minor_faults(svc.pid) - before
    conn.close()
    svc.stop()
    return faults, svc.stderr_path.read_text()


def test_thresholds_stop_the_cold_parse_faulting(serve_process, movie, tmp_path):
    tuned, tuned_log = _cold_run(serve_process, movie, COLD)
    default, default_log = _cold_run(serve_process, movie, DEFAULTS)
    assert "malloc thresholds: {'mmap_threshold_bytes': 33554432, 'trim_threshold_bytes': 67108864}" in tuned_log
    assert "malloc thresholds: C library defaults" in default_log
    # glibc's defaults fault every parse's big temporaries in again (~280 faults a request for this moov, measured);
    # the thresholds keep them in the heap. What stays (~80 a request) is CPython's own object arenas, which it
    # maps and unmaps itself, past malloc.
    assert default >= 150 * REQUESTS, default
    assert tuned * 2 < default, (tuned, default)


def test_clip_served_with_thresholds_decodes(serve_process, movie, tmp_path):
    svc = serve_process({"/files/": movie.parent}, config=COLD)
    conn = http.client.HTTPConnection(svc.connect_host, svc.port, timeout=30)
    conn.request("GET", f"/files/{movie.name}?start=100")
    response = conn.getresponse()
    assert response.status == 200
    out = tmp_path / "clip.mp4"
    out.write_bytes(response.read())
    conn.close()
    assert mediatools.decode_errors(out) == ""
    assert abs(mediatools.duration_s(out) - 20) < 0.2
