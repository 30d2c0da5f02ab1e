"""What viewers get from a publishing point: segment bytes and manifest models. Pure (no clock: times passed in).

Segments are rebuilt from the ingested fragment's sample columns, so they depend on the ingest bytes alone (two
nodes fed the same ingest serve identical bytes, DESIGN.md §6):
- CMAF media segment (ISO/IEC 23000-19 §7.3.2): styp, moof(mfhd = fragment number, traf(tfhd default-base-is-moof,
  tfdt v1, trun v1 with every sample field)), mdat.
- Smooth fragment (MS-SSTR §2.2.4): the same with a tfxd (absolute time and duration) after the trun, times in the
  manifest's 10 MHz timescale, and while live a tfrf naming the next fragment (smooth_next).
A fragment whose ingest time is negative (ffmpeg's AAC priming) starts at 0: the time before 0 is taken off its
first samples' durations, so timelines stay contiguous and unsigned.

URLs address fragments by what never moves: a CMAF segment by its number in the event (cmaf_position), a Smooth
fragment by its listed start (smooth_position). Pruning only raises TrackIndex.first_number, and a restart rebuilds
the index from the archive in the same order, so neither changes what a URL answers.
"""

from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass, replace
from datetime import datetime
from fractions import Fraction

import numpy as np

from ..errors import NotFound
from ..isobmff.boxes.mfhd import build_mfhd
from ..isobmff.boxes.tfdt import build_tfdt
from ..isobmff.boxes.tfhd import build_tfhd
from ..isobmff.boxes.tfrf import build_tfrf
from ..isobmff.boxes.tfxd import build_tfxd
from ..isobmff.boxes.trun import TRUN_SAMPLE, build_trun, trun_size
from ..isobmff.build import box
from ..isobmff.codecs import aac_specific_config, avc_parameter_sets, sample_entry_boxes
from ..isobmff.fragment import TrackFragment, parse_moof
from ..manifest.model import (Live, Period, Presentation, Rendition, SegmentTimeline, SmoothQualityLevel,
                              SmoothStreamIndex, TimelineRun, UrlTemplates)
from ..package.tracks import language_tag
from .index import TrackIndex
from .ingest import IngestTrack

SMOOTH_TIMESCALE = 10_000_000
STYP = box(b"styp", b"cmfs" + struct.pack(">I", 0) + b"cmfsmsdhmsix")


def egress_span(time: int, duration: int) -> tuple[int, int]:
    """(start, duration) as served: a start before 0 is moved to 0 and the duration shortened (ticks)."""
    start = max(time, 0)
    return start, max(time + duration - start, 0)


def cmaf_position(index: TrackIndex, number: int) -> int:
    """The index position of fragment `number` (a CMAF segment URL's $Number$).

    Numbers count the event's fragments from 1 and never move: pruning raises `index.first_number`, a restart
    rebuilds the index from the archive in the same order (live/point.py). Raises NotFound when the fragment is
    not (yet, or no longer) in the index.
    """
    position = number - index.first_number
    if not 0 <= position < len(index):
        raise NotFound(f"fragment {number} is not (or no longer) available")
    return position


def smooth_start(time: int, timescale: int) -> int:
    """A fragment's start as Smooth manifests list it (c@t) and its tfxd carries: 10 MHz ticks, negative -> 0."""
    return max(time, 0) * SMOOTH_TIMESCALE // timescale


def smooth_position(index: TrackIndex, t: int) -> int:
    """The index position of the fragment a Smooth URL `Fragments(kind=t)` names (t in 10 MHz ticks).

    t is a start the manifest listed (c@t, or the sum of the previous c@d: the same value, see smooth_streams), so
    an exact start is looked up first. A StreamIndex lists one level's chunks; a level of another encoder can start
    its fragments a few ticks off, so failing an exact match the fragment whose span holds t answers. Raises
    NotFound when no fragment holds t.
    """
    ts = index.timescale
    position = bisect.bisect_left(index.times, t, key=lambda time: smooth_start(time, ts))
    if position < len(index) and smooth_start(index.times[position], ts) == t:
        return position
    position -= 1  # the last fragment starting before t
    if position >= 0:
        start, duration = egress_span(index.times[position], index.durations[position])
        if t < (start + duration) * SMOOTH_TIMESCALE // ts:
            return position
    raise NotFound(f"no fragment at {t}")


def _traf(fragment: bytes, track_id: int) -> TrackFragment:
    parsed = parse_moof(memoryview(fragment)[: struct.unpack_from(">I", fragment, 0)[0]])
    return next(t for t in parsed.trafs if t.track_id == track_id)


def _trimmed_durations(durations: np.ndarray, cut: int) -> np.ndarray:
    out = durations.astype(np.int64)
    for i in range(len(out)):
        if cut <= 0:
            break
        take = min(int(out[i]), cut)
        out[i] -= take
        cut -= take
    return out


