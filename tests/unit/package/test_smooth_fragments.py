"""package/smooth.py on real files, pure: every Smooth fragment's trun, read back, puts each sample at exactly its
source presentation time rescaled to 10 MHz, and its decode times run on across fragments without gaps.

Per fragment: presentation time of sample k = c@t + (sum of the trun durations before k) + its composition offset,
which is how a Smooth client (dash.js MSS writes tfdt = c@t) times it. Expected: floor(pts * 10^7 / timescale)
of the sample's output presentation time (segmenter.py). The mdat source ranges hold the trun's sample bytes.
"""

from __future__ import annotations

import struct
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest

from conftest import MEDIA_ROOT
from origin_proxy.errors import NotFound, UnpackageableMedia
from origin_proxy.isobmff.header import iter_boxes
from origin_proxy.isobmff.movie import parse_moov
from origin_proxy.package.smooth import TFXD_UUID, client_manifest, rescale, smooth_fragment, smooth_presentation
from origin_proxy.package.tracks import Packaging, package_movie

FILES = ["mp4/bbb_prog_10s.mp4", "mp4/sample.mp4", "mp4/edts.mp4", "mp4/prog_8s.mp4",
         "mp4/sample_2_byte_NAL_length.mp4", "mp4/multiple-aac-tracks.mp4", "mp4/cursed-vfr.mp4",
         "mp4/silent-black-10s.mp4"]


def _packaging(name: str):
    data = (MEDIA_ROOT / name).read_bytes()
    moov = next(s for s in iter_boxes(data, 0, len(data), "") if s.fourcc == b"moov")
    return package_movie(parse_moov(data[moov.offset : moov.end], len(data), 10**7), Fraction(2))


def _trun(head: bytes) -> np.ndarray:
    at = head.find(b"trun") - 4
    count = struct.unpack_from(">I", head, at + 12)[0]
    return np.frombuffer(head, dtype=[("d", ">u4"), ("s", ">u4"), ("f", ">u4"), ("o", ">i4")], count=count,
                         offset=at + 20)


@pytest.mark.parametrize("name", FILES)
def test_fragments_time_every_sample_exactly(name):
    streams = smooth_presentation(_packaging(name)).streams
    assert [s.name for s in streams][:1] in (["video"], ["audio"])
    assert len({s.name for s in streams}) == len(streams)
    for stream in streams:
        assert len(stream.levels) == 1
        level = stream.levels[0]
        tl = level.track.timeline
        table = tl.track.table
        decoded = 0
        for index in range(tl.segment_count):
            head, ranges = smooth_fragment(stream, level, index)
            samples = _trun(head)
            window = slice(int(tl.first_sample[index]), int(tl.stop_sample[index]))
            pts = table.dts_ticks[window] + tl.decode_shift_ticks + table.cts_offset_ticks[window] \
                + tl.composition_shift_ticks
            cumulative = np.concatenate(([0], np.cumsum(samples["d"].astype(np.int64))[:-1]))
            ours = int(stream.starts[index]) + cumulative + samples["o"]
            assert np.array_equal(ours, rescale(pts, tl.timescale)), (stream.name, index)
            assert sum(r.size for r in ranges) == int(samples["s"].sum())
            at = head.find(TFXD_UUID)
            assert struct.unpack_from(">QQ", head, at + 20) == (int(stream.starts[index]),
                                                              int(stream.durations[index]))
            decoded += int(samples["d"].astype(np.int64).sum())
        first, last = int(tl.first_sample[0]), int(tl.stop_sample[-1]) - 1
        begin = int(table.dts_ticks[first]) + tl.decode_shift_ticks
        end = int(table.dts_ticks[last] + table.duration_ticks[last]) + tl.decode_shift_ticks
        assert decoded == int(rescale(end, tl.timescale)) - int(rescale(begin, tl.timescale))  # no gap, no overlap
    assert "<SmoothStreamingMedia" in client_manifest(streams)


def test_nothing_smooth_can_carry_is_unpackageable():
    with pytest.raises(UnpackageableMedia):
        smooth_presentation(_packaging("mp4/sample_opus.mp4"))


@pytest.mark.parametrize("timescale", [1, 30000, 44100, 48000, 90000, 10**7, 10**9, 2**32 - 1])
def test_rescale_is_exact_floor_without_overflow(timescale):
    ticks = np.array([0, 1, -1, timescale - 1, -timescale, 10**11, -(10**11), 2**36 + 12345], dtype=np.int64)
    assert [int(x) for x in rescale(ticks, timescale)] == [int(t) * 10**7 // timescale for t in ticks]


def test_video_variants_share_one_stream_index_and_unique_bitrates():
    """The same video twice at one declared systemBitrate, then a video whose key frames fall elsewhere (a set's
    Packaging, in this order): one "video" StreamIndex of two QualityLevels (the repeated Bitrate raised by 1 bps so URLs tell them
    apart), the third left out as misaligned; each level's fragment carries its own file's samples."""
    bbb, edts = _packaging("mp4/bbb_prog_10s.mp4"), _packaging("mp4/edts.mp4")
    bbb_video = next(t for t in bbb.tracks if t.is_video)
    edts_video = next(t for t in edts.tracks if t.is_video)
    assert [round(int(t) / edts_video.timeline.timescale, 3) for t in edts_video.timeline.presentation_time_ticks] \
        != [round(int(t) / bbb_video.timeline.timescale, 3) for t in bbb_video.timeline.presentation_time_ticks]
    members = (replace(bbb_video, rep_id="v1", system_bitrate_bps=500_000),
               replace(bbb_video, rep_id="v2", system_bitrate_bps=500_000),
               replace(edts_video, rep_id="v3", system_bitrate_bps=900_000),
               replace(next(t for t in bbb.tracks if not t.is_video), rep_id="a4"))
    presentation = smooth_presentation(Packaging(members, Fraction(2)))
    assert [s.name for s in presentation.streams] == ["video", "audio"]
    video = presentation.streams[0]
    assert [(level.index, level.track.representation_id, level.bitrate) for level in video.levels] == \
        [(0, "v1", 500_000), (1, "v2", 500_001)]
    assert [t.representation_id for t in presentation.misaligned] == ["v3"]
    stream, level = presentation.find("video", 500_001)
    assert level is video.levels[1] and stream is video
    with pytest.raises(NotFound):
        presentation.find("video", 900_000)
    with pytest.raises(NotFound):
        presentation.find("audio_a4", presentation.streams[1].levels[0].bitrate)
    head0, ranges0 = smooth_fragment(video, video.levels[0], 2)
    head1, ranges1 = smooth_fragment(video, video.levels[1], 2)
    assert head0 == head1 and ranges0 == ranges1  # the same file twice: the same bytes, whichever level
    manifest = client_manifest(presentation.streams)
    assert manifest.count("<QualityLevel ") == 3 and 'QualityLevels="2"' in manifest
