"""Keep the oracles honest: tests/mediatools.py checked on generated movies and on shared media with known facts.

The facts for shared files come from ../shared/media/README.md (ffprobe 5.1 summaries), not from our parser.
"""

from __future__ import annotations

import shutil
from fractions import Fraction

import pytest

import mediatools
from media_fixtures import media  # fixtures come from conftest (pytest_plugins)


def box_order(path) -> list[str]:
    return [fourcc for fourcc, _, _ in mediatools.top_level_boxes(path)]


# ----------------------------------------------------------------------------------------- generated movies


def test_movie_60s_has_bframes_aac_and_faststart(movie_60s):
    streams = mediatools.ffprobe_streams(movie_60s)
    video = [s for s in streams if s["codec_type"] == "video"]
    audio = [s for s in streams if s["codec_type"] == "audio"]
    assert [s["codec_name"] for s in video] == ["h264"]
    assert [s["codec_name"] for s in audio] == ["aac"]
    assert video[0]["has_b_frames"] > 0
    assert (video[0]["width"], video[0]["height"]) == (320, 240)
    assert int(audio[0]["sample_rate"]) == 48000 and audio[0]["channels"] == 2
    assert mediatools.duration_s(movie_60s) == pytest.approx(60.0, abs=0.05)
    assert mediatools.stream_duration_s(movie_60s, "v:0") == pytest.approx(60.0, abs=0.05)
    order = box_order(movie_60s)
    assert order.index("moov") < order.index("mdat")


def test_movie_10min_has_moov_at_end(movie_10min_moov_end):
    assert box_order(movie_10min_moov_end)[-1] == "moov"
    assert mediatools.duration_s(movie_10min_moov_end) == pytest.approx(600.0, abs=0.05)
    video = mediatools.ffprobe_streams(movie_10min_moov_end)[0]
    assert video["codec_type"] == "video" and video["has_b_frames"] > 0
    assert mediatools.decode_errors(movie_10min_moov_end) == ""


def test_frame_durations(movie_60s):
    assert mediatools.video_frame_duration_s(movie_60s) == pytest.approx(1 / 25)
    assert mediatools.audio_frame_duration_s(movie_60s) == pytest.approx(1024 / 48000)


def test_start_times_of_generated_movie(movie_60s):
    # ffmpeg hides the B-frame delay and the AAC priming with edit lists: both tracks present from 0.
    assert mediatools.video_start_s(movie_60s) == 0.0
    assert mediatools.audio_start_s(movie_60s) == 0.0


def test_keyframes_are_irregular_subset_of_frames(movie_60s):
    frames = mediatools.video_frame_times(movie_60s)
    keys = mediatools.video_keyframe_times(movie_60s)
    assert len(frames) == 1500
    assert frames == sorted(frames) and len(set(frames)) == len(frames)
    assert set(keys) <= set(frames)
    assert keys[0] == frames[0] == 0.0
    gaps = {round(b - a, 3) for a, b in zip(keys, keys[1:])}
    assert len(gaps) > 3, f"GOP lengths should vary, got {sorted(gaps)}"
    assert max(gaps) <= 48 / 25 + 1e-9  # -g 48 at 25 fps


def test_packets_match_stream_counts_and_file(movie_60s):
    size_bytes = movie_60s.stat().st_size
    for sel, stream in (("v:0", 0), ("a:0", 1)):
        packets = mediatools.ffprobe_packets(movie_60s, sel, ignore_editlist=True)
        assert len(packets) == int(mediatools.ffprobe_streams(movie_60s)[stream]["nb_frames"])
        assert all(p.pos is not None and 0 <= p.pos and p.pos + p.size <= size_bytes for p in packets)
        assert sum(p.size for p in packets) < size_bytes
        first = packets[0]
        assert first.keyframe
        assert first.pts_s == first.pts_ticks * first.time_base
    video = mediatools.ffprobe_packets(movie_60s, "v:0", ignore_editlist=True)
    assert video[0].time_base == Fraction(1, 12800)  # ffmpeg's mp4 muxer: 512 ticks per frame at 25 fps
    assert any(p.pts_ticks != p.dts_ticks for p in video), "B-frames must give composition offsets"
    # Raw timing: decode times start at 0 and the presentation of the first frame is delayed by the reorder.
    assert video[0].dts_ticks == 0 and video[0].pts_ticks > 0


def test_framemd5_is_deterministic_and_seek_dependent(movie_60s):
    assert mediatools.framemd5(movie_60s, 3) == mediatools.framemd5(movie_60s, 3)
    assert len(mediatools.framemd5(movie_60s, 3)) == 3
    assert mediatools.framemd5(movie_60s, 2, seek_s=10.0) != mediatools.framemd5(movie_60s, 2, seek_s=20.0)


