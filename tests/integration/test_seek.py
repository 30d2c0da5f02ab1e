"""?start= / ?end= over HTTP, judged by ffmpeg and ffprobe only (never by our own parser).

For every valid file in ../shared/media/mp4 and mov, and a generated 10-minute H.264 B-frame + AAC movie
with moov at the end, seek times are taken from ffprobe's packet list: a key frame, a frame between key
frames, and the midpoint between two frames (off any frame boundary). Each clip must:
- decode cleanly (or, for sources that do not decode cleanly themselves, with no error the source lacks);
- present first the frames the source presents at/after T. The reference is the source's full decode,
  hashes lined up with ffprobe's presented frame times. `ffmpeg -ss T` must agree too, except where
  ffmpeg's own seek lands wrong: it seeks by dts, so in open-GOP files (leading B-frames after an I-frame,
  e.g. iibbibb_editlist_videoonly.mp4) it starts one GOP late and drops the frames we are asked for;
- start audio within one audio frame of video, and last (source end - T) within one frame.
AV1 is decoded with libaom: ffmpeg's libdav1d wrapper lets one discard-flagged (edit-list hidden) frame
through, so it does not show what the file presents.
"""

from __future__ import annotations

import functools
import math
import re
from fractions import Fraction
from pathlib import Path

import pytest

import mediatools as mt
from conftest import MEDIA_ROOT

MICROSECOND = Fraction(1, 10**6)  # request times are given to the µs; ffmpeg's own unit
VALID = sorted(p.relative_to(MEDIA_ROOT).as_posix() for d in ("mp4", "mov") for p in (MEDIA_ROOT / d).iterdir())


def _decoder_args(path: Path) -> list[str]:
    """Decoder options that make ffmpeg show every frame the file presents.

    AV1: libaom (see module docstring). H.264: `-flags2 showall`: after starting at a non-IDR I-frame,
    ffmpeg hides pictures until its recovery heuristic is satisfied, even when their references are
    all there (open GOPs, iibbibb_editlist_videoonly.mp4); applied to source and clip alike.
    """
    codecs = {s.get("codec_name") for s in mt.ffprobe_streams(path)}
    if "av1" in codecs:
        return ["-c:v", "libaom-av1"]
    return ["-flags2", "showall"] if "h264" in codecs else []


def _hashes(path: Path, count: int | None = None, seek_s: Fraction | None = None) -> list[str]:
    argv = [mt.FFMPEG, "-nostdin", "-v", "error", *_decoder_args(path)]
    if seek_s is not None:
        argv += ["-seek_timestamp", "1", "-ss", f"{float(seek_s):.6f}"]
    argv += ["-i", str(path), "-map", "0:v:0"]
    if count is not None:
        argv += ["-frames:v", str(count)]
    proc = mt.run(argv + ["-f", "framemd5", "-"], timeout=300)
    return [line.rsplit(",", 1)[1].strip() for line in proc.stdout.splitlines() if line and not line.startswith("#")]


@functools.cache
def _source_facts(path: Path):
    """(presented video frame times s, their hashes, normalized decode errors, end of presentation s)."""
    has_video = any(s["codec_type"] == "video" for s in mt.ffprobe_streams(path))
    times = [p.pts_s for p in mt.ffprobe_packets(path, "v:0") if p.pts_s is not None and not p.discard] if has_video else []
    hashes = _hashes(path) if has_video else []
    return sorted(times), hashes, _error_kinds(mt.decode_errors(path)), _presentation_end_s(path)


def _error_kinds(stderr: str) -> set[str]:
    """Decoder messages without addresses and numbers, so two runs' errors compare as kinds."""
    return {re.sub(r"0x[0-9a-f]+|\d+", "N", line).strip() for line in stderr.splitlines() if line.strip()}


def _presentation_end_s(path: Path) -> Fraction:
    """End of the last presented sample (pts + duration of packets the edit list does not discard).

    Neither summary is reliable: mvhd can leave out a track's empty edit (sample_2_byte_NAL_length.mp4),
    and ffprobe's stream start_time + duration counts an audio lead twice (bt601.mov). Packets are the oracle.
    """
    ends = []
    for index, stream in enumerate(mt.ffprobe_streams(path)):
        if stream.get("codec_type") in ("video", "audio"):
            ends += [p.pts_s + p.duration_s for p in mt.ffprobe_packets(path, str(index))
                     if not p.discard and p.pts_s is not None and p.duration_s is not None]
    return max(ends)


