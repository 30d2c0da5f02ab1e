"""live/egress.py: what a segment URL means never changes (issue 11 §10, §13).

A CMAF segment URL names a fragment number of the event (`<number>.m4s`), a Smooth fragment URL a listed start
time (`Fragments(video=t)`). Fed a real ffmpeg Smooth ingest capture (tests/live_captures.py), a point's URLs are
resolved and rendered the way server/live_egress.py does it (cmaf_position / smooth_position, then segment); the
bytes are recorded after every fragment and must stay the same
- while a small DVR window prunes (a pruned URL is NotFound, a listed one never is),
- in a point with another DVR window (numbers are the event's, not the window's),
- after a restart (a new PublishingPoint loaded from the archive).
"""

from __future__ import annotations

import struct
from types import SimpleNamespace

import pytest

from origin_proxy.errors import NotFound
from origin_proxy.live.egress import (SMOOTH_TIMESCALE, cmaf_position, segment, smooth_next, smooth_position,
                                      smooth_span, smooth_streams)
from origin_proxy.live.ingest import NEED_DATA, EndOfStream, Fragment, Header, IngestParser
from origin_proxy.live.point import PublishingPoint

TFXD_UUID = bytes.fromhex("6d1d9b0542d544e680e2141daff757b2")
TFRF_UUID = bytes.fromhex("d4807ef2ca3946958e5426cb9e46a79f")


def _settings(**overrides) -> SimpleNamespace:
    values = dict(dvr_window_s=1800.0, archive=True, archive_segment_s=0.0, fsync=False,
                  restart_on_encoder_reconnect=False, cache_control_live_manifests=None)
    return SimpleNamespace(**{**values, **overrides})


def _events(capture) -> list:
    parser = IngestParser()
    parser.feed(capture.read_bytes())
    parser.feed(b"")
    events = []
    while (event := parser.next_event()) is not NEED_DATA:
        events.append(event)
    return events


def _urls(point: PublishingPoint) -> dict[str, bytes]:
    """Every URL the point can answer now -> its bytes (CMAF by number, Smooth by listed start)."""
    out = {}
    for live in point.tracks.values():
        index = live.index
        for position in range(len(index)):
            number = index.first_number + position
            assert cmaf_position(index, number) == position
            data = point.read(index.locations[position])
            out[f"{live.rendition_id}/{number}.m4s"] = segment(data, live.track_id, index.times[position], number)
            t, _ = smooth_span(index, position)
            assert smooth_position(index, t) == position
            try:
                announced = smooth_next(index, position, point.ended)
            except NotFound:  # the newest fragment of a live point: served once the next one arrived
                continue
            out[f"QualityLevels({live.bitrate_bps})/Fragments({live.track.kind}={t})"] = segment(
                data, live.track_id, index.times[position], number, scale=(SMOOTH_TIMESCALE, index.timescale),
                smooth=True, smooth_next=announced)
    return out


def _feed(point: PublishingPoint, events: list, after_each=None) -> None:
    for event in events:
        if isinstance(event, Header):
            point.on_header("s1", event)
        elif isinstance(event, Fragment):
            point.on_fragment("s1", event, 1000.0)
            if after_each is not None:
                after_each()
        elif isinstance(event, EndOfStream):
            point.on_end("s1", event)


def test_pruning_never_changes_a_url(smooth_capture, tmp_path):
    events = _events(smooth_capture)
    whole = PublishingPoint("a.isml", tmp_path / "a", _settings(archive=False))
    pruned = PublishingPoint("b.isml", tmp_path / "b", _settings(archive=False, dvr_window_s=1.0))
    seen: dict[str, bytes] = {}
    gone = 0

    def check() -> None:
        nonlocal gone
        now = _urls(pruned)
        for url, data in now.items():
            assert seen.setdefault(url, data) == data, url  # a URL answered twice answers the same bytes
        gone += sum(1 for url in seen if url not in now)

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _feed(whole, events)
    _feed(pruned, events, check)
    assert gone, "the 1 s window never pruned anything: the test proves nothing"
    for live in pruned.tracks.values():
        assert live.index.first_number > 1  # pruned: the first numbers left memory ...
        with pytest.raises(NotFound):  # ... and their URLs are NotFound, not another fragment
            cmaf_position(live.index, live.index.first_number - 1)
    everything = _urls(whole)
    for url, data in seen.items():  # numbers and times are the event's, whatever the window
        assert everything[url] == data, url


def test_a_restart_never_changes_a_url(smooth_capture, tmp_path):
    events = _events(smooth_capture)
    directory = tmp_path / "p.isml"
    directory.mkdir()
    live_point = PublishingPoint("p.isml", directory, _settings())
    _feed(live_point, events[:-3])  # cut mid-event: the encoder is still pushing
    before = _urls(live_point)
    live_point.close_archives()
    restarted = PublishingPoint("p.isml", directory, _settings())
    restarted.load()
    assert restarted.event == live_point.event
    assert _urls(restarted) == before
    # The encoder reconnects to the restarted point and finishes: what was answered before stays the same.
    _feed(restarted, events[-3:])
    after = _urls(restarted)
    assert all(after[url] == data for url, data in before.items() if url in after)
    assert set(before) <= set(after)


def test_smooth_fragments_carry_their_listed_times(smooth_capture, tmp_path):
    """Every c of a live Smooth StreamIndex names a fragment whose tfxd holds that start and duration, and whose
    tfrf names the next chunk; the newest fragment is held back from the listing."""
    directory = tmp_path / "s.isml"
    directory.mkdir()
    point = PublishingPoint("s.isml", directory, _settings())
    _feed(point, [e for e in _events(smooth_capture) if not isinstance(e, EndOfStream)])
    assert not point.ended
    urls = _urls(point)
    for stream in smooth_streams(point.views(None), lookahead=1):
        chunks = list(stream.timeline.segments())
        live = next(t for t in point.tracks.values() if t.track.kind == stream.kind)
        assert len(chunks) == len(live.index) - 1  # held back: the newest
        for _, t, d in chunks:
            body = urls[f"QualityLevels({live.bitrate_bps})/Fragments({stream.kind}={t})"]
            at = body.index(TFXD_UUID) + 16
            assert struct.unpack_from(">IQQ", body, at) == (1 << 24, t, d)
            at = body.index(TFRF_UUID) + 16
            version_flags, count, next_t, _ = struct.unpack_from(">IBQQ", body, at)
            assert (version_flags, count, next_t) == (1 << 24, 1, t + d)
