"""live/index.py, live/state.py and live/point.py without HTTP: a real ffmpeg CMAF capture fed as parser events
into a PublishingPoint over a temporary directory (pruning, archive, reload, end of stream, new event)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from origin_proxy.config import LiveSettings
from origin_proxy.errors import Conflict, IngestError, MalformedIngest
from origin_proxy.live.index import Appended, TrackIndex
from origin_proxy.live.ingest import NEED_DATA, EndOfStream, Fragment, Header, IngestParser
from origin_proxy.live.point import PublishingPoint
from origin_proxy.live.state import PointEvent, PointState, next_state


def events(data: bytes) -> list:
    parser = IngestParser()
    parser.feed(data)
    parser.feed(b"")
    out = []
    while (event := parser.next_event()) is not NEED_DATA:
        out.append(event)
    return out


def feed(point: PublishingPoint, stream_id: str, evs: list, start: float = 1000.0) -> None:
    for n, event in enumerate(evs):
        if isinstance(event, Header):
            point.on_header(stream_id, event)
        elif isinstance(event, Fragment):
            point.on_fragment(stream_id, event, start + n)
        elif isinstance(event, EndOfStream):
            point.on_end(stream_id, event)


def test_index_duplicate_jump_back_and_prune_keep_numbers():
    index = TrackIndex(1000)
    for t in (0, 1000, 2000, 3000):
        assert index.append(t, 1000, 10, True, t) is Appended.ADDED
    assert index.append(2000, 1000, 10, True, "again") is Appended.DUPLICATE
    with pytest.raises(MalformedIngest):
        index.append(2500, 1000, 10, True, None)
    assert index.prune(2000) == 2  # [0, 1000) and [1000, 2000) end at or before 2000
    assert (index.first_number, index.times, index.number_of(3000)) == (3, [2000, 3000], 4)
    assert index.locations == [2000, 3000] and index.total_fragments == 4
    assert index.prune(10**9) == 1  # the newest fragment always stays


def test_state_table():
    s = PointState.IDLE
    for event, expected in ((PointEvent.HEADER, PointState.STARTING), (PointEvent.FRAGMENT, PointState.STARTED),
                            (PointEvent.ALL_ENDED, PointState.STOPPING), (PointEvent.ARCHIVED, PointState.STOPPED),
                            (PointEvent.HEADER, PointState.STARTING)):
        s = next_state(s, event)
        assert s is expected
    with pytest.raises(Conflict):
        next_state(PointState.IDLE, PointEvent.FRAGMENT)


@pytest.mark.parametrize("archive", [True, False])
def test_pruned_from_memory_and_whole_event_at_end_only_with_archive(tmp_path, cmaf_capture, archive):
    evs = events(cmaf_capture.read_bytes())  # 3 s of 1 s fragments, then mfra
    fragments = [e for e in evs if isinstance(e, Fragment)]
    point = PublishingPoint("p.isml", tmp_path, LiveSettings(storage=str(tmp_path), dvr_window_s=1.0,
                                                             archive=archive))
    feed(point, "v", evs[:-1])
    (live,) = point.tracks.values()
    assert point.state is PointState.STARTED
    assert len(live.index) < len(fragments) and live.index.first_number > 1  # memory holds only the window
    assert live.index.total_fragments == len(fragments)
    on_disk = sorted(tmp_path.glob("E001-*.mp4"))
    assert bool(on_disk) is archive
    if archive:  # every fragment is on disk, pruned ones too
        size = on_disk[0].stat().st_size
        assert size == len(evs[0].ftyp) + len(evs[0].moov) + sum(f.nbytes for f in fragments)
    feed(point, "v", evs[-1:])
    assert point.state is PointState.STOPPED
    if archive:
        assert live.index.first_number == 1 and len(live.index) == len(fragments)
        for n, fragment in enumerate(fragments):  # same numbers, same bytes as pushed
            assert point.read(live.index.locations[n]) == fragment.moof + fragment.mdat
    else:
        assert live.index.first_number > 1


def test_restart_reload_and_new_event(tmp_path, cmaf_capture):
    evs = events(cmaf_capture.read_bytes())
    settings = LiveSettings(storage=str(tmp_path), dvr_window_s=30)
    point = PublishingPoint("p.isml", tmp_path, settings)
    feed(point, "v", evs[:-2])  # the last fragment and the mfra never arrive: a crash mid-event
    path = next(tmp_path.glob("E001-*.mp4"))
    with open(path, "ab") as handle:  # half a fragment written when the process died
        handle.write((evs[-2].moof + evs[-2].mdat)[:100])
    again = PublishingPoint("p.isml", tmp_path, settings)
    again.load()
    (before,), (after,) = point.tracks.values(), again.tracks.values()
    assert again.state is PointState.STARTED
    assert (after.index.times, after.index.durations, after.rendition_id) == \
        (before.index.times, before.index.durations, before.rendition_id)
    assert path.stat().st_size == sum(len(b) for b in (evs[0].ftyp, evs[0].moov)) + \
        sum(f.nbytes for f in evs[1:-2])  # the half fragment was cut off
    feed(again, "v", evs[-2:])  # the encoder reconnects: the rest arrives, the event ends
    assert again.state is PointState.STOPPED and len(after.index) == len(evs) - 2
    feed(again, "v", evs[:1])  # a new push to the stopped point: event 2, empty index, event 1 kept on disk
    assert again.event == 2 and again.state is PointState.STARTING
    assert all(len(t.index) == 0 for t in again.tracks.values())
    assert path.is_file()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_ingest_never_half_indexes_or_half_archives(smooth_capture, cmaf_capture, data):
    """Mutations of real ffmpeg captures, chunked at random, fed into a PublishingPoint with archive: whatever the
    bytes, it ends with a mapped error or an event, and every indexed fragment reads back whole from an archive
    that holds exactly the header and the indexed fragments (nothing half-written)."""
    raw = bytearray(data.draw(st.sampled_from([smooth_capture, cmaf_capture])).read_bytes())
    for _ in range(data.draw(st.integers(1, 6))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    chunk = data.draw(st.integers(1, 1 << 16))
    with tempfile.TemporaryDirectory() as tmp:
        point = PublishingPoint("f.isml", Path(tmp), LiveSettings(storage=tmp, dvr_window_s=3600))
        parser = IngestParser()
        try:
            for i in range(0, len(raw) + 1, chunk):
                parser.feed(bytes(raw[i : i + chunk]))
                while (event := parser.next_event()) is not NEED_DATA:
                    feed(point, "s", [event])
        except IngestError:
            pass
        point.close_archives()
        headers = {id(t.header): len(t.header.ftyp) + len(t.header.moov) + (24 + len(t.header.smil) if
                                                                            t.header.smil else 0)
                   for t in point.tracks.values()}
        locations = {loc for t in point.tracks.values() for loc in t.index.locations}
        for path, offset, size in locations:
            fragment = point.read((path, offset, size))
            assert len(fragment) == size and fragment[4:8] == b"moof"
        files = list(Path(tmp).glob("E*.mp4"))
        on_disk = sum(p.stat().st_size for p in files)
        indexed = sum(size for _, _, size in locations)
        finished = 0 if point.state is not PointState.STOPPED else sum(
            p.stat().st_size - p.read_bytes().rindex(b"mfra") + 4 for p in files)
        assert on_disk == sum(headers.values()) * len(files) + indexed + finished
