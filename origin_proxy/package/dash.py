"""Static DASH MPD for CMAF tracks (ISO/IEC 23009-1, profile isoff-live). Pure: a Packaging in, XML out.

One Period; one AdaptationSet per media type and language; one Representation per track, each with its own
SegmentTemplate (the track's timescale) and a SegmentTimeline of the real segment durations, run-length coded
(§5.3.9.6: consecutive equal `d` become one S with `r`). Templates point at the same URLs as HLS:
`cmaf1/$RepresentationID$/init.mp4` and `cmaf1/$RepresentationID$/$Number$.m4s`, startNumber 1.
Segment times: the first S@t is the track's first presentation time (frames before 0, decoded but never shown,
are not counted); presentationTimeOffset is 0 because our output timeline starts at 0.
Built with xml.etree.ElementTree; helpers are named after the element they render.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from .tracks import Packaging, PackagedTrack
from .urls import FORMAT_TOKEN

MPD_NAMESPACE = "urn:mpeg:dash:schema:mpd:2011"
PROFILE = "urn:mpeg:dash:profile:isoff-live:2011"
AUDIO_CHANNEL_SCHEME = "urn:mpeg:dash:23003:3:audio_channel_configuration:2011"


def _duration(seconds: float) -> str:
    """xs:duration of `seconds`, e.g. "PT10.010S"."""
    return f"PT{seconds:.3f}S"


def segment_timeline(parent: ET.Element, track: PackagedTrack) -> ET.Element:
    """SegmentTimeline (§5.3.9.6) of one track: S@t on the first entry, S@d, S@r for repeats."""
    tl = track.timeline
    starts = [max(int(t), 0) for t in tl.presentation_time_ticks]
    ends = starts[1:] + [int(tl.presentation_time_ticks[-1] + tl.duration_ticks[-1])]
    durations = [max(end - start, 0) for start, end in zip(starts, ends)]
    element = ET.SubElement(parent, "SegmentTimeline")
    runs: list[list[int]] = []  # [d, repeat count]
    for d in durations:
        if runs and runs[-1][0] == d:
            runs[-1][1] += 1
        else:
            runs.append([d, 0])
    for position, (d, repeat) in enumerate(runs):
        attributes = {"t": str(starts[0])} if position == 0 else {}
        attributes["d"] = str(d)
        if repeat:
            attributes["r"] = str(repeat)
        ET.SubElement(element, "S", attributes)
    return element


def segment_template(parent: ET.Element, track: PackagedTrack) -> ET.Element:
    element = ET.SubElement(parent, "SegmentTemplate", {
        "timescale": str(track.timeline.timescale),
        "initialization": f"{FORMAT_TOKEN}/$RepresentationID$/init.mp4",
        "media": f"{FORMAT_TOKEN}/$RepresentationID$/$Number$.m4s",
        "startNumber": "1",
    })
    segment_timeline(element, track)
    return element


def representation(parent: ET.Element, track: PackagedTrack) -> ET.Element:
    attributes = {"id": track.representation_id, "bandwidth": str(track.timeline.peak_bandwidth_bps()),
                  "codecs": track.info.codec_string}
    if track.is_video:
        if track.info.width and track.info.height:
            attributes.update(width=str(track.info.width), height=str(track.info.height))
        rate = track.frame_rate()  # the schema's FrameRateType: an integer or a fraction, never a decimal
        if rate:
            attributes["frameRate"] = str(rate.numerator if rate.denominator == 1 else rate)
    elif track.info.sample_rate_hz:
        attributes["audioSamplingRate"] = str(track.info.sample_rate_hz)
    element = ET.SubElement(parent, "Representation", attributes)
    if not track.is_video and track.info.channel_count:
        ET.SubElement(element, "AudioChannelConfiguration",
                      {"schemeIdUri": AUDIO_CHANNEL_SCHEME, "value": str(track.info.channel_count)})
    segment_template(element, track)
    return element


def adaptation_set(parent: ET.Element, tracks: list[PackagedTrack], set_id: int) -> ET.Element:
    """One AdaptationSet of tracks sharing media type and language."""
    first = tracks[0]
    content_type = "video" if first.is_video else "audio"
    attributes = {"id": str(set_id), "contentType": content_type, "mimeType": f"{content_type}/mp4",
                  "segmentAlignment": "true", "startWithSAP": "1"}
    if first.language_tag:  # an RFC 5646 tag (§5.3.3.2); left out when the language is undetermined
        attributes["lang"] = first.language_tag
    element = ET.SubElement(parent, "AdaptationSet", attributes)
    for track in tracks:
        representation(element, track)
    return element


def mpd(packaging: Packaging, tracks: list[PackagedTrack]) -> str:
    """The static MPD (§5.3.1) of `tracks` (those DASH carries), as an XML document string."""
    root = ET.Element("MPD", {
        "xmlns": MPD_NAMESPACE, "type": "static", "profiles": PROFILE,
        "mediaPresentationDuration": _duration(packaging.duration_s()),
        "minBufferTime": _duration(max(max(t.segment_durations_s()) for t in tracks)),
    })
    period = ET.SubElement(root, "Period", {"id": "0", "start": "PT0S"})
    groups: dict[tuple[bool, str], list[PackagedTrack]] = {}
    for track in tracks:
        groups.setdefault((not track.is_video, track.language_tag or ""), []).append(track)
    for set_id, key in enumerate(sorted(groups, key=lambda k: k[0]), start=1):
        adaptation_set(period, groups[key], set_id)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
