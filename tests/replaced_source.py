"""The replace-the-source scenario (issue 17): two encodes of one movie that must never be mixed, and the checks
that a player following our URLs gets bytes of one version only.

`make_versions(folder)` writes `a.mp4` and `b.mp4` (ffmpeg, 20 s, different picture size, frame rate and GOPs:
B's segments decoded after A's init give H.264 errors, so a mix cannot pass as clean). `install(version, path)`
replaces `path` atomically with a copy of `version` and moves its mtime on, as a re-encode landing on disk does.
`fetch_track(get, base, rep, numbers)` follows the URLs of `<base>/cmaf1/<rep>/playlist.m3u8` with a
`get(url) -> (status, headers, body)` callable (origin_proxy directly, or through an edge), `decodes_clean`
checks a concatenation of init + segments with ffmpeg.
"""

from __future__ import annotations

import http.client
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

import m3u8

import mediatools as mt

SEGMENT_S = 2
Getter = Callable[[str], tuple[int, dict, bytes]]


def http_get(url: str, headers: Mapping[str, str] | None = None) -> tuple[int, dict, bytes]:
    """GET `url` on a fresh connection: (status, headers with lower-case names, body)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=20)
    try:
        conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""), headers=dict(headers or {}))
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def make_versions(folder: Path) -> tuple[Path, Path]:
    a = mt.make_test_movie(folder / "a.mp4", 20, moov_at_end=False, fps=25, size="320x240")
    b = mt.make_test_movie(folder / "b.mp4", 20, moov_at_end=False, fps=30, size="352x288", bframes=False, gop=30)
    return a, b


def install(version: Path, path: Path, mtime_step_s: int = 0) -> None:
    """Put a copy of `version` at `path` atomically, with an mtime unlike any earlier one (validators change)."""
    tmp = path.with_name(f".{path.name}.new")
    shutil.copyfile(version, tmp)
    stamp = 1_700_000_000 + mtime_step_s
    os.utime(tmp, (stamp, stamp))
    os.replace(tmp, path)


def track_urls(get: Getter, base: str, rep: str) -> tuple[str, list[str]]:
    """(init URL, [segment URLs]) of `rep` as its media playlist names them (absolute)."""
    status, _, body = get(f"{base}/cmaf1/{rep}/playlist.m3u8")
    assert status == 200, (status, body[:200])
    playlist = m3u8.loads(body.decode())
    folder = f"{base}/cmaf1/{rep}/"
    return folder + playlist.segment_map[0].uri, [folder + s.uri for s in playlist.segments]


def decodes_clean(folder: Path, name: str, pieces: list[bytes]) -> tuple[str, int]:
    """(ffmpeg's decode errors, '' when clean; decoded video frames) of init + segments concatenated."""
    path = folder / name
    path.write_bytes(b"".join(pieces))
    errors = mt.decode_errors(path)
    try:
        frames = len(mt.framemd5(path, count=100_000, allow_errors=True))
    except mt.MediaToolError:  # ffmpeg gave up on the bytes altogether
        frames = 0
    return errors, frames
