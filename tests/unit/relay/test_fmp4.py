"""Fragmented MP4 feeds: the shared media's fragmented files cut at sync samples; hostile input gives 415/400."""

from __future__ import annotations

import pytest

from origin_proxy.errors import MalformedIngest, UnsupportedIngest
from origin_proxy.relay.cutter import ClusterOut, StreamHeader
from origin_proxy.relay.fmp4 import Fmp4Cutter

from conftest import media


def cut(data: bytes, step: int = 3000) -> list:
    cutter, out = Fmp4Cutter(), []
    for pos in range(0, len(data), step):
        out += cutter.receive(data[pos:pos + step])
    return out + cutter.receive(b"")


def test_cmaf_segments_with_styp():
    data = media("fmp4/v300_multiple_segments.mp4").read_bytes()
    out = cut(data)
    assert isinstance(out[0], StreamHeader) and out[0].data.startswith(data[:8])
    fragments = [o for o in out if isinstance(o, ClusterOut)]
    assert len(fragments) == 4 and all(f.gop_start for f in fragments)  # every CMAF segment starts with sync
    assert all(b"styp" not in f.data[:8] for f in fragments) and all(f.data[4:8] == b"moof" for f in fragments)
    assert [f.start_s for f in fragments] == sorted(f.start_s for f in fragments)


def test_audio_only_feed_cut_every_second():
    out = cut(media("fmp4/sample_opus_fragmented.mp4").read_bytes())
    fragments = [o for o in out if isinstance(o, ClusterOut)]
    starts = [f.start_s for f in fragments if f.gop_start]
    assert len(fragments) == 5 and len(starts) == 3 and all(b - a >= 1.0 for a, b in zip(starts, starts[1:]))


def test_absolute_base_data_offsets_are_400():
    with pytest.raises(MalformedIngest, match="base_data_offset"):
        cut(media("fmp4/sample_fragmented.mp4").read_bytes())


def test_not_mp4_is_415():
    with pytest.raises(UnsupportedIngest):
        cut(media("mkv/sample.mkv").read_bytes()[:100])


def test_moof_before_moov_and_huge_boxes_are_400():
    data = media("fmp4/sample_with_increasing_timestamps_320w_240h_fragmented.mp4").read_bytes()
    moof = data.index(b"moof") - 4
    with pytest.raises(MalformedIngest):
        cut(data[:8] + data[moof:])  # a moov-less header: starts with ftyp's size... then a moof
    with pytest.raises(MalformedIngest, match="over the cap"):
        cut(b"\x7f\xff\xff\xffmoov")
