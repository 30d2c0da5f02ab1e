"""HLS playlists for fMP4/CMAF tracks (RFC 8216). Pure: a Packaging in, playlist text out.

Master playlist: every audio track is an EXT-X-MEDIA rendition of group "aud" (the first is the default); when
the audio tracks use several codecs, each codec gets a group of its own ("aud-ac-3", "aud-mp4a.40.2") and every
video track one EXT-X-STREAM-INF per group, so CODECS never lists a codec a player may lack for the rendition it
did not pick. BANDWIDTH is the video peak plus the group's largest audio peak (§4.3.4.2: the peak rate of the
whole variant). An audio-only file gets one EXT-X-STREAM-INF per audio track. A rendition's LANGUAGE is the RFC 5646
tag of its mdhd language (PackagedTrack.language_tag), left out when the language is undetermined.
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
        # One rendition group per audio codec, so a player can pick a variant whose CODECS it fully supports.
        groups: dict[str, list[PackagedTrack]] = {}
        for track in audio:
            groups.setdefault(track.info.codec_string, []).append(track)
        group_ids = {codec: AUDIO_GROUP if len(groups) == 1 else f"{AUDIO_GROUP}-{codec}" for codec in groups}
        for codec, members in groups.items():
            for position, track in enumerate(members):
                tag = track.language_tag
                name = f"{tag or 'und'} {track.timeline.track.track_id}"
                attributes = ["TYPE=AUDIO", f"GROUP-ID={_quoted(group_ids[codec])}", f"NAME={_quoted(name)}"]
                if tag:  # §4.4.6.1: an RFC 5646 tag; none when the language is undetermined
                    attributes.append(f"LANGUAGE={_quoted(tag)}")
                attributes += [f"DEFAULT={'YES' if position == 0 else 'NO'}", "AUTOSELECT=YES"]
                if track.info.channel_count:
                    attributes.append(f"CHANNELS={_quoted(str(track.info.channel_count))}")
                attributes.append(f"URI={_quoted(track_resource(track.representation_id, 'playlist.m3u8'))}")
                lines.append("#EXT-X-MEDIA:" + ",".join(attributes))
        for track in video:
            # §4.3.4.2: BANDWIDTH is the peak of the whole variant, video plus the largest audio rendition.
            for codec, members in groups.items() or [(None, [])]:
                audio_peak = max((t.timeline.peak_bandwidth_bps() for t in members), default=0)
                audio_average = max((t.timeline.average_bandwidth_bps() for t in members), default=0)
                codecs = [track.info.codec_string] + ([codec] if codec else [])
                attributes = [
                    f"BANDWIDTH={track.timeline.peak_bandwidth_bps() + audio_peak}",
                    f"AVERAGE-BANDWIDTH={track.timeline.average_bandwidth_bps() + audio_average}",
                    f"CODECS={_quoted(','.join(codecs))}",
                ]
                if track.info.width and track.info.height:
                    attributes.append(f"RESOLUTION={track.info.width}x{track.info.height}")
                attributes.append(f"FRAME-RATE={float(track.frame_rate()):.3f}")
                if codec:
                    attributes.append(f"AUDIO={_quoted(group_ids[codec])}")
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
