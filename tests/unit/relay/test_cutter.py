"""GOP cutter over a real ffmpeg feed (ffmpeg writes ~32 KB clusters, most starting mid-GOP), read twice in a row
as a looping input would be: the output decodes, every GOP starts with a key frame, timestamps continue."""

from __future__ import annotations


import pytest

from origin_proxy.mkv import ebml
from origin_proxy.mkv.reader import NEED_DATA, Block, Header, MatroskaReader
from origin_proxy.relay.cutter import ClusterOut, GopCutter, StreamEnd, StreamHeader
from relay_media import H264_OPUS, check_capture, make_feed

from conftest import media


@pytest.fixture(scope="module")
def feed(tmp_path_factory):
    return make_feed(tmp_path_factory.mktemp("cut") / "feed.mkv", H264_OPUS, 3)


def cut(data: bytes) -> list:
    reader, cutter, out = MatroskaReader(), GopCutter(), []
    for pos in range(0, len(data), 5000):
        reader.receive_data(data[pos:pos + 5000])
        while (event := reader.next_event()) is not NEED_DATA:
            out += cutter.push(event)
    reader.receive_data(b"")
    while (event := reader.next_event()) is not NEED_DATA:
        out += cutter.push(event)
    return out


def reread(data: bytes) -> list:
    reader = MatroskaReader()
    reader.receive_data(data)
    reader.receive_data(b"")
    events = []
    while (event := reader.next_event()) is not NEED_DATA:
        events.append(event)
    return events


def test_feed_mid_gop_clusters_exist(feed):
    """The premise: the input's clusters do not all start at key frames (so re-clustering is exercised)."""
    starts = []
    reader = MatroskaReader()
    reader.receive_data(feed.read_bytes())
    first_in_cluster = True
    while (event := reader.next_event()) is not NEED_DATA:
        if isinstance(event, Block) and event.track == 1:
            if first_in_cluster:
                starts.append(event.keyframe)
            first_in_cluster = False
        elif not isinstance(event, (Block, Header)):
            first_in_cluster = True
    assert False in starts


def test_looped_feed_is_one_clean_stream(feed, tmp_path):
    out = cut(feed.read_bytes() * 2)
    assert isinstance(out[0], StreamHeader) and not out[0].changed
    assert isinstance(out[-1], StreamEnd)
    assert sum(isinstance(o, StreamHeader) for o in out) == 1  # same Tracks: continued, no new header
    clusters = [o for o in out if isinstance(o, ClusterOut)]
    capture = tmp_path / "cap.mkv"
    capture.write_bytes(out[0].data + b"".join(c.data for c in clusters))
    pkts = check_capture(capture)
    assert max(p["pts"] for p in pkts) > 5.5  # 2 x 3 s, continued
    for cluster in clusters:
        blocks = [e for e in reread(out[0].data + cluster.data) if isinstance(e, Block)]
        video = [b for b in blocks if b.track == 1]
        if cluster.gop_start:
            assert video and video[0].keyframe and blocks[0] is video[0]
        else:
            assert not any(b.keyframe for b in video)


def test_header_has_no_seekhead_cues_or_duration():
    out = cut(media("mkv/sample.mkv").read_bytes())
    header = out[0].data
    segment_start = len(out[0].header.ebml)
    assert header.startswith(out[0].header.ebml)
    assert header[segment_start:segment_start + 12] == bytes.fromhex("18538067 01ffffffffffffff")
    level1 = [child_id for child_id, _ in ebml.children(header[segment_start + 12:], "Segment")]
    assert level1 == [ebml.INFO, ebml.TRACKS]
    info = ebml.children(header[segment_start + 12:], "Segment")[0][1]
    assert ebml.DURATION not in [child_id for child_id, _ in ebml.children(info, "Info")]
    assert b"".join(o.data for o in out if isinstance(o, ClusterOut))  # sample.mkv cut too


def test_changed_tracks_give_a_new_header(feed):
    other = media("mkv/bbb_642x642_768kbps_30fps_vp9.webm").read_bytes()
    out = cut(feed.read_bytes() + other)
    headers = [o for o in out if isinstance(o, StreamHeader)]
    assert [h.changed for h in headers] == [False, True]