def _seek_times(path: Path) -> dict[str, Fraction]:
    """T from ffprobe's packets: a key frame, a frame between key frames, a point between two frames."""
    times, _, _, end_s = _source_facts(path)
    if not times:  # audio only: packet times of a:0
        audio = sorted(p.pts_s for p in mt.ffprobe_packets(path, "a:0") if p.pts_s is not None and not p.discard)
        times, keys = audio, audio
    else:
        keys = sorted(p.pts_s for p in mt.ffprobe_packets(path, "v:0") if p.keyframe and not p.discard and p.pts_s is not None)
    keys = [k for k in keys if 0 < k < end_s] or [times[len(times) // 3]]
    key = keys[len(keys) // 2]
    later = [t for t in times if key < t < end_s]
    between = later[min(len(later) // 2, 5)] if later else times[len(times) // 2]
    i = len(times) // 2
    # A quarter frame before a frame, not the midpoint: where an edit starts between two frames, ffmpeg
    # shifts the whole timeline back by that gap (half a frame in iibbibb_editlist_videoonly.mp4), and a
    # midpoint would then fall on the other side of a frame in ffmpeg's times than in the file's.
    off = times[i + 1] - (times[i + 1] - times[i]) / 4 if i + 1 < len(times) else times[i] / 2
    return {"keyframe": key, "between": between, "off_boundary": off}


def _us(t: Fraction) -> Fraction:
    """T rounded down to the µs, so a seek "at a frame" never lands just after it."""
    return Fraction(math.floor(t * 10**6), 10**6)


def _q(t: Fraction) -> str:
    return f"{float(t):.6f}"


async def _fetch(edge, url: str, out: Path) -> Path:
    response = await edge.client.get(url)
    body = await response.read()
    assert response.status == 200, (response.status, body[:200])
    assert len(body) == int(response.headers["Content-Length"])
    out.write_bytes(body)
    return out


def _check_clip(source: Path, clip: Path, start_s: Fraction, end_s: Fraction | None) -> None:
    times, hashes, source_errors, source_end_s = _source_facts(source)
    # 1. Decodes as cleanly as its source.
    clip_errors = _error_kinds(mt.decode_errors(clip))
    assert clip_errors <= source_errors, f"new decode errors: {clip_errors - source_errors}"
    streams = {s["codec_type"]: s for s in mt.ffprobe_streams(clip)}
    # 2. Frame-exact start.
    if times and not source_errors:
        first = next(i for i, t in enumerate(times) if t >= start_s)
        ours = _hashes(clip, count=3)
        in_window = [h for h, t in zip(hashes[first:], times[first:]) if end_s is None or t < end_s][:3]
        if len(hashes) == len(times):
            assert ours == in_window, "first frames differ from the source's frames at start"
        reference = _hashes(source, count=len(ours) or 3, seek_s=start_s)
        if len(hashes) != len(times) or reference == in_window:
            assert ours == reference, "first frames differ from ffmpeg -ss"
    # 3. Audio starts with video (within one audio frame), unless the source itself starts a track later
    #    (an empty edit): then each track keeps its own lead, less T.
    if start_s > 0 and "audio" in streams and "video" in streams:
        audio_frame_s = mt.audio_frame_duration_s(clip)
        source_streams = {s["codec_type"]: s for s in mt.ffprobe_streams(source)}
        lead = {kind: max(Fraction(source_streams[kind]["start_time"]) - start_s, 0) for kind in ("audio", "video")}
        gap = (Fraction(streams["audio"]["start_time"]) - lead["audio"]) - (Fraction(streams["video"]["start_time"]) - lead["video"])
        assert abs(gap) <= audio_frame_s + Fraction(1, 1000), f"audio and video start {float(gap)} s apart"
    # 4. Duration = window (±1 frame).
    frame_s = mt.video_frame_duration_s(clip) if "video" in streams else mt.audio_frame_duration_s(clip)
    expected = min(end_s, source_end_s) - start_s if end_s is not None else source_end_s - start_s
    got = _presentation_end_s(clip)
    assert abs(got - expected) <= Fraction(frame_s) + Fraction(1, 1000), f"duration {float(got)} != {float(expected)}"


@pytest.mark.parametrize("name", VALID)
async def test_start_is_frame_exact(edge, tmp_path, name):
    source = MEDIA_ROOT / name
    for kind, start_s in _seek_times(source).items():
        start_s = _us(start_s)
        clip = await _fetch(edge, f"/files/{name}?start={_q(start_s)}", tmp_path / f"{kind}.mp4")
        _check_clip(source, clip, start_s, None)


@pytest.mark.parametrize("name", VALID)
async def test_start_end_and_end_windows(edge, tmp_path, name):
    source = MEDIA_ROOT / name
    end_total = _source_facts(source)[3]
    start_s = _us(_seek_times(source)["between"])
    times = _source_facts(source)[0] or [start_s, end_total]
    later = [t for t in times if t > start_s] or [end_total]
    frame = later[len(later) // 2]
    end_s = _us(frame - (frame - max(t for t in times if t < frame)) / 4)  # a quarter frame before a frame
    if end_s <= start_s:  # too few frames after start (h265_with_metadata_track.mp4 has 3): end at the end
        end_s = _us(end_total)
    clip = await _fetch(edge, f"/files/{name}?start={_q(start_s)}&end={_q(end_s)}", tmp_path / "w.mp4")
    _check_clip(source, clip, start_s, end_s)
    clip = await _fetch(edge, f"/files/{name}?end={_q(end_s)}", tmp_path / "e.mp4")
    _check_clip(source, clip, Fraction(0), end_s)


async def test_ten_minute_moov_at_end(edge_client, tmp_path, movie_10min_moov_end):
    client = await edge_client([{"from": "/gen/", "to": "file://" + str(movie_10min_moov_end.parent) + "/"}])
    source = movie_10min_moov_end
    assert [box for box, *_ in mt.top_level_boxes(source)].index("moov") > 1, "fixture must have moov at the end"

    class Client:  # the edge fixture's shape for _fetch
        pass

    holder = Client()
    holder.client = client
    url = f"/gen/{source.name}"
    for kind, start_s in {**_seek_times(source), "issue_example": Fraction("290.12")}.items():
        start_s = _us(start_s)
        clip = await _fetch(holder, f"{url}?start={_q(start_s)}", tmp_path / f"{kind}.mp4")
        _check_clip(source, clip, start_s, None)
        assert [box for box, *_ in mt.top_level_boxes(clip)][:3] == ["ftyp", "moov", "mdat"]
    clip = await _fetch(holder, f"{url}?start=290.12&end=300", tmp_path / "window.mp4")
    _check_clip(source, clip, Fraction("290.12"), Fraction(300))


async def test_start_zero_on_faststart_file_is_the_file(edge):
    body = await (await edge.client.get("/files/mp4/sample.mp4?start=0")).read()
    assert body == (MEDIA_ROOT / "mp4/sample.mp4").read_bytes()


async def test_start_zero_on_moov_at_end_file_is_faststart(edge, tmp_path):
    name = "mp4/bbb_prog_10s.mp4"
    clip = await _fetch(edge, f"/files/{name}?start=0", tmp_path / "fs.mp4")
    assert [box for box, *_ in mt.top_level_boxes(clip)] == ["ftyp", "moov", "mdat"]
    assert _hashes(clip) == _source_facts(MEDIA_ROOT / name)[1], "every frame must survive a faststart rewrite"
    assert mt.ffprobe_packets(clip, "a:0").__len__() == mt.ffprobe_packets(MEDIA_ROOT / name, "a:0").__len__()


@pytest.mark.parametrize("mode", ["keyframe", "exact"])
async def test_keyframe_mode_starts_on_the_key_frame(edge, tmp_path, mode):
    name = "mp4/bbb_prog_10s.mp4"
    source = MEDIA_ROOT / name
    keys = mt.video_keyframe_times(source)
    start_s = _us(Fraction((keys[1] + keys[2]) / 2))  # between two key frames
    clip = await _fetch(edge, f"/files/{name}?start={_q(start_s)}&mode={mode}", tmp_path / "k.mp4")
    times, hashes, _, end_s = _source_facts(source)
    effective = Fraction(keys[1]).limit_denominator(10**6) if mode == "keyframe" else start_s
    first = next(i for i, t in enumerate(times) if t >= effective - MICROSECOND)
    assert _hashes(clip, count=3) == hashes[first : first + 3]
    assert abs(_presentation_end_s(clip) - (end_s - effective)) <= Fraction(1, 24)


@pytest.mark.parametrize("name", ["mp4/h265_with_metadata_track.mp4", "mov/sample_edit_list.mp4"])
async def test_metadata_tracks_are_dropped_from_clips(edge, tmp_path, name):
    source_kinds = sorted(s["codec_type"] for s in mt.ffprobe_streams(MEDIA_ROOT / name))
    assert "data" in source_kinds  # the source carries timed metadata (mett / mebx)
    clip = await _fetch(edge, f"/files/{name}?start=0.05", tmp_path / "c.mp4")
    assert sorted(s["codec_type"] for s in mt.ffprobe_streams(clip)) == [k for k in source_kinds if k != "data"]