def test_framemd5_seek_means_first_frame_at_or_after(movie_60s):
    frames = mediatools.video_frame_times(movie_60s)
    keys = set(mediatools.video_keyframe_times(movie_60s))
    sequential = mediatools.framemd5(movie_60s, 40)
    k = next(i for i in range(5, 40) if frames[i] not in keys and frames[i - 1] not in keys)
    # At a non-key frame: same picture as decoding from the start (ffmpeg decodes from the key frame before).
    assert mediatools.first_frame_md5_at(movie_60s, frames[k]) == sequential[k]
    # Between two frames: the later one.
    midpoint = (frames[k - 1] + frames[k]) / 2
    assert mediatools.framemd5(movie_60s, 2, seek_s=midpoint) == sequential[k : k + 2]


def test_decode_errors_clean_then_truncated(movie_60s, tmp_path):
    assert mediatools.decode_errors(movie_60s) == ""
    truncated = tmp_path / "truncated.mp4"
    with open(movie_60s, "rb") as src, open(truncated, "wb") as dst:
        dst.write(src.read(movie_60s.stat().st_size * 2 // 3))
    assert mediatools.decode_errors(truncated) != ""


def test_run_reports_failure_with_stderr(tmp_path):
    with pytest.raises(mediatools.MediaToolError, match="exit"):
        mediatools.run([mediatools.FFPROBE, "-v", "error", tmp_path / "missing.mp4"], timeout=30)


@pytest.mark.slow
def test_movie_large_is_big_progressive_av(movie_large):
    assert movie_large.stat().st_size >= 100 * 2**20
    kinds = sorted(s["codec_type"] for s in mediatools.ffprobe_streams(movie_large))
    assert kinds == ["audio", "video"]
    order = box_order(movie_large)
    assert "moof" not in order and order.count("mdat") == 1 and "moov" in order
    assert mediatools.decode_errors(movie_large) == ""


# ----------------------------------------------------------------------------------------- shared media


def test_empty_edit_delays_start_and_seek_is_absolute():
    path = media("mp4/edit_list_positive_shift.mp4")  # README: 1 s empty edit before the media
    assert mediatools.video_start_s(path) == pytest.approx(1.0)
    frames = mediatools.video_frame_times(path)
    assert frames[0] == pytest.approx(1.0)
    assert mediatools.framemd5(path, 2, seek_s=frames[0]) == mediatools.framemd5(path, 2)
    assert mediatools.first_frame_md5_at(path, (frames[1] + frames[2]) / 2) == mediatools.framemd5(path, 3)[2]


def test_framemd5_refuses_a_broken_decode():
    path = media("fate/empty_edit_5s.mp4")  # 4:4:4 stream ffmpeg 5.1 decodes with errors ("gray chroma")
    assert mediatools.video_start_s(path) == pytest.approx(5.0)
    with pytest.raises(mediatools.MediaToolError, match="decode errors"):
        mediatools.framemd5(path, 2)


def test_audio_empty_edit_and_frame_duration():
    path = media("mp4/sample.mp4")  # README: AAC 44100 Hz, audio start=0.043991 (empty edit)
    assert mediatools.audio_start_s(path) == pytest.approx(0.043991, abs=1e-6)
    assert mediatools.audio_frame_duration_s(path) == pytest.approx(1024 / 44100)
    assert len(mediatools.ffprobe_packets(path, "v:0", ignore_editlist=True)) == 30


def test_edit_list_discarded_packets_are_not_frames():
    path = media("fate/mov-3elist.mov")  # README: three edits, 48 samples, 2.0 s at 24 fps
    packets = mediatools.ffprobe_packets(path, "v:0")
    presented = mediatools.video_frame_times(path)
    assert len(presented) == sum(1 for p in packets if not p.discard) < len(packets)
    assert len(mediatools.ffprobe_packets(path, "v:0", ignore_editlist=True)) == 48


def test_media_helper_fails_loudly():
    with pytest.raises(FileNotFoundError):
        media("mp4/no-such-file.mp4")


def test_decode_errors_on_shared_malformed_file():
    assert mediatools.decode_errors(media("malformed/init_truncated.mp4")) != ""


def test_copy_is_identical_by_framemd5(movie_60s, tmp_path):
    copy = tmp_path / "copy.mp4"
    shutil.copyfile(movie_60s, copy)
    assert mediatools.framemd5(copy, 3, seek_s=30.0) == mediatools.framemd5(movie_60s, 3, seek_s=30.0)
