"""Independent oracles for tests: ffprobe/ffmpeg run as subprocesses, and movie generators.

Nothing here imports origin_proxy. Every verdict comes from FFmpeg's own demuxers and decoders, so a test that
compares our output with these helpers compares it with a second implementation, not with itself (STYLE §2.7).

Units: times are seconds (`*_s`) unless the name says ticks; ticks come with the stream's `time_base` (a
Fraction, seconds per tick; for MP4 it is 1/mdhd.timescale). Sizes and positions are bytes.

"Edit lists applied" means ffprobe's normal mode: the mov demuxer maps media time through elst, so timestamps are
presentation times on the movie timeline. `ignore_editlist=True` passes `-ignore_editlist 1`, which gives the raw
sample-table times (decode time from stts, presentation time = dts + ctts offset), up to the constant shift ffmpeg
applies when ctts has negative offsets.

Every subprocess has a timeout and stdin closed; a failure raises MediaToolError carrying the command and the tail
of its stderr. A missing ffmpeg/ffprobe raises too: tests that need an oracle fail, they never skip.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

FFMPEG = os.environ.get("FFMPEG", "ffmpeg")
FFPROBE = os.environ.get("FFPROBE", "ffprobe")
NODE = os.environ.get("NODE", "node")
#: mp4box.js (GPAC) as an oracle for fragmented output; its npm package is installed under tests/players.
MP4BOX_PROBE = Path(__file__).resolve().with_name("mp4box_probe.mjs")

#: Default timeout (s) for probing commands; generators pass their own.
PROBE_TIMEOUT_S = 120.0


class MediaToolError(RuntimeError):
    """An ffmpeg/ffprobe command failed, timed out, or is not installed."""


def require_tools() -> None:
    """Raise MediaToolError unless both ffmpeg and ffprobe are on PATH (or named by $FFMPEG/$FFPROBE)."""
    missing = [tool for tool in (FFMPEG, FFPROBE) if shutil.which(tool) is None]
    if missing:
        raise MediaToolError(
            f"{', '.join(missing)} not found on PATH; install ffmpeg (Debian: apt-get install ffmpeg). "
            "Tests that need it fail rather than skip (STYLE §2.7)."
        )


def run(cmd: Sequence[str | os.PathLike], timeout: float = PROBE_TIMEOUT_S) -> subprocess.CompletedProcess:
    """Run `cmd` with stdin closed and capture stdout/stderr as text.

    Args:
        cmd: the argv; the first element is looked up on PATH.
        timeout: seconds before the process is killed.
    Returns:
        The CompletedProcess (exit status 0).
    Raises:
        MediaToolError: non-zero exit (message holds the command and the last 2000 characters of stderr),
            timeout, or the executable is missing.
    """
    argv = [os.fspath(part) for part in cmd]
    try:
        proc = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace", timeout=timeout
        )
    except FileNotFoundError as exc:
        require_tools()
        raise MediaToolError(f"cannot run {argv[0]}: {exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise MediaToolError(f"timed out after {timeout} s: {' '.join(argv)}") from exc
    if proc.returncode != 0:
        raise MediaToolError(f"exit {proc.returncode}: {' '.join(argv)}\n{proc.stderr[-2000:]}")
    return proc


def _probe_json(path: os.PathLike | str, *args: str, timeout: float = PROBE_TIMEOUT_S) -> dict:
    proc = run([FFPROBE, "-v", "error", *args, "-of", "json", path], timeout=timeout)
    return json.loads(proc.stdout or "{}")


def _fraction(text: str | None) -> Fraction | None:
    """ffprobe prints numbers as text ("0.040000", "1/12800", "N/A"); parse exactly, None when absent."""
    if text is None or text in ("N/A", ""):
        return None
    return Fraction(text)


# --------------------------------------------------------------------------------------------------- streams


def ffprobe_streams(path: os.PathLike | str) -> list[dict]:
    """All streams of `path` as ffprobe's `-show_streams` JSON objects, in file order.

    Values are ffprobe's: strings for times and rates (`time_base` "1/12800", `start_time` and `duration` in
    seconds as "0.000000", `r_frame_rate` "25/1"), ints for `index`, `has_b_frames`, `sample_rate` is a string of
    Hz; `nb_frames` (sample count, string) is present for MP4. Edit lists applied (normal mode).
    """
    return _probe_json(path, "-show_streams")["streams"]


def _stream(path: os.PathLike | str, stream: str) -> dict:
    streams = _probe_json(path, "-select_streams", stream, "-show_streams")["streams"]
    if not streams:
        raise MediaToolError(f"{path}: no stream matches {stream!r}")
    return streams[0]


def duration_s(path: os.PathLike | str) -> float:
    """Container duration in seconds (ffprobe `format=duration`; for MP4 the mvhd duration, edits applied)."""
    fmt = _probe_json(path, "-show_entries", "format=duration")["format"]
    value = _fraction(fmt.get("duration"))
    if value is None:
        raise MediaToolError(f"{path}: ffprobe reports no duration")
    return float(value)


def stream_duration_s(path: os.PathLike | str, sel: str = "v:0") -> float:
    """Duration in seconds of the stream selected by `sel` ("v:0", "a:0", ...), as ffprobe reports it."""
    value = _fraction(_stream(path, sel).get("duration"))
    if value is None:
        raise MediaToolError(f"{path}: ffprobe reports no duration for stream {sel}")
    return float(value)


def _start_s(path: os.PathLike | str, sel: str) -> float:
    value = _fraction(_stream(path, sel).get("start_time"))
    if value is None:
        raise MediaToolError(f"{path}: ffprobe reports no start_time for stream {sel}")
    return float(value)


def video_start_s(path: os.PathLike | str) -> float:
    """Presentation time in seconds of the first video frame of stream v:0 (ffprobe start_time, edits applied)."""
    return _start_s(path, "v:0")


def audio_start_s(path: os.PathLike | str) -> float:
    """Presentation time in seconds of the first audio frame of stream a:0 (ffprobe start_time, edits applied).

    An empty edit shows up here (e.g. 0.043991 s for mp4/sample.mp4).
    """
    return _start_s(path, "a:0")


# --------------------------------------------------------------------------------------------------- packets


@dataclass(frozen=True)
class Packet:
    """One demuxed packet (= one MP4 sample) as ffprobe reports it.

    pts_s/dts_s/duration_s are exact seconds (ticks * time_base), None when ffprobe prints none.
    pts_ticks/dts_ticks/duration_ticks are in `time_base` units. pos is the byte offset of the sample in the file
    (None if unknown), size its length in bytes. keyframe is ffprobe's K flag (a sync sample); discard is its D
    flag: the packet lies outside the edit list and is not presented.
    """

    pts_ticks: int | None
    dts_ticks: int | None
    duration_ticks: int | None
    time_base: Fraction
    pos: int | None
    size: int
    keyframe: bool
    discard: bool

    @property
    def pts_s(self) -> Fraction | None:
        return None if self.pts_ticks is None else self.pts_ticks * self.time_base

    @property
    def dts_s(self) -> Fraction | None:
        return None if self.dts_ticks is None else self.dts_ticks * self.time_base

    @property
    def duration_s(self) -> Fraction | None:
        return None if self.duration_ticks is None else self.duration_ticks * self.time_base


def _int_or_none(value) -> int | None:
    if value is None or value == "N/A":
        return None
    return int(value)


def ffprobe_packets(
    path: os.PathLike | str, stream: str = "v:0", ignore_editlist: bool = False, *, max_packets: int | None = None
) -> list[Packet]:
    """Packets of one stream in decode (file) order.

    Args:
        path: the media file.
        stream: ffprobe stream specifier ("v:0", "a:0", "1").
        ignore_editlist: pass `-ignore_editlist 1` (raw sample-table timing, every sample listed once).
        max_packets: read only the first N packets (`-read_intervals %+#N`); None reads all.
    Returns:
        Packets with ticks in that stream's time_base (1/mdhd timescale for MP4).
    """
    args = ["-ignore_editlist", "1"] if ignore_editlist else []
    args += ["-select_streams", stream]
    if max_packets is not None:
        args += ["-read_intervals", f"%+#{int(max_packets)}"]
    args += ["-show_entries", "stream=time_base:packet=pts,dts,duration,pos,size,flags"]
    data = _probe_json(path, *args)
    streams = data.get("streams") or []
    if not streams:
        raise MediaToolError(f"{path}: no stream matches {stream!r}")
    time_base = Fraction(streams[0]["time_base"])
    return [
        Packet(
            pts_ticks=_int_or_none(pkt.get("pts")),
            dts_ticks=_int_or_none(pkt.get("dts")),
            duration_ticks=_int_or_none(pkt.get("duration")),
            time_base=time_base,
            pos=_int_or_none(pkt.get("pos")),
            size=int(pkt["size"]),
            keyframe="K" in pkt.get("flags", ""),
            discard="D" in pkt.get("flags", ""),
        )
        for pkt in data.get("packets", [])
    ]


def video_frame_times(path: os.PathLike | str) -> list[float]:
    """Presentation times in seconds of every presented frame of v:0, sorted ascending (edits applied).

    Packets that the edit list discards (ffprobe's D flag) are left out. Use the midpoint of two neighbours as a
    seek time that lies off any frame boundary.
    """
    return sorted(float(p.pts_s) for p in ffprobe_packets(path, "v:0") if p.pts_s is not None and not p.discard)


def video_keyframe_times(path: os.PathLike | str) -> list[float]:
    """Presentation times in seconds of the key frames (sync samples) of v:0, sorted ascending (edits applied)."""
    return sorted(
        float(p.pts_s) for p in ffprobe_packets(path, "v:0") if p.keyframe and p.pts_s is not None and not p.discard
    )


def _median_packet_duration_s(path: os.PathLike | str, stream: str) -> float:
    durations = [p.duration_s for p in ffprobe_packets(path, stream, max_packets=64) if p.duration_ticks]
    if not durations:
        raise MediaToolError(f"{path}: no packet durations for stream {stream}")
    return float(statistics.median(durations))


def audio_frame_duration_s(path: os.PathLike | str) -> float:
    """Duration in seconds of one audio frame of a:0 (median of the first packets; AAC: 1024 / sample_rate_hz).

    Use it as the tolerance for audio start/end comparisons.
    """
    return _median_packet_duration_s(path, "a:0")


def video_frame_duration_s(path: os.PathLike | str) -> float:
    """Duration in seconds of one video frame of v:0 (median of the first packets; 0.04 at 25 fps)."""
    return _median_packet_duration_s(path, "v:0")


# --------------------------------------------------------------------------------------------------- decoding


def decode_errors(path: os.PathLike | str, timeout: float = 600.0) -> str:
    """Stderr of a full decode, `ffmpeg -v error -i path -f null -`; the empty string means a clean decode.

    A non-zero exit is reported in the returned text rather than raised, so a test can assert on it directly.
    """
    argv = [FFMPEG, "-nostdin", "-v", "error", "-i", os.fspath(path), "-f", "null", "-"]
    try:
        proc = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace", timeout=timeout
        )
    except FileNotFoundError:
        require_tools()
        raise
    except subprocess.TimeoutExpired as exc:
        raise MediaToolError(f"timed out after {timeout} s: {' '.join(argv)}") from exc
    errors = proc.stderr.strip()
    if proc.returncode != 0 and not errors:
        errors = f"ffmpeg exited with status {proc.returncode}"
    return errors


def framemd5(
    path: os.PathLike | str,
    count: int = 3,
    seek_s: float | Fraction | None = None,
    stream: str = "v:0",
    *,
    allow_errors: bool = False,
) -> list[str]:
    """MD5 of each of the first `count` decoded frames of `stream`, in presentation order (hash column only).

    With `seek_s`, ffmpeg seeks accurately (`-ss` before `-i`): it decodes from the key frame before seek_s and
    drops every frame whose presentation time is below seek_s, so the result is "the first frames presented at
    or after seek_s". seek_s is an absolute presentation time on the same timeline as video_frame_times()
    (`-seek_timestamp 1`: ffmpeg does not add the container start time). Timestamps are not part of the result,
    so a clip that starts at 0 can be compared with its source seeked to the cut point.

    Returns fewer than `count` hashes when the stream ends first.
    Raises MediaToolError when the decoder reports an error (anything on stderr at `-v error`): the pictures of a
    broken decode are not reproducible (fate/empty_edit_5s.mp4 hashes differently from run to run), so they make
    no oracle. `allow_errors=True` returns them anyway.
    """
    argv: list[str] = [FFMPEG, "-nostdin", "-v", "error"]
    if seek_s is not None:
        argv += ["-seek_timestamp", "1", "-ss", _seconds_text(seek_s)]
    argv += ["-i", os.fspath(path), "-map", f"0:{stream}", "-frames:v", str(int(count)), "-f", "framemd5", "-"]
    proc = run(argv, timeout=PROBE_TIMEOUT_S)
    if proc.stderr.strip() and not allow_errors:
        raise MediaToolError(f"decode errors, frame hashes would not be reproducible: {path}\n{proc.stderr[-2000:]}")
    hashes = []
    for line in proc.stdout.splitlines():
        if line and not line.startswith("#"):
            hashes.append(line.rsplit(",", 1)[1].strip())
    return hashes


def first_frame_md5_at(path: os.PathLike | str, t_s: float | Fraction) -> str:
    """MD5 of the first video frame presented at or after t_s seconds (see framemd5)."""
    hashes = framemd5(path, count=1, seek_s=t_s)
    if not hashes:
        raise MediaToolError(f"{path}: no video frame at or after {t_s} s")
    return hashes[0]


def _seconds_text(value: float | Fraction) -> str:
    """Seconds as ffmpeg duration text with microsecond precision (ffmpeg's own time unit)."""
    return f"{float(value):.6f}"


# --------------------------------------------------------------------------------------------------- mp4box.js


def mp4box_probe(request: dict, timeout: float = PROBE_TIMEOUT_S) -> dict:
    """What mp4box.js reads from CMAF tracks (init + segments) and from whole files: one Node process, JSON in and
    out. The request and answer shapes are documented at the top of tests/mp4box_probe.mjs.

    Raises MediaToolError when node fails (not installed, or tests/players/node_modules missing: run
    `npm ci --prefix tests/players`).
    """
    argv = [NODE, os.fspath(MP4BOX_PROBE)]
    try:
        proc = subprocess.run(argv, input=json.dumps(request), capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError as exc:
        raise MediaToolError(f"cannot run {NODE}: {exc} (install nodejs)") from exc
    except subprocess.TimeoutExpired as exc:
        raise MediaToolError(f"timed out after {timeout} s: {' '.join(argv)}") from exc
    if proc.returncode != 0:
        raise MediaToolError(f"exit {proc.returncode}: {' '.join(argv)} (npm ci --prefix tests/players?)\n"
                             f"{proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


# --------------------------------------------------------------------------------------------------- generators


def _replace_atomically(tmp: Path, path: Path) -> Path:
    os.replace(tmp, path)
    return path


# make_test_movie(scene_cuts=True): SMPTE bars cover the picture while this is true (t in seconds).
SCENE_CUT_ENABLE = "gt(sin(1.7*t)+sin(0.61*t),1.2)"


def scene_cut_times(duration_s: float, fps: int = 25) -> list[Fraction]:
    """Times (s) of the frames where make_test_movie(scene_cuts=True)'s picture switches to or from the bars."""
    cuts, covered = [], False
    for frame in range(round(duration_s * fps)):
        t = frame / fps
        now = math.sin(1.7 * t) + math.sin(0.61 * t) > 1.2
        if now != covered:
            cuts.append(Fraction(frame, fps))
            covered = now
    return cuts


def make_test_movie(
    path: os.PathLike | str,
    duration_s: float,
    *,
    moov_at_end: bool = True,
    bframes: bool = True,
    gop: int = 48,
    fps: int = 25,
    audio: bool = True,
    size: str = "320x240",
    scene_cuts: bool = False,
    extra_args: Sequence[str] = (),
    timeout: float = 300.0,
) -> Path:
    """Write an H.264 (+ AAC) MP4 from lavfi test sources and return its path.

    Video: `testsrc2` at `size` and `fps`, libx264 `-preset superfast`, High profile, yuv420p, closed GOPs. With
    `bframes`, `-bf 3` with b-pyramid (ffprobe then reports has_b_frames=2, so ctts and a video edit list exist).
    Key frames are forced at irregular times (gaps between 0.4 and 3.6 s), and `gop` (frames) caps any longer gap,
    so GOP lengths vary. With `scene_cuts`, SMPTE bars cover the picture during irregular intervals
    (`scene_cut_times`), and x264's scene-cut detection (left at its default) adds key frames of its own there.
    Audio: `sine` 440 Hz with a beep every second, 48 kHz stereo AAC-LC 96 kb/s.
    moov goes after mdat (ffmpeg's default) unless moov_at_end is False (`-movflags +faststart`).

    About 17 s per 10 minutes of 320x240 at 25 fps on 2 cores. The file appears atomically (written beside `path`,
    then renamed). `extra_args` are output options appended before the file name.
    """
    path = Path(path)
    # Monotonic schedule 2n + 0.8 sin(1.3 n) seconds: consecutive gaps vary between 0.4 and 3.6 s.
    force_kf = "expr:gte(t,n_forced*2+0.8*sin(n_forced*1.3))"
    argv: list[str] = [FFMPEG, "-nostdin", "-y", "-v", "error"]
    if scene_cuts:
        argv += ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}[a];smptebars=size={size}:rate={fps}[b];"
                 f"[a][b]overlay=enable='{SCENE_CUT_ENABLE}'[out0]"]
    else:
        argv += ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}"]
    if audio:
        argv += ["-f", "lavfi", "-i", "sine=frequency=440:beep_factor=4:sample_rate=48000"]
    argv += ["-t", _seconds_text(duration_s), "-map", "0:v"]
    if audio:
        argv += ["-map", "1:a"]
    argv += ["-c:v", "libx264", "-preset", "superfast", "-profile:v", "high", "-pix_fmt", "yuv420p"]
    argv += ["-g", str(gop), "-keyint_min", "1", "-flags:v", "+cgop", "-force_key_frames", force_kf]
    argv += ["-bf", "3" if bframes else "0"]
    if audio:
        argv += ["-c:a", "aac", "-aac_coder", "fast", "-ar", "48000", "-ac", "2", "-b:a", "96k"]
    if not moov_at_end:
        argv += ["-movflags", "+faststart"]
    argv += list(extra_args)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".gen-") as tmpdir:
        tmp = Path(tmpdir) / path.name
        run([*argv, "-f", "mp4", tmp], timeout=timeout)
        return _replace_atomically(tmp, path)


