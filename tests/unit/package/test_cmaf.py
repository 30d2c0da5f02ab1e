"""CMAF header + fragments from progressive MP4, judged by ffmpeg/ffprobe.

Each track of a file is packaged at a 2 s target into init + every segment, concatenated into one
fragmented MP4 (what a player appends), then:
- ffmpeg decodes it with no error the source lacks;
- video: every frame the source presents is in ours, identical and in order (ours may also carry frames the
  source's edit list hides, from the sync sample before presentation 0);
- audio: the packet count is the source's, less the priming frames presented wholly before 0;
- every segment starts with a key frame per ffprobe, and decode times run on without gaps or overlaps
  (each is the source sample's raw decode time plus one constant).
Note: ffmpeg shifts a fragmented track's timestamps by its most negative trun composition offset, so
timestamps are compared as differences, never absolutely.
"""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import pytest

import mediatools as mt
from conftest import MEDIA_ROOT
from origin_proxy.isobmff.header import iter_boxes
from origin_proxy.isobmff.movie import parse_moov
from origin_proxy.package.cmaf import cmaf_fragment, cmaf_header
from origin_proxy.package.segmenter import segment_movie

FILES = ["mp4/bbb_prog_10s.mp4", "mp4/sample.mp4", "mp4/edts.mp4", "mp4/prog_8s.mp4", "mp4/ed_hevc.mp4",
         "mp4/sample_2_byte_NAL_length.mp4", "mp4/sample_opus.mp4",
         "mp4/multiple-aac-tracks.mp4", "mp4/cursed-vfr.mp4", "mov/bt601.mov", "mp4/silent-black-10s.mp4"]


def _package(path, tmp_path):
    data = path.read_bytes()
    moov = next(s for s in iter_boxes(data, 0, len(data), "") if s.fourcc == b"moov")
    movie = parse_moov(data[moov.offset : moov.end], len(data), 10**7)
    outputs = []
    for timeline in segment_movie(movie, Fraction(2)):
        out = bytearray(cmaf_header(timeline.track))
        for index in range(timeline.segment_count):
            head, ranges = cmaf_fragment(timeline, index)
            out += head
            for part in ranges:
                out += data[part.offset : part.offset + part.size]
        target = tmp_path / f"track{timeline.track.track_id}.mp4"
        target.write_bytes(out)
        outputs.append((timeline, target))
    return outputs


def _kinds(stderr: str) -> set[str]:
    return {re.sub(r"0x[0-9a-f]+|\d+", "N", line) for line in stderr.splitlines() if line.strip()}


def _video_hashes(path) -> list[str]:
    proc = mt.run([mt.FFMPEG, "-nostdin", "-v", "error", "-flags2", "showall", "-i", str(path), "-map", "0:v:0",
                   "-fps_mode", "passthrough", "-f", "framemd5", "-"], timeout=300)
    return [line.rsplit(",", 1)[1].strip() for line in proc.stdout.splitlines() if line and not line.startswith("#")]


@pytest.mark.parametrize("name", FILES)
def test_packaged_tracks_decode_like_the_source(name, tmp_path):
    source = MEDIA_ROOT / name
    source_streams = mt.ffprobe_streams(source)
    source_errors = _kinds(mt.decode_errors(source))
    for timeline, packaged in _package(source, tmp_path):
        assert _kinds(mt.decode_errors(packaged)) <= source_errors
        kind = "video" if timeline.track.handler_type == b"vide" else "audio"
        index = next(i for i, s in enumerate(source_streams) if int(s["id"], 16) == timeline.track.track_id)
        packets = mt.ffprobe_packets(packaged, "0")
        if kind == "video":
            ours, theirs = _video_hashes(packaged), _video_hashes_of_stream(source, index)
            assert any(ours[k : k + len(theirs)] == theirs for k in range(len(ours) - len(theirs) + 1)), \
                "the source's frames are not all in the packaged track, in order"
        else:
            theirs = [p for p in mt.ffprobe_packets(source, str(index)) if not p.discard]
            assert abs(len(packets) - len(theirs)) <= 1 or len(packets) == timeline.track.table.sample_count - int(
                timeline.first_sample[0])
        starts = timeline.first_sample - timeline.first_sample[0]
        assert all(packets[int(i)].keyframe for i in starts), "a segment does not start with a key frame"
        # No gap or overlap anywhere: each packaged decode time is the source sample's own (ffprobe,
        # edit list ignored) plus one constant. (ffprobe's packet durations of fragmented files are
        # estimates, so they make no oracle.)
        raw = mt.ffprobe_packets(source, str(index), ignore_editlist=True)[int(timeline.first_sample[0]):]
        assert len(raw) == len(packets)
        assert len({ours.dts_ticks - theirs.dts_ticks for ours, theirs in zip(packets, raw)}) == 1


