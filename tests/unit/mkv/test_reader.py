"""The incremental Matroska reader over real files: ffmpeg-made live feeds and ../shared/media/mkv, fed in
chunks of every size; hostile input (hypothesis + mutations of real feeds) ends in a mapped error, never a
crash or hang."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from origin_proxy.errors import IngestError, MalformedIngest, UnsupportedIngest
from origin_proxy.mkv.reader import NEED_DATA, Block, ClusterEnd, EndOfStream, Header, MatroskaReader
from relay_media import H264_OPUS, make_feed, packets

from conftest import media


@pytest.fixture(scope="module")
def live_feed(tmp_path_factory):
    return make_feed(tmp_path_factory.mktemp("mkv") / "live.mkv", H264_OPUS, 3)


def read_all(data: bytes, chunk: int, **caps) -> list:
    reader = MatroskaReader(**caps)
    events = []
    for pos in range(0, len(data), chunk):
        reader.receive_data(data[pos:pos + chunk])
        while (event := reader.next_event()) is not NEED_DATA:
            events.append(event)
    reader.receive_data(b"")
    while (event := reader.next_event()) is not NEED_DATA:
        events.append(event)
    return events


@pytest.mark.parametrize("chunk", [1, 7, 4096, 1 << 20])
def test_blocks_match_ffprobe(live_feed, chunk):
    data = live_feed.read_bytes()
    events = read_all(data, chunk if chunk > 1 else 1) if chunk > 1 else read_all(data[:60_000], 1)
    header = events[0]
    assert isinstance(header, Header) and header.doc_type == "matroska"
    assert [t.codec_id for t in header.track_list] == ["V_MPEG4/ISO/AVC", "A_OPUS"]
    blocks = [e for e in events if isinstance(e, Block)]
    probe = packets(live_feed)
    if chunk == 1:
        probe = probe[:len(blocks)]
    assert [(b.timestamp / 1000, b.keyframe) for b in blocks if b.track == 1] == \
        [(p["pts"], p["key"]) for p in probe if p["type"] == "video"]
    audio = [b.timestamp for b in blocks if b.track == 2]
    probed = [round(p["pts"] * 1000) for p in probe if p["type"] == "audio"]
    assert [t - audio[0] for t in audio] == [t - probed[0] for t in probed]  # ffprobe subtracts Opus CodecDelay
    if chunk > 1:
        assert isinstance(events[-1], EndOfStream) and not events[-1].truncated
        assert sum(isinstance(e, ClusterEnd) for e in events) > 3


@pytest.mark.parametrize("name", ["mkv/sample.mkv", "mkv/bbb_642x642_768kbps_30fps_vp9.webm",
                                  "mkv/bbb_1ch_48kHz_q10_opus.webm"])
def test_shared_media(name):
    path = media(name)
    events = read_all(path.read_bytes(), 65536)
    blocks = [e for e in events if isinstance(e, Block)]
    probe = packets(path)
    assert sum(b.frames for b in blocks) == len(probe)  # laced frames are packets of their own
    assert sum(b.frames for b in blocks if b.keyframe) == sum(p["key"] for p in probe)


def test_not_matroska_is_415_after_four_bytes():
    reader = MatroskaReader()
    reader.receive_data(b"\x00\x00\x00\x20ftypisom")
    with pytest.raises(UnsupportedIngest):
        reader.next_event()


def test_caps(live_feed):
    data = live_feed.read_bytes()
    with pytest.raises(MalformedIngest, match="header"):
        read_all(data, 4096, max_header_bytes=200)
    with pytest.raises(MalformedIngest, match="Cluster"):
        read_all(data, 4096, max_cluster_bytes=2000)


def _drain(data: bytes) -> None:
    try:
        events = read_all(data, 997, max_header_bytes=1 << 16, max_cluster_bytes=1 << 20)
    except IngestError:
        return
    assert isinstance(events[-1], EndOfStream)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=2000))
def test_random_bytes(data):
    _drain(b"\x1a\x45\xdf\xa3" + data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_real_feed(live_feed, data):
    feed = bytearray(live_feed.read_bytes()[:40_000])
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(feed) - 1))
        feed[pos] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        cut = data.draw(st.integers(0, len(feed)))
        feed = feed[:cut]
    _drain(bytes(feed))


def test_many_random_mutations_of_real_files(live_feed):
    rng = random.Random(12)
    seeds = [live_feed.read_bytes()[:30_000], media("mkv/sample.mkv").read_bytes()[:30_000]]
    for _ in range(300):
        feed = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            feed[rng.randrange(len(feed))] = rng.randrange(256)
        _drain(bytes(feed))
