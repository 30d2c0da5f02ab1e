"""The MS-SSTR client manifest (§2.2.2.1 SmoothStreamingMedia, MajorVersion 2, MinorVersion 2) of Smooth
StreamIndexes (manifest/model.py), VOD or live. Pure: model in, XML out.

StreamIndex (§2.2.2.3) with Type, Name, Chunks, QualityLevels, Url `QualityLevels({bitrate})/Fragments(<name>=
{start time})`, MaxWidth/MaxHeight (every level's coded size) and DisplayWidth/DisplayHeight (video) or Language
(audio); QualityLevel (§2.2.2.5); c elements (§2.2.2.6) with c@t on the first and wherever a chunk does not follow
the previous one. VOD: Duration = the latest stream end, one c per chunk (c@d only). Live (§2.2.2.1 IsLive):
IsLive="TRUE", Duration="0", LookaheadCount="0", DVRWindowLength = the window in manifest ticks; the first chunk
of the window carries c@t. Chunks are never folded into c@r: clients read it differently (Shaka Player as DASH's
S@r, extra repeats; MS-SSTR §2.2.2.6 and dash.js MSS as a count), and a DVR window is short. A live presentation
that ended is written as VOD.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from .model import Live, SmoothStreamIndex

TIMESCALE = 10_000_000


def _chunks(parent: ET.Element, stream: SmoothStreamIndex) -> None:
    previous_end = None
    for _, start, duration in stream.timeline.segments():
        chunk = {"t": str(start)} if start != previous_end else {}
        chunk["d"] = str(duration)
        ET.SubElement(parent, "c", chunk)
        previous_end = start + duration


def _stream_index(parent: ET.Element, stream: SmoothStreamIndex, url_prefix: str = "") -> None:
    chunks = stream.timeline.count
    attributes = {"Type": stream.kind, "Name": stream.name,
                  "Chunks": str(chunks), "QualityLevels": str(len(stream.levels)),
                  "Url": f"{url_prefix}QualityLevels({{bitrate}})/Fragments({stream.name}={{start time}})"}
    if stream.is_video:
        attributes.update(MaxWidth=str(max((q.width for q in stream.levels), default=0)),
                          MaxHeight=str(max((q.height for q in stream.levels), default=0)),
                          DisplayWidth=str(stream.display_width), DisplayHeight=str(stream.display_height))
    else:
        attributes["Language"] = stream.language
    element = ET.SubElement(parent, "StreamIndex", attributes)
    for index, level in enumerate(stream.levels):
        quality = {"Index": str(index), "Bitrate": str(level.bitrate_bps), "FourCC": level.fourcc}
        if stream.is_video:
            quality.update(MaxWidth=str(level.width), MaxHeight=str(level.height))
        else:
            quality.update(SamplingRate=str(level.sample_rate_hz), Channels=str(level.channel_count),
                           BitsPerSample="16", PacketSize="4", AudioTag="255")
        quality["CodecPrivateData"] = level.codec_private_data.hex().upper()
        ET.SubElement(element, "QualityLevel", quality)
    _chunks(element, stream)


def client_manifest(streams: tuple[SmoothStreamIndex, ...] | list[SmoothStreamIndex], live: Live | None = None,
                    timescale: int = TIMESCALE, url_prefix: str = "") -> str:
    """The client manifest of `streams` (timelines in `timescale` ticks), as an XML document string; live form
    when `live` is given and not ended (DVRWindowLength = live.time_shift_buffer_depth_s in ticks). `url_prefix`
    goes before each StreamIndex@Url (VOD: "<version>/", package/urls.py)."""
    is_live = live is not None and not live.ended
    attributes = {"MajorVersion": "2", "MinorVersion": "2", "TimeScale": str(timescale)}
    if is_live:
        attributes.update(Duration="0", IsLive="TRUE", LookaheadCount="0",
                          DVRWindowLength=str(round(live.time_shift_buffer_depth_s * timescale)))
    else:
        attributes["Duration"] = str(max((s.timeline.end_ticks for s in streams if s.timeline.runs), default=0))
    root = ET.Element("SmoothStreamingMedia", attributes)
    for stream in streams:
        _stream_index(root, stream, url_prefix)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