def segment(fragment: bytes, track_id: int, time: int, number: int, *, scale: tuple[int, int] | None = None,
            smooth: bool = False, smooth_next: tuple[tuple[int, int], ...] | None = None) -> bytes:
    """A CMAF media segment (or, `smooth`, a Smooth fragment with tfxd and no styp) of one track's fragment.

    Args:
        fragment: the ingested moof + mdat bytes.
        track_id: which traf of it.
        time: its start in the track timescale (signed, as indexed).
        number: the mfhd sequence_number (the fragment number; never moves).
        scale: (to_timescale, from_timescale) to rescale every time and duration (Smooth: 10 MHz), or None.
        smooth_next: (start, duration) of each following fragment in 10 MHz ticks, written as a tfrf after the
            tfxd (MS-SSTR §2.2.4.5; live Smooth clients grow their timeline from it), or None for no tfrf.
    """
    traf = _traf(fragment, track_id)
    samples = traf.samples
    durations = samples["duration"].astype(np.int64)
    if time < 0:
        durations = _trimmed_durations(durations, -time)
        time = 0
    if scale is not None:
        to, frm = scale
        ends = np.cumsum(durations) + time
        time = time * to // frm
        ends = ends * to // frm
        durations = np.diff(np.concatenate(([time], ends)))
        cto = samples["composition_offset"].astype(np.int64) * to // frm
    else:
        cto = samples["composition_offset"].astype(np.int64)
    records = np.empty(len(samples), dtype=TRUN_SAMPLE)
    records["duration"] = durations
    records["size"] = samples["size"]
    records["flags"] = samples["flags"]
    records["composition_offset"] = cto
    payload = bytes(fragment[traf.data_offset : traf.data_offset + traf.data_bytes])
    mfhd = build_mfhd(number & 0xFFFFFFFF)
    tfhd = build_tfhd(track_id)
    tfdt = build_tfdt(time)
    tfxd = build_tfxd(time, int(durations.sum())) if smooth else b""
    if smooth and smooth_next is not None:
        tfxd += build_tfrf(smooth_next)
    moof_size = 8 + len(mfhd) + 8 + len(tfhd) + len(tfdt) + trun_size(len(records)) + len(tfxd)
    trun = build_trun(records, moof_size + 8)  # default-base-is-moof: the data starts after moof and mdat header
    moof = box(b"moof", mfhd + box(b"traf", tfhd + tfdt + trun + tfxd))
    assert len(moof) == moof_size
    return (b"" if smooth else STYP) + moof + box(b"mdat", payload)


@dataclass(frozen=True)
class TrackView:
    """One track as the manifests see it: rendition id, the ingest track, bitrate, and the listed fragments'
    (start, duration) as served (ticks of the track's timescale) with the first one's fragment number."""

    rendition_id: str
    track: IngestTrack
    bitrate_bps: int
    spans: tuple[tuple[int, int], ...]
    first_number: int
    discontinuities: tuple[int, ...] = ()  # positions in spans that start a discontinuity (a shifted reconnect)
    discontinuity_sequence: int = 0  # discontinuities at or before the first listed fragment


def _timeline(spans: tuple[tuple[int, int], ...], timescale: int, first_number: int) -> SegmentTimeline:
    runs: list[TimelineRun] = []
    for start, duration in spans:
        last = runs[-1] if runs else None
        if last is not None and last.duration_ticks == duration and last.end_ticks == start:
            runs[-1] = TimelineRun(last.start_ticks, duration, last.repeat + 1)
        else:
            runs.append(TimelineRun(start, duration))
    return SegmentTimeline(timescale, tuple(runs), first_number)


def presentation(views: list[TrackView], live: Live | None, urls: UrlTemplates) -> Presentation:
    """HLS/DASH model of the listed fragments (one Period from 0; numbers = fragment numbers)."""
    renditions = []
    for view in views:
        t = view.track
        renditions.append(Rendition(
            id=view.rendition_id, kind="video" if t.handler_type == b"vide" else "audio", codecs=t.codecs,
            bandwidth_bps=view.bitrate_bps, timeline=_timeline(view.spans, t.timescale, view.first_number),
            language_tag=language_tag(t.language) if t.handler_type == b"soun" else None,
            width=t.width, height=t.height, sample_rate_hz=t.sample_rate_hz, channel_count=t.channel_count,
            frame_rate=_frame_rate(view)))
    return Presentation(periods=(Period("0", Fraction(0), tuple(renditions), urls),), live=live)


