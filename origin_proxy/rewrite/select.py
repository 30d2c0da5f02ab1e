"""Pseudo-streaming selection: which samples a `?start=&end=` request serves, and the edit list that presents them.

DESIGN.md §4. All times are exact: request seconds are Fractions, sample times integer ticks.

Presentation model (ISO/IEC 14496-12 §8.6.6): a track's first edits may be empty (a lead of E movie
ticks), followed by one edit that maps `segment_duration` movie ticks of presentation to the media
from `media_time` M. A sample with composition time cts (= dts + ctts offset, media ticks) is
presented at  P = E / movie_timescale + (cts - M) / timescale  seconds.

Mode "exact": video starts at the last sync sample presented at or before `start`; an edit list
whose media_time is the media time of `start` hides the lead-in, so the first frame shown is the
first frame the source shows at or after `start`, and presentation begins at `start`. The new
edit composes with the source's own (its M and E are folded in, never dropped). Audio starts at the
sample containing `start`, plus codec pre-roll (one AAC frame, 80 ms of Opus, RFC 7845 §4.2) that
the edit also hides, and earlier still when the video has a hidden lead-in: then audio starts with the
same lead-in as the video (`lead_in_start_s`), so a player that ignores edit lists (mplayer, ffmpeg
-ignore_editlist 1), and shows the video lead-in, plays the audio of the same moment with it; the audio
edit hides that lead-in as the video's does, so edit-list-aware players still start exactly at `start`.
Mode "keyframe": `start` moves back to the presentation time of that video
sync sample, then the same rules apply, so nothing is hidden but the source's own offsets.
`end` keeps, in each track, every sample presented before `end` and those decoded before them.

Edit lists with more than one non-empty edit, or rates other than 1, are answered with
UnsupportedMedia: composing them needs a sample-level remap that this module does not do.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..errors import BadRequest, UnsupportedMedia
from ..isobmff.edits import TrackPresentation, presentation
from ..isobmff.movie import Movie, Track
from .params import ClipRequest

OPUS_PREROLL_S = Fraction(80, 1000)  # RFC 7845 §4.2
_ZERO_S = Fraction(0)
_SCALAR_BELOW = 32  # windows of at most this many samples are searched in Python ints, not numpy arrays


@dataclass(frozen=True)
class TrackCut:
    """One output track: samples [first, stop) of `track` and its new edit list.

    empty_movie_ticks: leading empty edit (movie timescale), 0 for none.
    media_time: elst media_time in the output media timeline (media ticks, >= 0).
    segment_duration: elst segment_duration (movie timescale).
    cts_shift: ticks added to every composition offset so media_time stays >= 0 with negative ctts.
    """

    track: Track
    first: int
    stop: int
    empty_movie_ticks: int
    media_time: int
    segment_duration: int
    cts_shift: int


def _less(a: Fraction, b: Fraction) -> bool:
    """a < b, by one cross product of the (positive) denominators: a Fraction comparison without its overhead."""
    return a.numerator * b.denominator < b.numerator * a.denominator


def _media_time_at(pres: TrackPresentation, timescale: int, t_s: Fraction) -> Fraction:
    """Media time (ticks, exact) presented at movie time t_s (t_s >= lead)."""
    return pres.media_time + (t_s - pres.lead_s) * timescale


def _media_ticks(pres: TrackPresentation, timescale: int, t_s: Fraction) -> tuple[int, int]:
    """`_media_time_at` as (numerator, denominator > 0) integers: the same exact value without Fraction objects
    (each Fraction operation costs microseconds with its gcd; this is a few integer products)."""
    a, b = t_s.numerator, t_s.denominator
    lead = pres.lead_s
    c, d = lead.numerator, lead.denominator
    return pres.media_time * b * d + (a * d - c * b) * timescale, b * d


def _ticks_between(later_s: Fraction, earlier_s: Fraction, timescale: int) -> int:
    """`to_ticks(later_s - earlier_s, timescale)` (round half up) in integers: floor((p/q - r/s) * ts + 1/2)."""
    p, q = later_s.numerator, later_s.denominator
    r, s = earlier_s.numerator, earlier_s.denominator
    return (2 * (p * s - r * q) * timescale + q * s) // (2 * q * s)


def _last_presented_before(table, stop_ticks: int, first: int) -> int:
    """The last sample at or after `first` whose composition time is below `stop_ticks`, or -1 for none.

    Decode times are sorted and every offset lies in [cts_min, cts_max], so only the samples decoded in
    [stop - cts_max, stop - cts_min) need their composition time computed, from the runs: O(log R + that span)."""
    all_before = table.dts_searchsorted(stop_ticks - table.cts_max_ticks, side="left")  # pts < stop for all
    maybe_end = table.dts_searchsorted(stop_ticks - table.cts_min_ticks, side="left")  # pts >= stop after
    lo = max(first, all_before)
    if maybe_end - lo > _SCALAR_BELOW:
        hits = np.flatnonzero(table.pts_window(lo, maybe_end) < stop_ticks)
        if len(hits):
            return lo + int(hits[-1])
    elif maybe_end > lo:  # a few samples (B-frame reordering): in Python, from the last
        pts = table.pts_list(lo, maybe_end)
        for index in range(len(pts) - 1, -1, -1):
            if pts[index] < stop_ticks:
                return lo + index
    return all_before - 1 if all_before - 1 >= first else -1


def _first_presented_at_or_after(table, ticks: int) -> int:
    """For tracks whose composition offsets are one constant (audio, nearly always): the number of samples
    presented at or before `ticks`, i.e. searchsorted(pts, ticks, 'right'); O(log R) from the stts runs, and O(N)
    (the composition times made for this search only, not kept) for varying offsets."""
    if table.cts_min_ticks == table.cts_max_ticks:
        return table.dts_searchsorted(ticks - table.cts_min_ticks, side="right")
    return int(np.searchsorted(table.pts_window(0, table.sample_count), ticks, side="right"))


def _sync_at_or_before(table, start_floor: int) -> int | None:
    """The last sync sample (in decode order) presented at or before `start_floor` (media ticks), or None.

    Samples decoded before start - cts_max are all presented by then, and those decoded after start - cts_min
    all later; only the sync samples between need their composition time, from the runs: O(log N + that span)."""
    surely = table.dts_searchsorted(start_floor - table.cts_max_ticks, side="right")  # [0, surely): pts <= start
    maybe = table.dts_searchsorted(start_floor - table.cts_min_ticks, side="right")  # [maybe, N): pts > start
    stss = table.stss_indices
    between = table.sync_window(surely, maybe)
    if len(between) > _SCALAR_BELOW:
        hits = between[table.pts_at(between) <= start_floor]
        if len(hits):
            return int(hits[-1])
    else:  # a few sync samples: in Python, from the last
        for key in reversed(between.tolist()):
            if table.pts_at(key) <= start_floor:
                return key
    if stss is None:
        return surely - 1 if surely > 0 else None
    before = int(stss.searchsorted(surely)) - 1
    return int(stss[before]) if before >= 0 else None


def _preroll_samples_start(track: Track, first: int, media_start: tuple[int, int]) -> int:
    """media_start: media ticks as (numerator, denominator), from `_media_ticks`."""
    codec = track.codec
    if codec == b"mp4a":
        return max(first - 1, 0)
    if codec == b"Opus":
        target = math.floor(Fraction(*media_start) - OPUS_PREROLL_S * track.timescale)
        return max(_first_presented_at_or_after(track.table, target) - 1, 0)
    return first


def cut_track(track: Track, pres: TrackPresentation, movie_timescale: int, start_s: Fraction, end_s: Fraction,
              lead_in_s: Fraction | None = None) -> TrackCut | None:
    """Samples and edit list of one track for the window [start_s, end_s) seconds, or None when
    the track presents nothing in it. O(log N) searches plus O(sync samples), for video and for tracks with
    constant composition offsets; nothing here walks every sample.
    `lead_in_s` (movie seconds, <= start_s; non-video tracks only): also keep the samples from the one presented
    at that time on, hidden by the edit (the video's lead-in, see `lead_in_start_s`)."""
    table = track.table
    t_from = pres.lead_s if _less(start_s, pres.lead_s) else start_s  # max(start_s, lead_s)
    t_to = pres.end_s if _less(pres.end_s, end_s) else end_s  # min(end_s, end_s of the track)
    if not _less(t_from, t_to):
        return None
    ts = table.timescale
    n = table.sample_count
    media_start = start_n, start_d = _media_ticks(pres, ts, t_from)
    stop_n, stop_d = _media_ticks(pres, ts, t_to)
    start_floor = start_n // start_d
    stop_ceil = -(-stop_n // stop_d)

    if track.handler_type == b"vide":
        key = _sync_at_or_before(table, start_floor)
        if key is None:
            key = table.first_sync_index()
        first = key if key is not None else 0
        last = _last_presented_before(table, stop_ceil, first)
        stop = last + 1 if last >= 0 else first + 1
    else:
        first = max(_first_presented_at_or_after(table, start_floor) - 1, 0)
        first = _preroll_samples_start(track, first, media_start)
        if lead_in_s is not None and _less(lead_in_s, t_from):
            lead_n, lead_d = _media_ticks(pres, ts, pres.lead_s if _less(lead_in_s, pres.lead_s) else lead_in_s)
            lead_floor = lead_n // lead_d
            first = min(first, max(_first_presented_at_or_after(table, lead_floor) - 1, 0))
        stop = max(_first_presented_at_or_after(table, stop_ceil - 1), first + 1)
    stop = min(stop, n)

    base = table.dts_at(first)
    media_time = (2 * start_n + start_d) // (2 * start_d) - base  # floor(start + 1/2): round half up
    # Negative composition offsets (ctts v1, or v0 written as signed) are read differently by
    # players (ffmpeg shifts dts by a heuristic, some ignore cslg); shift them all to >= 0 and fold
    # the shift into the edit, the layout every player reads the same way (§8.6.1.3, §8.6.6).
    min_offset = table.cts_min_ticks if table.cts_min_ticks >= 0 else int(table.cts_window(first, stop).min())
    cts_shift = max(-min_offset, -media_time, 0)
    empty = _ticks_between(t_from, start_s, movie_timescale) if _less(start_s, t_from) else 0
    duration = _ticks_between(t_to, t_from, movie_timescale)
    return TrackCut(track, first, stop, empty, media_time + cts_shift, duration, cts_shift)


def lead_in_start_s(cut: TrackCut, pres: TrackPresentation) -> Fraction:
    """The movie time (seconds, source timeline) that a player ignoring edit lists shows at the start of the clip
    of video `cut`: it presents the first kept sample at its own composition time (decode times start at 0, plus
    the sample's offset and the cut's cts_shift), i.e. the source time of that sample less that time. Audio that
    starts there plays in step with the video lead-in such players show (ISO/IEC 14496-12 §8.6.6 is what they skip).
    """
    table = cut.track.table
    ticks = table.dts_at(cut.first) - cut.cts_shift - pres.media_time
    lead = pres.lead_s  # lead + ticks / timescale, as one Fraction
    return Fraction(lead.numerator * table.timescale + ticks * lead.denominator, lead.denominator * table.timescale)


def keyframe_start_s(movie: Movie, start_s: Fraction) -> Fraction:
    """Presentation time of the first video track's last sync sample shown at or before start_s
    (seconds, >= 0); start_s itself when the movie has no video."""
    for track in movie.tracks:
        if track.handler_type != b"vide":
            continue
        pres = presentation(track, movie.timescale)
        table = track.table
        t_from = max(start_s, pres.lead_s)
        key = _sync_at_or_before(table, math.floor(_media_time_at(pres, table.timescale, t_from)))
        if key is None:
            return min(start_s, pres.lead_s)
        key_s = pres.lead_s + Fraction(table.pts_at(key) - pres.media_time, table.timescale)
        return max(min(key_s, start_s), Fraction(0))
    return start_s


_TIMELINES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # Movie -> (presentations, duration_s)


def _timeline(movie: Movie) -> tuple[tuple[TrackPresentation, ...], Fraction]:
    """Each track's presentation and the movie's duration (seconds, the latest track end): the part of a
    selection that no request changes, made once per (immutable, cached) Movie. Raises UnsupportedMedia."""
    known = _TIMELINES.get(movie)
    if known is None:
        presentations = tuple(presentation(t, movie.timescale) for t in movie.tracks)
        known = _TIMELINES[movie] = (presentations, max(p.end_s for p in presentations))
    return known


def select(movie: Movie, request: ClipRequest) -> list[TrackCut]:
    """The output tracks for a request, in source order.

    Raises:
        BadRequest: start at or after the movie's duration (names the duration).
        UnsupportedMedia: no media track, or an edit list we cannot compose.
    """
    if not movie.tracks:
        raise UnsupportedMedia("the movie has no audio or video track with samples")
    presentations, duration_s = _timeline(movie)
    start_s = request.start_s or _ZERO_S
    if not _less(start_s, duration_s):
        raise BadRequest(f"start={float(start_s):.3f} is at or after the duration of {float(duration_s):.3f} s")
    if request.mode == "keyframe":
        start_s = keyframe_start_s(movie, start_s)
    end_s = request.end_s if request.end_s is not None and _less(request.end_s, duration_s) else duration_s
    cuts: list[TrackCut | None] = [None] * len(movie.tracks)
    lead_in_s = None
    for index, (track, pres) in enumerate(zip(movie.tracks, presentations)):
        if track.handler_type == b"vide":
            cuts[index] = cut = cut_track(track, pres, movie.timescale, start_s, end_s)
            if cut is not None and lead_in_s is None:  # the first video track sets the lead-in for the others
                lead_in_s = lead_in_start_s(cut, pres)
    for index, (track, pres) in enumerate(zip(movie.tracks, presentations)):
        if track.handler_type != b"vide":
            cuts[index] = cut_track(track, pres, movie.timescale, start_s, end_s, lead_in_s)
    cuts = [cut for cut in cuts if cut is not None]
    if not cuts:  # e.g. edit lists that present no sample in the window
        raise BadRequest(f"no track presents a sample between {float(start_s):.3f} and {float(end_s):.3f} s")
    return cuts
