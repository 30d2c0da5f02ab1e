"""live/ingest.py: real ffmpeg captures parsed at any chunking; errors mapped; fuzzed without crash or hang."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from origin_proxy.errors import IngestError, IngestOutOfOrder, MalformedIngest
from origin_proxy.live.ingest import NEED_DATA, EndOfStream, Fragment, Header, IngestParser


def run(data: bytes, chunk: int = 4096, parser: IngestParser | None = None) -> list:
    parser = parser or IngestParser()
    events = []
    for i in range(0, len(data), chunk):
        parser.feed(data[i : i + chunk])
        while (event := parser.next_event()) is not NEED_DATA:
            events.append(event)
        assert parser.buffered_bytes <= 1 << 20
    parser.feed(b"")
    while (event := parser.next_event()) is not NEED_DATA:
        events.append(event)
    return events


@pytest.mark.parametrize("chunk", [1, 7, 1000, 1 << 20])
def test_smooth_capture_at_any_chunking(smooth_capture, chunk):
    data = smooth_capture.read_bytes()
    header, *fragments, end = run(data, chunk)
    assert isinstance(header, Header) and [t.kind for t in header.tracks] == ["video", "audio"]
    assert header.track(2).bitrate_bps == 64000  # the SMIL systemBitrate
    assert header.track(1).timescale == 10_000_000
    assert all(isinstance(f, Fragment) for f in fragments) and len(fragments) >= 6
    assert end == EndOfStream(True)
    assert sum(f.nbytes for f in fragments) + len(header.ftyp) + len(header.moov) < len(data)


def test_cmaf_capture(cmaf_capture):
    header, *fragments, end = run(cmaf_capture.read_bytes())
    assert header.tracks[0].codecs.startswith("avc1.")
    times = [f.parsed.trafs[0].decode_time for f in fragments]
    assert times == sorted(times) and times[0] == 0
    assert end.signalled


def test_fragment_before_header_is_412(cmaf_capture):
    data = cmaf_capture.read_bytes()
    first_moof = data.index(b"moof") - 4
    with pytest.raises(IngestOutOfOrder):
        run(data[first_moof:])


def test_garbage_is_refused_at_its_first_box():
    parser = IngestParser()
    parser.feed(b"\x00\x00\x00\x10junk" + bytes(1 << 16))
    with pytest.raises(MalformedIngest):
        parser.next_event()
    parser = IngestParser()
    parser.feed(struct.pack(">I4s", 0xFFFFFFFF, b"moov"))  # a 4 GiB header is never buffered
    with pytest.raises(MalformedIngest):
        parser.next_event()


def test_truncated_fragment_is_an_error_not_an_event(cmaf_capture):
    data = cmaf_capture.read_bytes()
    cut = data.rindex(b"mdat") + 100
    parser = IngestParser()
    events = []
    with pytest.raises(MalformedIngest):
        events.extend(run(data[:cut], parser=parser))
    fragments = [e for e in parser_events(data[:cut]) if isinstance(e, Fragment)]
    complete = data[:cut].count(b"moof") - 1
    assert len(fragments) == complete


def parser_events(data: bytes) -> list:
    parser = IngestParser()
    parser.feed(data)
    events = []
    try:
        while (event := parser.next_event()) is not NEED_DATA:
            events.append(event)
    except IngestError:
        pass
    return events


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_captures_give_events_or_mapped_errors(smooth_capture, cmaf_capture, data):
    raw = bytearray(data.draw(st.sampled_from([smooth_capture, cmaf_capture])).read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    chunk = data.draw(st.integers(1, 65536))
    parser = IngestParser()
    try:
        for event in run(bytes(raw), chunk, parser):
            if isinstance(event, Fragment):  # an emitted fragment is whole and consistent
                for traf in event.parsed.trafs:
                    assert traf.data_offset + traf.data_bytes <= event.nbytes
    except IngestError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=4096))
def test_random_bodies_give_mapped_errors(body):
    try:
        run(body, 97)
    except IngestError:
        pass
