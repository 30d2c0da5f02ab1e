"""HLS playlists (RFC 8216) of a Presentation (manifest/model.py), VOD or a live window. Pure: model in, text out.

Master playlist (§4.3.4): every audio rendition is an EXT-X-MEDIA of group "aud" (the first is the default); when
the audio renditions use several codecs, each codec gets a group of its own ("aud-ac-3", "aud-mp4a.40.2") and every
video rendition one EXT-X-STREAM-INF per group, so CODECS never lists a codec a player may lack for the rendition it
did not pick. BANDWIDTH is the video peak plus the group's largest audio peak (§4.3.4.2: the peak rate of the
whole variant). Audio only: one EXT-X-STREAM-INF per audio rendition. The renditions are the first Period's.
Media playlist (§4.3.3) of one rendition over every Period: EXT-X-MAP to its init segment, one EXTINF per segment
with its duration, EXT-X-MEDIA-SEQUENCE = the first segment's number. VOD: PLAYLIST-TYPE VOD and ENDLIST. Live: a
sliding window, EXT-X-PROGRAM-DATE-TIME on every segment (availability start + presentation time), an
EXT-X-DISCONTINUITY (and a new EXT-X-MAP if its URI changes) at each Period after the first,
EXT-X-DISCONTINUITY-SEQUENCE when discontinuities slid out, ENDLIST only once the live presentation ended.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from fractions import Fraction

from ..errors import NotFound
from .model import Presentation, Rendition, fill

VERSION = 7
AUDIO_GROUP = "aud"


def _quoted(value: str) -> str:
    # RFC 8216 §4.2: quoted-string cannot hold CR, LF or '"'.
    return '"' + "".join(ch for ch in value if ch not in '"\r\n') + '"'


def program_date_time(moment: datetime) -> str:
    """ISO 8601 with milliseconds and Z (§4.3.2.6), e.g. "2026-12-07T08:00:02.000Z"."""
    utc = moment.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _average(rendition: Rendition) -> int:
    return rendition.bandwidth_bps if rendition.average_bandwidth_bps is None else rendition.average_bandwidth_bps


def master_playlist(presentation: Presentation) -> str:
    """The master playlist (§4.3.4) of the first Period's renditions, in their order."""
    period = presentation.periods[0]
    video = [r for r in period.renditions if r.is_video]
    audio = [r for r in period.renditions if not r.is_video]
    playlist = lambda r: fill(period.urls.media_playlist, r.id)  # noqa: E731
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{VERSION}", "#EXT-X-INDEPENDENT-SEGMENTS"]
    if video:
        groups: dict[str, list[Rendition]] = {}
        for rendition in audio:
            groups.setdefault(rendition.codecs, []).append(rendition)
        group_ids = {codec: AUDIO_GROUP if len(groups) == 1 else f"{AUDIO_GROUP}-{codec}" for codec in groups}
        for codec, members in groups.items():
            for position, rendition in enumerate(members):
                tag = rendition.language_tag
                name = rendition.name or f"{tag or 'und'} {rendition.id}"
                attributes = ["TYPE=AUDIO", f"GROUP-ID={_quoted(group_ids[codec])}", f"NAME={_quoted(name)}"]
                if tag:  # §4.4.6.1: an RFC 5646 tag; none when the language is undetermined
                    attributes.append(f"LANGUAGE={_quoted(tag)}")
                attributes += [f"DEFAULT={'YES' if position == 0 else 'NO'}", "AUTOSELECT=YES"]
                if rendition.channel_count:
                    attributes.append(f"CHANNELS={_quoted(str(rendition.channel_count))}")
                attributes.append(f"URI={_quoted(playlist(rendition))}")
                lines.append("#EXT-X-MEDIA:" + ",".join(attributes))
        for rendition in video:
            for codec, members in groups.items() or [(None, [])]:
                audio_peak = max((r.bandwidth_bps for r in members), default=0)
                audio_average = max((_average(r) for r in members), default=0)
                codecs = [rendition.codecs] + ([codec] if codec else [])
                average = _average(rendition)
                attributes = [f"BANDWIDTH={rendition.bandwidth_bps + audio_peak}",
                              f"AVERAGE-BANDWIDTH={average + audio_average}", f"CODECS={_quoted(','.join(codecs))}"]
                if rendition.width and rendition.height:
                    attributes.append(f"RESOLUTION={rendition.width}x{rendition.height}")
                if rendition.frame_rate is not None:
                    attributes.append(f"FRAME-RATE={float(rendition.frame_rate):.3f}")
                if codec:
                    attributes.append(f"AUDIO={_quoted(group_ids[codec])}")
                lines.append("#EXT-X-STREAM-INF:" + ",".join(attributes))
                lines.append(playlist(rendition))
    else:
        for rendition in audio:
            average = _average(rendition)
            lines.append(f"#EXT-X-STREAM-INF:BANDWIDTH={rendition.bandwidth_bps},AVERAGE-BANDWIDTH={average},"
                         f"CODECS={_quoted(rendition.codecs)}")
            lines.append(playlist(rendition))
    return "\n".join(lines) + "\n"


def media_playlist(presentation: Presentation, rendition_id: str) -> str:
    """The media playlist (§4.3.3) of one rendition over every Period (URIs relative to the playlist).
    Raises NotFound when no Period has that rendition."""
    parts = [(p, p.rendition(rendition_id)) for p in presentation.periods]
    parts = [(p, r) for p, r in parts if r is not None]
    if not parts:
        raise NotFound("no such rendition", representation_id=rendition_id)
    live = presentation.live
    body: list[str] = []
    extinf: list[str] = []
    first_number = None
    map_uri = None
    for position, (period, rendition) in enumerate(parts):
        tl = rendition.timeline
        uri = fill(period.urls.hls_initialization, rendition.id)
        if position:
            body.append("#EXT-X-DISCONTINUITY")
        if uri != map_uri:
            body.append(f"#EXT-X-MAP:URI={_quoted(uri)}")
            map_uri = uri
        for number, start, duration in tl.segments():
            if first_number is None:
                first_number = number
            if live is not None:
                offset_s = period.start_s + Fraction(start - tl.presentation_time_offset_ticks, tl.timescale)
                moment = live.availability_start_time + timedelta(seconds=float(offset_s))
                body.append(f"#EXT-X-PROGRAM-DATE-TIME:{program_date_time(moment)}")
            text = f"{duration / tl.timescale:.6f}"
            extinf.append(text)
            body.append(f"#EXTINF:{text},")
            body.append(fill(period.urls.hls_media, rendition.id, number))
    # §4.3.3.1: every EXTINF duration, rounded to the nearest integer, must not exceed the target.
    target_s = max(1, max((math.ceil(float(text)) for text in extinf), default=1))
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{VERSION}", f"#EXT-X-TARGETDURATION:{target_s}",
             f"#EXT-X-MEDIA-SEQUENCE:{first_number if first_number is not None else parts[0][1].timeline.first_number}"]
    if presentation.discontinuity_sequence:
        lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{presentation.discontinuity_sequence}")
    if live is None:
        lines.append("#EXT-X-PLAYLIST-TYPE:VOD")
    lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
    lines += body
    if live is None or live.ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"
