"""SampleTable against an independent oracle: ffprobe's packet list with edit lists ignored.

Sizes, byte positions and sync flags must match exactly; decode and composition times up to one constant
shift per track (ffmpeg moves dts back when composition offsets are negative). time_base is 1/timescale.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

import mediatools as mt
from conftest import MEDIA_ROOT
from origin_proxy.isobmff.header import iter_boxes
from origin_proxy.isobmff.movie import parse_moov

VALID = sorted(p.relative_to(MEDIA_ROOT).as_posix() for d in ("mp4", "mov") for p in (MEDIA_ROOT / d).iterdir())


def _movie(path):
    data = path.read_bytes()
    moov = next(s for s in iter_boxes(data, 0, len(data), "") if s.fourcc == b"moov")
    return parse_moov(data[moov.offset : moov.end], len(data), max_samples=10_000_000)


@pytest.mark.parametrize("name", VALID)
def test_sample_table_matches_ffprobe(name):
    path = MEDIA_ROOT / name
    movie = _movie(path)
    streams = mt.ffprobe_streams(path)
    by_id = {int(s["id"], 16) if str(s.get("id", "")).startswith("0x") else i + 1: (i, s) for i, s in enumerate(streams)}
    assert movie.tracks, "no media track parsed"
    for track in movie.tracks:
        index, stream = by_id[track.track_id]
        assert stream["codec_type"] == {b"vide": "video", b"soun": "audio"}[track.handler_type]
        packets = mt.ffprobe_packets(path, str(index), ignore_editlist=True)
        table = track.table
        if stream["codec_name"].startswith("pcm_"):
            # ffmpeg packs raw PCM samples into one packet per chunk: compare bytes and chunk starts.
            assert sum(p.size for p in packets) == int(table.size_bytes.sum())
            assert {p.pos for p in packets} <= set(table.sample_offsets(0, table.sample_count).tolist())
            continue
        assert len(packets) == table.sample_count
        assert [p.size for p in packets] == table.size_bytes.tolist()
        assert [p.pos for p in packets] == table.sample_offsets(0, table.sample_count).tolist()
        assert [p.keyframe for p in packets] == table.is_sync.tolist()
        assert {str(p.time_base) for p in packets} == {f"1/{table.timescale}"}
        dts = np.array([p.dts_ticks for p in packets], dtype=np.int64)
        pts = np.array([p.pts_ticks for p in packets], dtype=np.int64)
        assert len(set((dts - table.dts_ticks).tolist())) == 1, "decode times differ by more than a constant"
        ours_pts = table.dts_ticks + table.cts_offset_ticks
        assert len(set((pts - ours_pts).tolist())) == 1, "composition times differ by more than a constant"


def test_quicktime_second_hdlr_does_not_reclassify_tracks():
    # bt601.mov: mdia/hdlr says soun/vide, minf/hdlr says alis; audio is the first track.
    movie = _movie(MEDIA_ROOT / "mov/bt601.mov")
    assert [t.handler_type for t in movie.tracks] == [b"soun", b"vide"]


def test_metadata_tracks_are_not_media_tracks():
    movie = _movie(MEDIA_ROOT / "mp4/h265_with_metadata_track.mp4")
    assert sorted(t.handler_type for t in movie.tracks) == [b"soun", b"vide"]
    kinds = [s["codec_type"] for s in mt.ffprobe_streams(MEDIA_ROOT / "mp4/h265_with_metadata_track.mp4")]
    assert "data" in kinds  # the oracle sees the third track we leave out


@pytest.mark.parametrize("name", ["mp4/bbb_prog_10s.mp4", "mp4/h265_bframes.mp4"])
def test_run_windows_equal_the_encoded_columns(name):
    """stts/ctts windows sliced from the cached runs are the bytes encoding that window of the per-sample columns
    would give (the rewritten moov is made of them), for windows starting and ending inside runs and on their
    edges."""
    from origin_proxy.isobmff.boxes.ctts import build_ctts
    from origin_proxy.isobmff.boxes.stts import build_stts

    table = _movie(MEDIA_ROOT / name).tracks[0].table
    n = table.sample_count
    rng = np.random.default_rng(7)
    windows = [(0, n), (0, 1), (n - 1, n)] + [tuple(sorted(rng.choice(n + 1, 2, replace=False))) for _ in range(40)]
    for first, stop in windows:
        count, pieces = table.stts.window(first, stop)
        assert struct.pack(">B3xI", 0, count) + b"".join(bytes(p) for p in pieces) == \
            build_stts(table.duration_ticks[first:stop]), (first, stop)
        if table.ctts is not None and table.cts_min_ticks >= 0:
            count, pieces = table.ctts.window(first, stop)
            assert struct.pack(">B3xI", 0, count) + b"".join(bytes(p) for p in pieces) == \
                build_ctts(table.cts_offset_ticks[first:stop].astype(np.int64)), (first, stop)


@pytest.mark.parametrize("name", ["mp4/bbb_prog_10s.mp4", "mp4/sample_ac3_aac.mp4", "mov/sowt-with-video.mov",
                                  "mp4/edit_list_positive_shift.mp4"])
def test_stsc_windows_place_every_sample(name):
    """The stsc entries of a window, expanded over its chunks, give each kept chunk exactly the kept samples it
    holds (first and last chunk cut), and the promised entry count is the count made."""
    for track in _movie(MEDIA_ROOT / name).tracks:
        chunks, n = track.table.chunks, track.table.sample_count
        rng = np.random.default_rng(11)
        windows = [(0, n), (n - 1, n)] + [tuple(sorted(rng.choice(n + 1, 2, replace=False))) for _ in range(60)]
        for first, stop in windows:
            ca, cb, count, make = chunks.stsc_window(first, stop)
            entries = make()
            assert len(entries) == count and entries["first_chunk"][0] == 1
            assert np.all(np.diff(entries["first_chunk"].astype(np.int64)) > 0)
            runs = np.diff(np.append(entries["first_chunk"].astype(np.int64), cb - ca + 2))
            per_chunk = np.repeat(entries["samples_per_chunk"].astype(np.int64), runs)
            expected = np.diff(np.clip(chunks.first_sample[ca : cb + 2].astype(np.int64), first, stop))
            assert per_chunk.tolist() == expected.tolist(), (track.track_id, first, stop)
