"""Segment timeline for fragment-on-demand (DESIGN.md §5), computed from cached sample tables only.

Output timeline. CMAF tracks carry no edit list (ISO/IEC 23000-19 §7.5.13), so the source's edits are
folded into decode times: every track gets one constant shift `decode_shift_ticks` (D) added to its
decode times, and video composition offsets are rebased by C so that the first presented frame has offset
0. D + C = lead * timescale - M (lead: the source's empty edits; M: its media_time), which puts every
sample at its source presentation time P = lead + (cts - M) / timescale, so tracks stay in sync with no
edit list. Decode times cannot be negative (tfdt is unsigned), so samples presented wholly before 0
(AAC priming, B-frame pre-roll hidden by the source's edit) are dropped and D is raised just enough for
the first kept sample to decode at 0; for audio that moves at most a part of one frame. Video keeps the
sync sample at or before 0, so when an edit starts after it (mid-GOP), raising D delays the video by up
to a GOP: then every track of the presentation is delayed by as much (`delay_s`, like a longer empty
edit), which keeps the source's lip sync and shows the frames the edit hid at the start.

Boundaries: at the first video sync sample presented at or after each multiple of the target duration
(irregular GOPs make irregular segments; a GOP longer than the target spans several multiples). Audio is
cut at the first sample presented at or after each video segment's earliest presentation time: that is
the sync sample's, or earlier when leading pictures (open GOP: frames after the sync sample in decode
order, before it in presentation order) open the segment. Every video segment starts with a sync sample;
durations are the real ones.

Cost: numpy over the samples once per presentation (cached by the edge); a Python loop over segments only. The
per-sample arrays (decode times, composition offsets, durations) are made once per track and packaging from the
sample table's runs (isobmff/sample_window.py) and dropped with it: nothing per sample stays on the cached table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..errors import UnsupportedMedia
from ..isobmff.movie import Movie, Track
from ..isobmff.edits import presentation
from ..isobmff.sample_table import SampleTable
from ..isobmff.sample_window import composition_offsets, decode_times, durations, sync_samples


@dataclass(frozen=True, eq=False)
class TrackTimeline:
    """One track cut into segments; every array has shape (S,) for S segments.

    Attributes:
        track: the source track.
        timescale: ticks per second of every time below (the track's mdhd timescale).
        first_sample, stop_sample: int64 sample index range [first, stop) of each segment.
        decode_time_ticks: int64 tfdt (baseMediaDecodeTime) of each segment.
        presentation_time_ticks: int64 earliest presentation time of each segment (output timeline).
        duration_ticks: int64 presentation duration of each segment (next start - this start; the last
            segment runs to the end of the track).
        size_bytes: int64 media bytes of each segment (for bandwidth).
        decode_shift_ticks: D, added to source decode times.
        composition_shift_ticks: C, added to source composition offsets.
    """

    track: Track
    timescale: int
    first_sample: np.ndarray
    stop_sample: np.ndarray
    decode_time_ticks: np.ndarray
    presentation_time_ticks: np.ndarray
    duration_ticks: np.ndarray
    size_bytes: np.ndarray
    decode_shift_ticks: int
    composition_shift_ticks: int

    @property
    def segment_count(self) -> int:
        return len(self.first_sample)

    def peak_bandwidth_bps(self) -> int:
        """Largest bits per second of any segment (RFC 8216 §4.3.4.2 BANDWIDTH)."""
        seconds = np.maximum(self.duration_ticks, 1) / self.timescale
        return int(math.ceil(float((self.size_bytes * 8 / seconds).max())))

    def average_bandwidth_bps(self) -> int:
        """Bits per second over the whole track (AVERAGE-BANDWIDTH)."""
        seconds = max(int(self.duration_ticks.sum()), 1) / self.timescale
        return int(math.ceil(int(self.size_bytes.sum()) * 8 / seconds))


@dataclass(frozen=True, eq=False)
class _Samples:
    """One track's per-sample values for one packaging, shape (N,) each, dtypes those of the SampleTable columns:
    dts int64 (decode times from 0), cts int32 (composition offsets), duration int32 or int64, pts int64
    (dts + cts); sync int64 sync sample indices, shape (K,)."""

    dts: np.ndarray
    cts: np.ndarray
    duration: np.ndarray
    pts: np.ndarray
    sync: np.ndarray

    @classmethod
    def of(cls, table: SampleTable) -> _Samples:
        n = table.sample_count
        dts, cts = decode_times(table, 0, n), composition_offsets(table, 0, n)
        return cls(dts, cts, durations(table, 0, n), dts + cts, sync_samples(table, 0, n))


def _shifts(track: Track, movie_timescale: int, delay_s: Fraction = Fraction(0),
            samples: _Samples | None = None) -> tuple[int, int, int, Fraction]:
    """(first kept sample, D, C, late_s) for a track presented `delay_s` seconds later than its source says; late_s
    is how much later still it starts because D had to be raised (tfdt >= 0). See the module docstring.
    `samples`: the track's _Samples when the caller has them."""
    table = track.table
    s = samples if samples is not None else _Samples.of(table)
    ts = table.timescale
    pres = presentation(track, movie_timescale)
    lead_ticks = (pres.lead_s + delay_s) * ts
    composition_shift = 0
    if track.handler_type == b"vide" and table.has_ctts:
        first_presented = int(np.argmin(s.pts))
        composition_shift = -int(s.cts[first_presented])
    ideal = math.floor(lead_ticks - pres.media_time) - composition_shift
    if track.handler_type == b"vide":
        # From the last sync sample presented at or before 0, so every frame shown from 0 on decodes.
        sync = s.sync
        before = sync[s.pts[sync] + composition_shift + ideal <= 0]
        first = int(before[-1]) if len(before) else int(sync[0]) if len(sync) else 0
    else:
        pts_end = s.pts + s.duration + composition_shift + ideal
        first = int(np.searchsorted(pts_end, 0, side="right"))  # drop samples wholly before 0
        first = min(first, table.sample_count - 1)
    decode_shift = max(ideal, -int(s.dts[first]))
    return first, decode_shift, composition_shift, Fraction(decode_shift - ideal, ts)


def _reference_track(movie: Movie) -> Track:
    for track in movie.tracks:
        if track.handler_type == b"vide":
            return track
    if not movie.tracks:
        raise UnsupportedMedia("the movie has no audio or video track to package")
    return movie.tracks[0]


def _boundaries_s(track: Track, first: int, decode_shift: int, composition_shift: int,
                  target_duration_s: Fraction, samples: _Samples | None = None) -> list[Fraction]:
    """Presentation times (s) where segments start: the reference track's cut points."""
    table = track.table
    s = samples if samples is not None else _Samples.of(table)
    ts = table.timescale
    pts = s.pts[first:] + composition_shift + decode_shift
    if track.handler_type == b"vide":
        sync = s.sync[s.sync >= first] - first
        candidates = np.sort(pts[sync])
    else:
        candidates = pts  # audio only: any sample may start a segment
    end_ticks = int((pts + s.duration[first:]).max())
    starts = [Fraction(int(candidates[0]), ts)]
    k = 1
    while True:
        target_ticks = math.ceil(k * target_duration_s * ts)
        if target_ticks >= end_ticks:
            break
        index = int(np.searchsorted(candidates, target_ticks, side="left"))
        if index >= len(candidates):
            break
        start = Fraction(int(candidates[index]), ts)
        if start > starts[-1]:
            starts.append(start)
        # Skip the multiples this boundary already passed (a GOP longer than the target).
        k = max(k + 1, math.floor(start / target_duration_s) + 1)
    return starts


def track_timeline(track: Track, movie_timescale: int, boundaries_s: list[Fraction],
                   delay_s: Fraction = Fraction(0), samples: _Samples | None = None) -> TrackTimeline:
    """Cut one track at the presentation times `boundaries_s` (the first is the presentation's start), the track
    presented `delay_s` seconds later than its source says (the presentation's common delay, see segment_movie).
    `samples`: the track's _Samples when the caller has them (made here otherwise)."""
    table = track.table
    s = samples if samples is not None else _Samples.of(table)
    ts = table.timescale
    first, decode_shift, composition_shift, _ = _shifts(track, movie_timescale, delay_s, s)
    dts = s.dts + decode_shift
    pts = s.pts + (decode_shift + composition_shift)
    n = table.sample_count
    if track.handler_type == b"vide":
        sync = s.sync[s.sync >= first]
        order = np.argsort(pts[sync], kind="stable")
        sync, sync_pts = sync[order], pts[sync][order]
        starts = [first]
        for boundary in boundaries_s[1:]:
            index = int(np.searchsorted(sync_pts, math.ceil(boundary * ts), side="left"))
            if index < len(sync) and int(sync[index]) > starts[-1]:
                starts.append(int(sync[index]))
    else:
        ticks = [math.ceil(b * ts) for b in boundaries_s[1:]]
        cut = np.searchsorted(pts[first:], np.array(ticks, dtype=np.int64), side="left") + first
        starts = [first] + [int(c) for c in cut if first < c < n]
        starts = sorted(set(starts))
    first_sample = np.array(starts, dtype=np.int64)
    stop_sample = np.append(first_sample[1:], n)
    ends = pts + s.duration
    presentation_time = np.minimum.reduceat(pts, first_sample)
    track_end = int(ends[first:].max())
    next_start = np.append(presentation_time[1:], track_end)
    sizes = np.add.reduceat(table.size_bytes.astype(np.int64), first_sample)
    return TrackTimeline(
        track=track,
        timescale=ts,
        first_sample=first_sample,
        stop_sample=stop_sample,
        decode_time_ticks=dts[first_sample],
        presentation_time_ticks=presentation_time,
        duration_ticks=next_start - presentation_time,
        size_bytes=sizes,
        decode_shift_ticks=decode_shift,
        composition_shift_ticks=composition_shift,
    )


def segment_movie(movie: Movie, target_duration_s: Fraction = Fraction(4)) -> list[TrackTimeline]:
    """Timelines of every media track, all cut at the reference (first video) track's boundaries.

    Raises:
        UnsupportedMedia: no audio or video track, or an edit list presentation() cannot fold.
    """
    reference = _reference_track(movie)
    # An edit starting after the reference video's sync sample delays that video (tfdt >= 0): delay every track
    # as much, so lip sync stays the source's. (Audio's own lateness is a part of a frame: not passed on.)
    samples = _Samples.of(reference.table)
    delay_s = _shifts(reference, movie.timescale, samples=samples)[3] if reference.handler_type == b"vide" \
        else Fraction(0)
    first, decode_shift, composition_shift, _ = _shifts(reference, movie.timescale, delay_s, samples)
    boundaries = _boundaries_s(reference, first, decode_shift, composition_shift, Fraction(target_duration_s),
                               samples)
    cut = track_timeline(reference, movie.timescale, boundaries, delay_s, samples)
    del samples  # the reference's arrays go before the next track's are made
    # The other tracks are cut where each reference segment starts presenting, leading pictures included, so
    # audio and video segments cover the same presentation time (within one audio frame).
    starts = [boundaries[0]] + [Fraction(int(t), cut.timescale) for t in cut.presentation_time_ticks[1:]]
    return [cut if track is reference else track_timeline(track, movie.timescale, starts, delay_s)
            for track in movie.tracks]