def discontinuous_presentation(view: TrackView, live: Live | None, urls: UrlTemplates) -> Presentation:
    """HLS model of one track's media playlist (RFC 8216 §4.3.2.3): one Period per run between the track's
    discontinuities (a reconnect whose timeline jumped back, shifted to continue: live/point.py), so the playlist
    writes EXT-X-DISCONTINUITY before the first segment after each, and EXT-X-DISCONTINUITY-SEQUENCE counts those
    that slid out. The shifted timeline stays continuous, so DASH keeps one Period (`presentation`)."""
    rendition = presentation([view], live, urls).periods[0].renditions[0]
    ts = view.track.timescale
    bounds = (0, *view.discontinuities, len(view.spans))
    periods = []
    for k, (a, b) in enumerate(zip(bounds, bounds[1:])):
        start = view.spans[a][0]
        timeline = _timeline(view.spans[a:b], ts, view.first_number + a)
        periods.append(Period(str(view.discontinuity_sequence + k), Fraction(start, ts),
                              (replace(rendition, timeline=replace(timeline, presentation_time_offset_ticks=start)),),
                              urls))
    return Presentation(periods=tuple(periods), live=live, discontinuity_sequence=view.discontinuity_sequence)


def _frame_rate(view: TrackView) -> Fraction | None:
    if view.track.handler_type != b"vide":
        return None
    d = view.track.extends.default_sample_duration
    return Fraction(view.track.timescale, d) if d else None


def codec_private_data(track: IngestTrack) -> tuple[str, bytes]:
    """(Smooth FourCC, CodecPrivateData): Annex-B SPS+PPS for H.264, the AudioSpecificConfig for AAC."""
    children = sample_entry_boxes(track.sample_entry, track.handler_type)
    if track.codec in (b"avc1", b"avc3") and b"avcC" in children:
        sps, pps = avc_parameter_sets(children[b"avcC"])
        return "H264", b"".join(b"\x00\x00\x00\x01" + unit for unit in sps + pps)
    if track.codec == b"mp4a" and b"esds" in children:
        return "AACL", aac_specific_config(children[b"esds"]) or b""
    return track.codec.decode("latin-1").upper(), b""


def smooth_span(index: TrackIndex, position: int) -> tuple[int, int]:
    """(c@t, c@d) of a fragment as Smooth lists it: 10 MHz ticks, a negative start moved to 0."""
    start, duration = egress_span(index.times[position], index.durations[position])
    ts = index.timescale
    return start * SMOOTH_TIMESCALE // ts, (start + duration) * SMOOTH_TIMESCALE // ts - start * SMOOTH_TIMESCALE // ts


def smooth_next(index: TrackIndex, position: int, ended: bool) -> tuple[tuple[int, int], ...]:
    """What the fragment at `position` announces in its tfrf: the next fragment's Smooth span.

    Live, a fragment is served only once its successor is indexed (the manifest holds the newest one back, see
    smooth_streams), so its bytes never change: NotFound before that. The last fragment of an ended event
    announces nothing (an empty tfrf: a live client that never reloads the manifest must still find one). The
    answer depends on the ingest alone, so it is the same on every node and after a restart.
    """
    if position + 1 < len(index):
        return (smooth_span(index, position + 1),)
    if ended:
        return ()
    raise NotFound("the newest fragment is served once the next one arrived (its tfrf names it)")


def smooth_streams(views: list[TrackView], lookahead: int = 0) -> list[SmoothStreamIndex]:
    """Smooth StreamIndexes ("video", "audio"), each level a track of that kind; chunks from the first level, in
    10 MHz ticks. `lookahead`: the newest fragments of each view left out (1 while live: a fragment is listed once
    the tfrf of the one before it can name it, smooth_next)."""
    if lookahead:
        views = [replace(v, spans=v.spans[:-lookahead]) for v in views if len(v.spans) > lookahead]
    streams = []
    for kind in ("video", "audio"):
        members = [v for v in views if v.track.kind == kind]
        if not members:
            continue
        levels = []
        for view in members:
            fourcc, private = codec_private_data(view.track)
            t = view.track
            levels.append(SmoothQualityLevel(view.bitrate_bps, fourcc, private, t.width or 0, t.height or 0,
                                             t.sample_rate_hz or 0, t.channel_count or 0))
        first = members[0]
        ts = first.track.timescale
        spans = tuple((s * SMOOTH_TIMESCALE // ts, (s + d) * SMOOTH_TIMESCALE // ts - s * SMOOTH_TIMESCALE // ts)
                      for s, d in first.spans)
        timeline = _timeline(spans, SMOOTH_TIMESCALE, first.first_number)
        widest = max(members, key=lambda v: (v.track.width or 0))
        streams.append(SmoothStreamIndex(kind, kind, tuple(levels), timeline, language=first.track.language or "und",
                                         display_width=widest.track.width or 0,
                                         display_height=widest.track.height or 0))
    return streams


def live_state(availability_start_time: datetime, now: datetime, window_s: float, update_s: float,
               ended: bool, utc_timing_uri: str | None = None) -> Live:
    """The Live block of a manifest made at `now` (window and update period in seconds; `utc_timing_uri` an
    http-iso clock for DASH clients, or None)."""
    return Live(availability_start_time=availability_start_time, publish_time=now,
                time_shift_buffer_depth_s=window_s, minimum_update_period_s=update_s, ended=ended,
                utc_timing_uri=utc_timing_uri)
