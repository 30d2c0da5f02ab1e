"""A VOD Packaging as the manifest model (manifest/model.py), and its HLS playlists and MPD. Pure.

The writers live in manifest/ (shared with live); this module only says what a packaged MP4 track is in their
terms: a Rendition whose SegmentTimeline has the segments' presentation starts (frames before time 0, decoded but
never shown, not counted: the first start is clamped to 0) and durations up to the next start (the last to the
track end), in the track's timescale, numbered from 1; one Period "0" at 0; no live state.
Init and media segment URIs carry the presentation's version token when one is given (package/urls.py
`version_token`: `cmaf1/v1/<version>/3.m4s`), so the manifest, short-lived, is what points players at one version.
"""

from __future__ import annotations

from ..manifest import dash, hls
from ..manifest.model import Period, Presentation, Rendition, SegmentTimeline, UrlTemplates
from .tracks import Packaging, PackagedTrack
from .urls import versioned


def segment_timeline(track: PackagedTrack) -> SegmentTimeline:
    """The track's segments: starts clamped to 0, durations to the next start (never negative), from number 1."""
    tl = track.timeline
    starts = [max(int(t), 0) for t in tl.presentation_time_ticks]
    ends = starts[1:] + [int(tl.presentation_time_ticks[-1] + tl.duration_ticks[-1])]
    durations = [max(end - start, 0) for start, end in zip(starts, ends)]
    return SegmentTimeline.from_durations(tl.timescale, starts[0] if starts else 0, durations, first_number=1)


def rendition(track: PackagedTrack) -> Rendition:
    """What HLS and DASH say of one packaged track."""
    info = track.info
    tag = track.language_tag
    return Rendition(
        id=track.representation_id, kind="video" if track.is_video else "audio", codecs=info.codec_string,
        bandwidth_bps=track.timeline.peak_bandwidth_bps(), average_bandwidth_bps=track.timeline.average_bandwidth_bps(),
        timeline=segment_timeline(track), language_tag=tag, name=f"{tag or 'und'} {track.timeline.track.track_id}",
        width=info.width, height=info.height, frame_rate=track.frame_rate() if track.is_video else None,
        sample_rate_hz=info.sample_rate_hz, channel_count=info.channel_count)


def url_templates(version: str | None) -> UrlTemplates:
    """The resource URIs of a VOD Period: init and media segments under `<version>/` (None: unversioned)."""
    plain = UrlTemplates()
    if version is None:
        return plain
    return UrlTemplates(media_playlist=plain.media_playlist,
                        initialization=versioned(plain.initialization, version), media=versioned(plain.media, version),
                        hls_initialization=versioned(plain.hls_initialization, version),
                        hls_media=versioned(plain.hls_media, version))


def vod_presentation(tracks: list[PackagedTrack], packaging: Packaging | None = None,
                     version: str | None = None) -> Presentation:
    """One Period of `tracks` (those the protocol carries); the duration is the whole packaging's latest end;
    segment URIs under `version` (package/urls.py version_token) when given."""
    return Presentation(periods=(Period("0", 0, tuple(rendition(t) for t in tracks), url_templates(version)),),
                        duration_s=packaging.duration_s() if packaging is not None else None)


def master_playlist(tracks: list[PackagedTrack]) -> str:
    """The HLS master playlist (RFC 8216 §4.3.4) of the tracks HLS carries, in file order (its media playlist
    URIs are unversioned: they are manifests)."""
    return hls.master_playlist(vod_presentation(tracks))


def media_playlist(track: PackagedTrack, version: str | None = None) -> str:
    """The VOD media playlist (RFC 8216 §4.3.3) of one track; URIs relative to `base/cmaf1/<rep>/`
    (`<version>/init.mp4`, `<version>/1.m4s` ... when `version` is given)."""
    return hls.media_playlist(vod_presentation([track], version=version), track.representation_id)


def mpd(packaging: Packaging, tracks: list[PackagedTrack], version: str | None = None) -> str:
    """The static MPD (ISO/IEC 23009-1 §5.3.1) of `tracks` (those DASH carries); segment URIs under `version`."""
    return dash.mpd(vod_presentation(tracks, packaging, version))
