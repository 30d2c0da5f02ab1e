"""HLS playlists for fMP4/CMAF tracks (RFC 8216). Pure: a Packaging in, playlist text out.

Master playlist: every audio track is an EXT-X-MEDIA rendition of group "aud" (the first is the default), every
video track an EXT-X-STREAM-INF whose BANDWIDTH is its peak plus the largest audio peak (§4.3.4.2: the peak
rate of the whole variant). An audio-only file gets one EXT-X-STREAM-INF per audio track.
Media playlist: VOD, EXT-X-MAP to the CMAF header, one EXTINF per segment with its real duration. Segment n
(1-based, as in the URLs) has Media Sequence Number n: EXT-X-MEDIA-SEQUENCE is 1.
URIs are relative: the master sits at `base/master.m3u8` (or `base/.m3u8`), track playlists at
`base/cmaf1/<rep>/playlist.m3u8`, next to their init and segments.
"""

from __future__ import annotations

import math

from .tracks import PackagedTrack
from .urls import track_resource

VERSION = 7
AUDIO_GROUP = "aud"


def _quoted(value: str) -> str:
    # RFC 8216 §4.2: quoted-string cannot hold CR, LF or '"'.
    return '"' + "".join(ch for ch in value if ch not in '"\r\n') + '"'


def master_playlist(tracks: list[PackagedTrack]) -> str:
    """The master playlist (§4.3.4) of the tracks HLS carries, in file order."""
    video = [t for t in tracks if t.is_video]
    audio = [t for t in tracks if not t.is_video]
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{VERSION}", "#EXT-X-INDEPENDENT-SEGMENTS"]
    if video:
        for position, track in enumerate(audio):
            attributes = [
                "TYPE=AUDIO", f"GROUP-ID={_quoted(AUDIO_GROUP)}",
                f"NAME={_quoted(f'{track.language} {track.timeline.track.track_id}')}",
                f"LANGUAGE={_quoted(track.language)}",
                f"DEFAULT={'YES' if position == 0 else 'NO'}", "AUTOSELECT=YES",
            ]
            if track.info.channel_count:
                attributes.append(f"CHANNELS={_quoted(str(track.info.channel_count))}")
            attributes.append(f"URI={_quoted(track_resource(track.representation_id, 'playlist.m3u8'))}")
            lines.append("#EXT-X-MEDIA:" + ",".join(attributes))
        audio_peak = max((t.timeline.peak_bandwidth_bps() for t in audio), default=0)
        audio_average = max((t.timeline.average_bandwidth_bps() for t in audio), default=0)
        audio_codecs = list(dict.fromkeys(t.info.codec_string for t in audio))
        for track in video:
            attributes = [
                f"BANDWIDTH={track.timeline.peak_bandwidth_bps() + audio_peak}",
                f"AVERAGE-BANDWIDTH={track.timeline.average_bandwidth_bps() + audio_average}",
                f"CODECS={_quoted(','.join([track.info.codec_string, *audio_codecs]))}",
            ]
            if track.info.width and track.info.height:
                attributes.append(f"RESOLUTION={track.info.width}x{track.info.height}")
            attributes.append(f"FRAME-RATE={float(track.frame_rate()):.3f}")
            if audio:
                attributes.append(f"AUDIO={_quoted(AUDIO_GROUP)}")
            lines.append("#EXT-X-STREAM-INF:" + ",".join(attributes))
            lines.append(track_resource(track.representation_id, "playlist.m3u8"))
    else:
        for track in audio:
            lines.append(f"#EXT-X-STREAM-INF:BANDWIDTH={track.timeline.peak_bandwidth_bps()},"
                         f"AVERAGE-BANDWIDTH={track.timeline.average_bandwidth_bps()},"
                         f"CODECS={_quoted(track.info.codec_string)}")
            lines.append(track_resource(track.representation_id, "playlist.m3u8"))
    return "\n".join(lines) + "\n"


def media_playlist(track: PackagedTrack) -> str:
    """The VOD media playlist (§4.3.3) of one track; URIs relative to `base/cmaf1/<rep>/`."""
    durations_s = track.segment_durations_s()
    extinf = [f"{d:.6f}" for d in durations_s]
    # RFC 8216 §4.3.3.1: every EXTINF duration, rounded to the nearest integer, must not exceed the target.
    target_s = max(1, max(math.ceil(float(text)) for text in extinf))
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{VERSION}", f"#EXT-X-TARGETDURATION:{target_s}",
             "#EXT-X-MEDIA-SEQUENCE:1", "#EXT-X-PLAYLIST-TYPE:VOD", "#EXT-X-INDEPENDENT-SEGMENTS",
             '#EXT-X-MAP:URI="init.mp4"']
    for number, text in enumerate(extinf, start=1):
        lines.append(f"#EXTINF:{text},")
        lines.append(f"{number}.m4s")
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"
