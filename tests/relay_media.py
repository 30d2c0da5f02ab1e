"""Relay test helpers: short live-style Matroska/WebM feeds made with ffmpeg, and capture checks by ffprobe,
an ffmpeg decode and mkvmerge -J (independent of origin_proxy)."""

from __future__ import annotations

import json
import subprocess
from collections import defaultdict
from pathlib import Path

H264_OPUS = ["-f", "lavfi", "-i", "testsrc=size=640x360:rate=25", "-f", "lavfi", "-i", "sine=frequency=440",
             "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-b:v", "1500k", "-maxrate", "1500k",
             "-bufsize", "750k", "-pix_fmt", "yuv420p", "-c:a", "libopus", "-b:a", "64k"]
VP9_OPUS = ["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=frequency=440",
            "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-g", "25", "-b:v", "600k",
            "-c:a", "libopus", "-b:a", "64k"]


def make_feed(path: Path, codec_args: list[str], duration_s: float, fmt: str = "matroska") -> Path:
    """A live-style feed file (`-live 1`: unknown-size Segment, no Cues), key frame every second."""
    subprocess.run(["ffmpeg", "-v", "error", "-y", *codec_args, "-t", str(duration_s), "-f", fmt, "-live", "1",
                    str(path)], check=True, timeout=120, stdin=subprocess.DEVNULL)
    return path


def packets(path: Path) -> list[dict]:
    """ffprobe's packets: codec_type, pts_time (float), key (bool), in file order."""
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "packet=stream_index,pts_time,flags",
                          "-show_entries", "stream=index,codec_type", "-of", "json", str(path)],
                         capture_output=True, check=True, timeout=60, stdin=subprocess.DEVNULL)
    data = json.loads(out.stdout)
    kinds = {s["index"]: s["codec_type"] for s in data["streams"]}
    return [{"type": kinds[p["stream_index"]], "pts": float(p["pts_time"]), "key": "K" in p["flags"]}
            for p in data["packets"]]


def check_capture(path: Path) -> list[dict]:
    """Assert the relay invariants of one viewer capture; returns its packets."""
    pkts = packets(path)
    video = [p for p in pkts if p["type"] == "video"]
    assert video and video[0]["key"], f"{path.name}: first video packet is not a key frame"
    seen = defaultdict(set)
    latest = float("-inf")
    last_audio = float("-inf")
    for p in pkts:
        assert p["pts"] not in seen[p["type"]], f"{path.name}: duplicate {p['type']} timestamp {p['pts']}"
        seen[p["type"]].add(p["pts"])
        if p["type"] == "video" and p["key"]:
            assert p["pts"] > latest, f"{path.name}: key frame at {p['pts']} not after earlier packets"
        if p["type"] == "audio":
            assert p["pts"] > last_audio, f"{path.name}: audio not strictly increasing at {p['pts']}"
            last_audio = p["pts"]
        latest = max(latest, p["pts"])
    decode = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"], capture_output=True,
                            text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert decode.returncode == 0 and decode.stderr == "", f"{path.name}: {decode.stderr[:500]}"
    merge = subprocess.run(["mkvmerge", "-J", str(path)], capture_output=True, text=True, timeout=60)
    info = json.loads(merge.stdout)
    assert info["container"]["recognized"] and info["container"]["supported"] and not info["errors"], info
    return pkts
