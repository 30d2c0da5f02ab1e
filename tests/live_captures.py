"""Ingest captures made with ffmpeg once per session: what `-f ismv` and `-f mp4 -movflags cmaf` push.

Fixtures smooth_capture and cmaf_capture (a plugin named in tests/conftest.py, so no conftest.py shadows the root one).
"""

from __future__ import annotations

import asyncio
import struct
import subprocess
from pathlib import Path

import pytest

SOURCE = ["-f", "lavfi", "-i", "testsrc=size=160x120:rate=25", "-f", "lavfi", "-i",
          "sine=frequency=440:sample_rate=48000", "-t", "3", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-g", "25", "-sc_threshold", "0",
          "-c:a", "aac", "-b:a", "64k"]


def _capture(tmp_path_factory: pytest.TempPathFactory, name: str, args: list[str]) -> Path:
    path = tmp_path_factory.getbasetemp() / "live-captures" / name
    if not path.is_file():
        path.parent.mkdir(exist_ok=True)
        subprocess.run(["ffmpeg", "-v", "error", "-y", *SOURCE, *args, str(path)], check=True)
    return path


@pytest.fixture(scope="session")
def smooth_capture(tmp_path_factory) -> Path:
    """3 s H.264 + AAC as Smooth ingest (ftyp, SMIL uuid, moov, moof/mdat with tfxd, empty mfra)."""
    return _capture(tmp_path_factory, "s1.ismv", ["-f", "ismv", "-movflags", "isml+frag_keyframe"])


@pytest.fixture(scope="session")
def cmaf_capture(tmp_path_factory) -> Path:
    """3 s H.264 alone as a CMAF ingest track (empty moov + mvex, moof/mdat with tfdt)."""
    return _capture(tmp_path_factory, "video.cmfv",
                    ["-an", "-f", "mp4", "-movflags", "empty_moov+separate_moof+default_base_moof+cmaf"])


async def run_ffmpeg(*args: str, timeout_s: float = 40.0, check: bool = True) -> tuple[bytes, str]:
    """Run ffmpeg (errors only) -> (stdout, stderr). SIGKILLed and failed after `timeout_s`: an ffmpeg reading a
    live playlist that never ends ignores SIGTERM, so every live test's ffmpeg run goes through here."""
    proc = await asyncio.create_subprocess_exec("ffmpeg", "-v", "error", "-nostdin", *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"ffmpeg {' '.join(args)} still running after {timeout_s} s") from None
    if check:
        assert proc.returncode == 0, err.decode(errors="replace")
    return out, err.decode(errors="replace")


def cmaf_parts(data: bytes) -> list[bytes]:
    """A CMAF ingest capture cut into its header (ftyp+moov) and one moof+mdat body per segment, as DASH-IF
    per-segment ingest PUTs them."""
    parts, pos, current = [], 0, b""
    while pos < len(data):
        size, fourcc = struct.unpack_from(">I4s", data, pos)
        current += data[pos : pos + size]
        pos += size
        if fourcc in (b"moov", b"mdat"):
            parts.append(current)
            current = b""
    return parts
