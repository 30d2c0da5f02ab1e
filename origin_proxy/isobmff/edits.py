"""Edit-list folding (ISO/IEC 14496-12 §8.6.6): a track's place on the movie timeline. Pure.

A track's first edits may be empty (a lead of E movie ticks), followed by one edit that maps `segment_duration`
movie ticks of presentation to the media from `media_time` M. A sample with composition time cts (= dts + ctts
offset, media ticks) is presented at  P = E / movie_timescale + (cts - M) / timescale  seconds. Edit lists with
more than one non-empty edit, or an empty edit after media, raise UnsupportedMedia (rewrite/ and package/ both
need the fold, so it lives with the MP4 model).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from fractions import Fraction

from ..errors import UnsupportedMedia
from .movie import Movie, Track


@dataclass(frozen=True)
class TrackPresentation:
    """A track's place on the movie timeline, from its edit list.

    lead_s: leading empty edits, seconds. media_time: M, media ticks. end_s: presentation end, seconds.
    """

    lead_s: Fraction
    media_time: int
    end_s: Fraction


_PRESENTATIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # Track -> (movie timescale, result)


def presentation(track: Track, movie_timescale: int) -> TrackPresentation:
    """Fold a track's edit list into (lead, M, end). Raises UnsupportedMedia for edits we cannot compose.
    Remembered per track (a cached Track is immutable) while the track lives."""
    known = _PRESENTATIONS.get(track)
    if known is not None and known[0] == movie_timescale:
        return known[1]
    result = _presentation(track, movie_timescale)
    _PRESENTATIONS[track] = (movie_timescale, result)
    return result


def _presentation(track: Track, movie_timescale: int) -> TrackPresentation:
    table = track.table
    lead_ticks = 0
    media_edits = []
    for edit in track.edits:
        if edit.media_time < 0:
            if media_edits:
                if edit.segment_duration == 0:
                    continue
                raise UnsupportedMedia(f"track {track.track_id}: an empty edit after media is not supported")
            lead_ticks += edit.segment_duration
        else:
            media_edits.append(edit)
    if len(media_edits) > 1:
        raise UnsupportedMedia(f"track {track.track_id}: an edit list with {len(media_edits)} media edits is not supported")
    lead_s = Fraction(lead_ticks, movie_timescale)
    media_time = media_edits[0].media_time if media_edits else 0
    composition_end = table.composition_end_ticks
    media_end_s = lead_s + Fraction(max(composition_end - media_time, 0), table.timescale)
    if media_edits and media_edits[0].segment_duration > 0:
        end_s = min(lead_s + Fraction(media_edits[0].segment_duration, movie_timescale), media_end_s)
    else:
        end_s = media_end_s
    return TrackPresentation(lead_s, media_time, end_s)


def movie_duration_s(movie: Movie) -> Fraction:
    """Presentation duration in seconds: the latest track end."""
    return max((presentation(t, movie.timescale).end_s for t in movie.tracks), default=Fraction(0))
