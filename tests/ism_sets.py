"""Multi-bitrate test sets: three H.264 variants of one movie with identical GOPs, one AAC track, and the `.ism`
server manifest (SMIL 2.0 switch) naming them. Written with ffmpeg; used by tests/integration/test_ism.py and
tests/players/test_players_ours.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mediatools as mt

#: (file name, size, video bitrate) from the lowest to the highest.
VARIANTS = (("movie_300k.mp4", "320x180", 300_000), ("movie_800k.mp4", "640x360", 800_000),
            ("movie_1600k.mp4", "960x540", 1_600_000))
AUDIO_BITRATE = 96_000
FPS = 24


@dataclass(frozen=True)
class IsmSet:
    folder: Path
    ism_name: str
    videos: tuple[Path, ...]  # lowest bitrate first; the first also holds the AAC track (track 2)

    @property
    def ism(self) -> Path:
        return self.folder / self.ism_name


def ism_text(entries: list[tuple[str, str, int, int]]) -> str:
    """A server manifest of (element, src, systemBitrate, trackID) entries."""
    lines = ['<?xml version="1.0" encoding="utf-8"?>',
             '<smil xmlns="http://www.w3.org/2001/SMIL20/Language">',
             '  <head><meta name="formats" content="mp4"/></head>', "  <body>", "    <switch>"]
    for element, src, bitrate, track_id in entries:
        lines += [f'      <{element} src="{src}" systemBitrate="{bitrate}">',
                  f'        <param name="trackID" value="{track_id}" valuetype="data"/>', f"      </{element}>"]
    lines += ["    </switch>", "  </body>", "</smil>", ""]
    return "\n".join(lines)


def make_ism_set(folder: Path, duration_s: float = 24.0) -> IsmSet:
    """Encode the three variants (closed 2 s GOPs at the same frames: `-g 48 -keyint_min 48 -sc_threshold 0`, no
    B-frame pyramid surprises) of one testsrc2 movie into `folder`, plus `set.ism`. About 10 s on 2 cores."""
    folder.mkdir(parents=True, exist_ok=True)
    videos = []
    for position, (name, size, bitrate) in enumerate(VARIANTS):
        path = folder / name
        argv = [mt.FFMPEG, "-nostdin", "-y", "-v", "error", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={FPS}"]
        if position == 0:
            argv += ["-f", "lavfi", "-i", "sine=frequency=440:beep_factor=4:sample_rate=48000"]
        argv += ["-t", str(duration_s), "-map", "0:v"] + (["-map", "1:a"] if position == 0 else [])
        argv += ["-c:v", "libx264", "-preset", "superfast", "-profile:v", "high", "-pix_fmt", "yuv420p",
                 "-b:v", str(bitrate), "-maxrate", str(bitrate * 3 // 2), "-bufsize", str(bitrate),
                 "-g", "48", "-keyint_min", "48", "-sc_threshold", "0", "-flags:v", "+cgop", "-bf", "2"]
        if position == 0:
            argv += ["-c:a", "aac", "-ar", "48000", "-ac", "2", "-b:a", str(AUDIO_BITRATE)]
        mt.run([*argv, "-movflags", "+faststart", path], timeout=300)
        videos.append(path)
    entries = [("video", name, bitrate, 1) for name, _, bitrate in VARIANTS]
    entries.append(("audio", VARIANTS[0][0], AUDIO_BITRATE, 2))
    (folder / "set.ism").write_text(ism_text(entries))
    return IsmSet(folder, "set.ism", tuple(videos))
