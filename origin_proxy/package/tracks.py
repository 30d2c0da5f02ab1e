"""The packaged presentation of one MP4: its segment timelines plus what manifests say of each track. Pure.

`package_movie` cuts every track (segmenter.py) and describes its first sample entry (isobmff/codecs.py). Which
tracks a protocol carries is the codec matrix of package/__init__.py (`CARRIED_BY`); a track no protocol
carries has no URLs at all. The result is immutable and reports `nbytes`, so the edge caches it next to the
MovieFile.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from functools import lru_cache
from typing import Literal

import langcodes

from ..errors import NotFound, UnpackageableMedia
from ..isobmff.codecs import SampleEntryInfo, describe_sample_entry
from ..isobmff.movie import Movie
from ..isobmff.sample_window import median_duration_ticks
from .segmenter import TrackTimeline, segment_movie
from .urls import representation_id

Protocol = Literal["hls", "dash", "smooth"]

# The codec matrix (see package/__init__.py): sample entry 4CCs each protocol's manifests list.
CMAF_VIDEO = frozenset({b"avc1", b"avc3", b"hvc1", b"hev1", b"av01"})
CMAF_AUDIO = frozenset({b"mp4a", b"ac-3", b"ec-3", b"Opus"})
# Smooth: what MS-SSTR clients (dash.js MSS) decode, H.264 and AAC; smooth.py also leaves out non-AAC mp4a.
SMOOTH_CODECS = frozenset({b"avc1", b"avc3", b"mp4a"})
CARRIED_BY: dict[str, frozenset[bytes]] = {"hls": CMAF_VIDEO | CMAF_AUDIO, "dash": CMAF_VIDEO | CMAF_AUDIO,
                                           "smooth": SMOOTH_CODECS}


@lru_cache(maxsize=256)
def language_tag(code: str | None) -> str | None:
    """The RFC 5646 tag of an mdhd language code (ISO 639-2/T, ISO/IEC 14496-12 §8.4.2.3), in its shortest form.

    RFC 5646 §2.2.1 takes the 2-letter ISO 639-1 code when one exists: "eng" -> "en", "fra" -> "fr"; otherwise
    the 3-letter code stays: "gsw" -> "gsw". Bibliographic and deprecated codes map to the preferred one
    ("ger" -> "de"). Returns None for "und", an empty code, or one the IANA subtag registry does not know: HLS
    then has no LANGUAGE (RFC 8216 §4.4.6.1) and DASH no AdaptationSet@lang (ISO/IEC 23009-1 §5.3.3.2).
    """
    if not code or code == "und":
        return None
    try:
        language = langcodes.Language.get(code)
    except langcodes.LanguageTagError:
        return None
    if not language.is_valid() or language.language in (None, "und"):
        return None
    return language.to_tag()


@dataclass(frozen=True, eq=False)
class PackagedTrack:
    """One track with its timeline and sample entry facts."""

    timeline: TrackTimeline
    info: SampleEntryInfo
    rep_id: str | None = None  # a set's URL token ("v2", package/ism.py); None: from the track_ID
    system_bitrate_bps: int | None = None  # a set's systemBitrate for the track (package/ism.py); 0/None: unknown

    @property
    def is_video(self) -> bool:
        return self.timeline.track.handler_type == b"vide"

    @property
    def representation_id(self) -> str:
        if self.rep_id is not None:
            return self.rep_id
        track = self.timeline.track
        return representation_id(track.handler_type, track.track_id)

    @property
    def language(self) -> str:
        """The mdhd language as stored: ISO 639-2/T, "und" when unset (for manifests use `language_tag`)."""
        return self.timeline.track.language or "und"

    @property
    def language_tag(self) -> str | None:
        """The track's language as an RFC 5646 tag ("en"), or None when undetermined; see `language_tag()`."""
        return language_tag(self.timeline.track.language)

    @property
    def segment_count(self) -> int:
        return self.timeline.segment_count

    def segment_durations_s(self) -> list[float]:
        """Presented seconds of each segment. The first is counted from presentation time 0: frames before 0
        (from the sync sample before the source's edit) are decoded, never shown."""
        tl = self.timeline
        starts = [max(int(t), 0) for t in tl.presentation_time_ticks]
        ends = starts[1:] + [int(tl.presentation_time_ticks[-1] + tl.duration_ticks[-1])]
        return [max(end - start, 0) / tl.timescale for start, end in zip(starts, ends)]

    def frame_rate(self) -> Fraction:
        """Frames per second of the track's typical frame: timescale / the median sample duration (video), e.g.
        Fraction(30000, 1001). The median, not the mean, so a long last frame or a few dropped frames do not
        lower it. Fraction(0) for a track without samples."""
        table = self.timeline.track.table
        median_ticks = int(round(median_duration_ticks(table))) if table.sample_count else 0
        return Fraction(self.timeline.timescale, median_ticks) if median_ticks > 0 else Fraction(0)