def make_large_movie(
    path: os.PathLike | str, min_bytes: int = 100 * 2**20, *, moov_at_end: bool = True, timeout: float = 300.0
) -> Path:
    """Write a progressive H.264 + AAC MP4 of at least `min_bytes` bytes and return its path.

    A 10 s 640x360 clip of `testsrc2` with temporal noise is encoded at a high quality (about 40 Mb/s, B-frames,
    closed GOPs), then stream-copied end to end with `-stream_loop` until the size is reached (timestamps
    continue across the joins). About 5 s for 100 MiB. Raises MediaToolError if the result is still too small.
    """
    path = Path(path)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".gen-") as tmpdir:
        clip = Path(tmpdir) / "clip.mp4"
        run(
            [
                FFMPEG, "-nostdin", "-y", "-v", "error",
                "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25,noise=alls=60:allf=t",
                "-f", "lavfi", "-i", "sine=frequency=440:beep_factor=4:sample_rate=48000",
                "-t", "10", "-map", "0:v", "-map", "1:a",
                "-c:v", "libx264", "-preset", "superfast", "-crf", "10", "-bf", "3", "-g", "48",
                "-flags:v", "+cgop", "-pix_fmt", "yuv420p",
                "-c:a", "aac", "-aac_coder", "fast", "-ar", "48000", "-ac", "2", "-b:a", "128k",
                "-f", "mp4", clip,
            ],
            timeout=timeout,
        )  # fmt: skip
        copies = max(1, math.ceil(min_bytes * 1.02 / clip.stat().st_size))
        tmp = Path(tmpdir) / path.name
        argv = [FFMPEG, "-nostdin", "-y", "-v", "error", "-stream_loop", str(copies - 1), "-i", clip]
        argv += ["-map", "0", "-c", "copy"]
        if not moov_at_end:
            argv += ["-movflags", "+faststart"]
        run([*argv, "-f", "mp4", tmp], timeout=timeout)
        if tmp.stat().st_size < min_bytes:
            raise MediaToolError(f"generated {tmp.stat().st_size} bytes, wanted at least {min_bytes}")
        return _replace_atomically(tmp, path)


# --------------------------------------------------------------------------------------------------- layout


def top_level_boxes(path: os.PathLike | str) -> list[tuple[str, int, int]]:
    """(fourcc, offset, size) of each top-level ISO-BMFF box, in file order; offsets and sizes in bytes.

    A deliberately tiny walker (32-bit size, size==1 largesize, size==0 to end of file), independent of
    origin_proxy; use it to check "moov before mdat" and the like on well-formed files. Stops at a header that
    does not fit the file.
    """
    boxes = []
    file_size = os.path.getsize(path)
    with open(path, "rb") as f:
        offset = 0
        while offset + 8 <= file_size:
            f.seek(offset)
            head = f.read(16)
            size = int.from_bytes(head[0:4], "big")
            fourcc = head[4:8].decode("latin-1")
            if size == 1 and len(head) >= 16:
                size = int.from_bytes(head[8:16], "big")
            elif size == 0:
                size = file_size - offset
            if size < 8 or offset + size > file_size:
                break
            boxes.append((fourcc, offset, size))
            offset += size
    return boxes
