"""Load: `wrk` at 64 connections over a mix of `?start=` clips, Range requests, and HLS playlists, init and
media segments (the URLs the server's own master playlists list) against a real
`origin-proxy serve` process (issue 5 §5). Verdicts: wrk reports zero socket errors and zero non-2xx
answers; the server's RSS after the run is within a bound of its RSS after warm-up; its open file
descriptors return to the warmed-up count. The request mix is a Lua script handed to wrk.

Duration: ORIGIN_PROXY_LOAD_S seconds (default 60, as the issue asks).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import MEDIA_ROOT

LOAD_S = int(os.environ.get("ORIGIN_PROXY_LOAD_S", "60"))
# Every file lasts at least 5 s: the mix seeks to at most 4.9 s, so every request is a valid one.
FILES = ["mp4/bbb_prog_10s.mp4", "mp4/long_1080p_lowbitrate.mp4", "mp4/edts.mp4", "mp4/prog_8s.mp4",
         "mp4/sample_with_increasing_timestamps_320w_240h_5s.mp4"]
LUA = r"""
local paths = {%(paths)s}
local packaged = {%(packaged)s}
local i = 0
request = function()
  i = i + 1
  local path = paths[(i %% #paths) + 1]
  if i %% 4 == 0 then
    return wrk.format("GET", path, {["Range"] = "bytes=0-65535"})
  elseif i %% 4 == 1 then
    return wrk.format("GET", path .. "?start=" .. ((i %% 40) / 10.0) .. "&end=" .. ((i %% 40) / 10.0 + 3))
  elseif i %% 4 == 2 then
    return wrk.format("GET", packaged[(i %% #packaged) + 1])
  end
  return wrk.format("GET", path .. "?start=" .. ((i %% 50) / 10.0), {["Range"] = "bytes=100-20000"})
end
"""


def _packaged_paths(port: int, media_path: str) -> list[str]:
    """The HLS master, its media playlists, init segments and first media segments of one file, as the
    server lists them (so the load uses real segment URLs)."""
    base = f"http://127.0.0.1:{port}"

    def get(path: str) -> str:
        with urllib.request.urlopen(base + path, timeout=10) as response:
            return response.read().decode()

    def uri_of(line: str) -> str | None:
        quoted = re.search(r'URI="([^"]+)"', line)
        if quoted:
            return quoted.group(1)
        return line if line and not line.startswith("#") else None

    master = f"{media_path}/master.m3u8"
    found = [master]
    for line in get(master).splitlines():
        uri = uri_of(line)
        if not uri:
            continue
        playlist = f"{media_path}/{uri}"
        found.append(playlist)
        directory = playlist.rsplit("/", 1)[0]
        segments = 0
        for entry in get(playlist).splitlines():
            target = uri_of(entry)
            if target and (entry.startswith("#EXT-X-MAP:") or segments < 3):
                segments += not entry.startswith("#")
                found.append(f"{directory}/{target}")
    return found


def _rss_kib(pid: int) -> int:
    return int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1))


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _wrk(port: int, script: Path, seconds: int) -> str:
    argv = ["wrk", "-t", "2", "-c", "64", "-d", f"{seconds}s", "--timeout", "10s", "-s", str(script),
            f"http://127.0.0.1:{port}"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_wrk_mix_has_no_errors_flat_rss_and_no_fd_leak(tmp_path, serve_process):
    assert shutil.which("wrk"), "wrk is installed by scripts/_bootstrap.sh"
    server = serve_process({"/m/": MEDIA_ROOT}, config="log_level: WARNING\n")
    port = server.port
    packaged = [p for name in FILES[:2] for p in _packaged_paths(port, f"/m/{name}")]
    assert any(p.endswith(".m4s") for p in packaged) and any(p.endswith("init.mp4") for p in packaged)
    script = tmp_path / "mix.lua"
    script.write_text(LUA % {"paths": ", ".join(f'"/m/{name}"' for name in FILES),
                             "packaged": ", ".join(f'"{p}"' for p in packaged)})
    for name in FILES:  # every clip path answers before the load starts
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/m/{name}?start=1", timeout=10) as response:
            assert response.status == 200

    time.sleep(1)
    fds_idle = _fds(server.pid)
    warm = _wrk(port, script, 5)
    assert "Non-2xx" not in warm and "Socket errors" not in warm, warm
    rss_warm, fds_warm = _rss_kib(server.pid), _fds(server.pid)

    report = _wrk(port, script, LOAD_S)
    requests = int(re.search(r"(\d+) requests in", report).group(1))
    assert requests > 64, report
    assert "Non-2xx" not in report, report
    assert "Socket errors" not in report, report
    time.sleep(1)  # let closing connections finish
    rss_after, fds_after = _rss_kib(server.pid), _fds(server.pid)
    assert rss_after - rss_warm < 64 * 1024, f"RSS grew from {rss_warm} to {rss_after} KiB under load"
    assert fds_after <= fds_idle, f"file descriptors {fds_idle} before load, {fds_after} after"
    print(f"\nload: {requests} requests in {LOAD_S} s; RSS {rss_warm} -> {rss_after} KiB; "
          f"fds idle {fds_idle}, under load {fds_warm}, after {fds_after}")