@dataclass(frozen=True, eq=False)
class Packaging:
    """Every media track of one MP4 cut at `target_duration_s`, in file order."""

    tracks: tuple[PackagedTrack, ...]
    target_duration_s: Fraction

    @property
    def nbytes(self) -> int:
        return 512 + sum(256 + 8 * 6 * t.segment_count for t in self.tracks)

    def carried_by(self, protocol: Protocol) -> tuple[list[PackagedTrack], list[PackagedTrack]]:
        """(tracks the protocol's manifest lists, tracks it leaves out). Raises UnpackageableMedia if none is listed."""
        kept = [t for t in self.tracks if t.info.fourcc in CARRIED_BY[protocol]]
        left_out = [t for t in self.tracks if t.info.fourcc not in CARRIED_BY[protocol]]
        if not kept:
            codecs = ", ".join(t.info.fourcc.decode("latin-1") for t in self.tracks) or "none"
            raise UnpackageableMedia(f"no track can be packaged for {protocol.upper()} (codecs: {codecs})")
        return kept, left_out

    def track(self, rep_id: str) -> PackagedTrack:
        """The track a URL names, if some protocol carries it. Raises NotFound."""
        for track in self.tracks:
            if track.representation_id == rep_id and any(track.info.fourcc in c for c in CARRIED_BY.values()):
                return track
        raise NotFound("no such track", representation_id=rep_id)

    def duration_s(self) -> float:
        """Presentation duration: the latest track end, in seconds."""
        return max((sum(t.segment_durations_s()) for t in self.tracks), default=0.0)


def package_movie(movie: Movie, target_duration_s: Fraction) -> Packaging:
    """Timelines and sample entry facts of every track. Raises UnsupportedMedia (segmenter) when nothing can be cut."""
    tracks = []
    for timeline in segment_movie(movie, target_duration_s):
        track = timeline.track
        entry = track.sample_entry
        info = describe_sample_entry(entry, track.handler_type) if entry else SampleEntryInfo(track.codec, "")
        tracks.append(PackagedTrack(timeline, info))
    return Packaging(tuple(tracks), target_duration_s)


def package_set(members: list[tuple[str, PackagedTrack]], target_duration_s: Fraction) -> Packaging:
    """The Packaging of a multi-bitrate set (package/ism.py): each member track, cut with its own file, renamed
    to its switch token. Video tracks come first, by increasing peak bandwidth (the order of HLS variants and DASH
    Representations), then audio in switch order."""
    renamed = [replace(track, rep_id=rep_id) for rep_id, track in members]
    video = sorted((t for t in renamed if t.is_video), key=lambda t: t.timeline.peak_bandwidth_bps())
    return Packaging(tuple(video + [t for t in renamed if not t.is_video]), target_duration_s)


def misaligned_variants(packaging: Packaging) -> list[str]:
    """Representation ids of the video tracks whose segment start times (rounded to the ms) differ from the first
    video track's: players switching between them may see a glitch at a switch. Empty when they all agree."""
    video = [t for t in packaging.tracks if t.is_video]
    if not video:
        return []

    def starts_ms(track: PackagedTrack) -> list[int]:
        tl = track.timeline
        return [round(max(int(t), 0) * 1000 / tl.timescale) for t in tl.presentation_time_ticks]

    reference = starts_ms(video[0])
    return [t.representation_id for t in video[1:] if starts_ms(t) != reference]