def _video_hashes_of_stream(path, index: int) -> list[str]:
    proc = mt.run([mt.FFMPEG, "-nostdin", "-v", "error", "-flags2", "showall", "-i", str(path), "-map", f"0:{index}",
                   "-fps_mode", "passthrough", "-f", "framemd5", "-"], timeout=300)
    return [line.rsplit(",", 1)[1].strip() for line in proc.stdout.splitlines() if line and not line.startswith("#")]


def test_segments_follow_the_target_and_key_frames():
    path = MEDIA_ROOT / "mp4/long_1080p_lowbitrate.mp4"
    data = path.read_bytes()
    moov = next(s for s in iter_boxes(data, 0, len(data), "") if s.fourcc == b"moov")
    timelines = segment_movie(parse_moov(data[moov.offset : moov.end], len(data), 10**7), Fraction(4))
    keys = mt.video_keyframe_times(path)
    video = next(t for t in timelines if t.track.handler_type == b"vide")
    starts_s = [float(Fraction(int(t), video.timescale)) for t in video.presentation_time_ticks]
    # each boundary is the first key frame (per ffprobe) at or after a multiple of 4 s
    for start in starts_s[1:]:
        multiple = 4 * int(start // 4 + (0 if start % 4 else 0))
        assert min(k for k in keys if k >= multiple - 1e-6) == pytest.approx(start, abs=1e-3)
    total = sum(int(d) for d in video.duration_ticks) / video.timescale
    assert total == pytest.approx(mt.stream_duration_s(path, "v:0"), abs=0.05)
    for audio in (t for t in timelines if t.track.handler_type == b"soun"):
        audio_starts = [float(Fraction(int(t), audio.timescale)) for t in audio.presentation_time_ticks]
        frame_s = mt.audio_frame_duration_s(path)
        assert len(audio_starts) == len(starts_s)
        assert all(abs(a - v) <= frame_s + 1e-6 for a, v in zip(audio_starts, starts_s)), "audio cut off the video cuts"


def _quicktime_aac_96k(tmp_path) -> Path:
    """AAC at 96 kHz in a QuickTime file: ffmpeg writes a version 2 sound description (rate past 16 bits)."""
    path = tmp_path / "aac96k.mov"
    mt.run([mt.FFMPEG, "-nostdin", "-v", "error", "-f", "lavfi", "-i", "sine=sample_rate=96000", "-ac", "2", "-t", "1",
            "-c:a", "aac", "-f", "mov", str(path)])
    return path


@pytest.mark.parametrize("name", ["mov/bt601.mov", "mov/dolbyVision-hdr.MOV", "mov/sample_edit_list.mp4", "v2"])
def test_quicktime_sound_descriptions_become_iso_audio_entries(name, tmp_path):
    """Regression: a QuickTime sound description (version 1 or 2, esds inside `wave`) was copied verbatim into the
    CMAF header, so an ISO parser read the QuickTime extension as child boxes and lost the esds: mp4box.js said
    "mp4a" instead of "mp4a.40.2". Now mp4box.js reads the header alone as an AAC entry with the channel count and
    rate ffprobe gives for the source, and ffprobe decodes init + segments as the same AAC stream."""
    source = _quicktime_aac_96k(tmp_path) if name == "v2" else MEDIA_ROOT / name
    streams = {int(s["id"], 16): s for s in mt.ffprobe_streams(source)}
    audio = [(timeline, path) for timeline, path in _package(source, tmp_path)
             if timeline.track.handler_type == b"soun"]
    assert audio
    for timeline, path in audio:
        stream = streams[timeline.track.track_id]
        init = tmp_path / f"init{timeline.track.track_id}.mp4"
        init.write_bytes(cmaf_header(timeline.track))
        answer = mt.mp4box_probe({"tracks": [{"name": "a", "init": str(init), "segments": []}]})["tracks"][0]
        assert answer["codec"] == "mp4a.40.2" and not answer["errors"]
        assert answer["audio"]["channel_count"] == stream["channels"]
        rate = int(stream["sample_rate"])
        assert answer["audio"]["sample_rate"] == (rate if rate < 65536 else 0)  # 16.16 field; the esds has the rate
        ours = next(s for s in mt.ffprobe_streams(path) if s["codec_type"] == "audio")
        assert (ours["codec_name"], ours["profile"], ours["sample_rate"], ours["channels"]) == (
            "aac", stream["profile"], stream["sample_rate"], stream["channels"])
        assert mt.decode_errors(path) == ""
