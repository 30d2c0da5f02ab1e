"""DASH MPD (ISO/IEC 23009-1, profile isoff-live) of a Presentation (manifest/model.py). Pure: model in, XML out.

Static (VOD, or a live presentation that ended, §5.3.1.2 with mediaPresentationDuration) or dynamic (a live
window: availabilityStartTime, publishTime, timeShiftBufferDepth, minimumUpdatePeriod, no duration). One Period per
model Period (id, start), in each one AdaptationSet per media type and language (video first), one Representation
per rendition with its own SegmentTemplate (the rendition's timescale, startNumber = its first segment number,
presentationTimeOffset when not 0) and a SegmentTimeline (§5.3.9.6): one S per run, S@t on the first run and on
any run that does not start where the previous ended, S@r for repeats. A dynamic MPD ends with UTCTiming when the
model names a time source. Built with xml.etree.ElementTree; helpers are named after the element they render.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timezone

from .model import Period, Presentation, Rendition, SegmentTimeline

MPD_NAMESPACE = "urn:mpeg:dash:schema:mpd:2011"
PROFILE = "urn:mpeg:dash:profile:isoff-live:2011"
AUDIO_CHANNEL_SCHEME = "urn:mpeg:dash:23003:3:audio_channel_configuration:2011"
UTC_TIMING_SCHEME = "urn:mpeg:dash:utc:http-iso:2014"


def duration(seconds: float) -> str:
    """xs:duration of `seconds`, e.g. "PT10.010S"."""
    return f"PT{seconds:.3f}S"


def date_time(moment: datetime) -> str:
    """xs:dateTime in UTC with Z, milliseconds only when not whole: "2026-12-07T08:00:00Z"."""
    utc = moment.astimezone(timezone.utc)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{utc.microsecond // 1000:03d}Z" if utc.microsecond else "Z")


def segment_timeline(parent: ET.Element, timeline: SegmentTimeline) -> ET.Element:
    """SegmentTimeline (§5.3.9.6): S@t where a run does not follow the previous one, S@d, S@r for repeats."""
    element = ET.SubElement(parent, "SegmentTimeline")
    previous_end = None
    for run in timeline.runs:
        attributes = {"t": str(run.start_ticks)} if run.start_ticks != previous_end else {}
        attributes["d"] = str(run.duration_ticks)
        if run.repeat:
            attributes["r"] = str(run.repeat)
        ET.SubElement(element, "S", attributes)
        previous_end = run.end_ticks
    return element


def segment_template(parent: ET.Element, period: Period, rendition: Rendition) -> ET.Element:
    tl = rendition.timeline
    attributes = {"timescale": str(tl.timescale), "initialization": period.urls.initialization,
                  "media": period.urls.media, "startNumber": str(tl.first_number)}
    if tl.presentation_time_offset_ticks:
        attributes["presentationTimeOffset"] = str(tl.presentation_time_offset_ticks)
    element = ET.SubElement(parent, "SegmentTemplate", attributes)
    segment_timeline(element, tl)
    return element


def representation(parent: ET.Element, period: Period, rendition: Rendition) -> ET.Element:
    attributes = {"id": rendition.id, "bandwidth": str(rendition.bandwidth_bps), "codecs": rendition.codecs}
    if rendition.is_video:
        if rendition.width and rendition.height:
            attributes.update(width=str(rendition.width), height=str(rendition.height))
        rate = rendition.frame_rate  # the schema's FrameRateType: an integer or a fraction, never a decimal
        if rate:
            attributes["frameRate"] = str(rate.numerator if rate.denominator == 1 else rate)
    elif rendition.sample_rate_hz:
        attributes["audioSamplingRate"] = str(rendition.sample_rate_hz)
    element = ET.SubElement(parent, "Representation", attributes)
    if not rendition.is_video and rendition.channel_count:
        ET.SubElement(element, "AudioChannelConfiguration",
                      {"schemeIdUri": AUDIO_CHANNEL_SCHEME, "value": str(rendition.channel_count)})
    segment_template(element, period, rendition)
    return element


def adaptation_set(parent: ET.Element, period: Period, renditions: list[Rendition], set_id: int) -> ET.Element:
    """One AdaptationSet of renditions sharing media type and language."""
    first = renditions[0]
    attributes = {"id": str(set_id), "contentType": first.kind, "mimeType": f"{first.kind}/mp4",
                  "segmentAlignment": "true", "startWithSAP": "1"}
    if first.language_tag:  # an RFC 5646 tag (§5.3.3.2); left out when the language is undetermined
        attributes["lang"] = first.language_tag
    element = ET.SubElement(parent, "AdaptationSet", attributes)
    for rendition in renditions:
        representation(element, period, rendition)
    return element


def period_element(parent: ET.Element, period: Period) -> ET.Element:
    start = "PT0S" if period.start_s == 0 else duration(float(period.start_s))
    element = ET.SubElement(parent, "Period", {"id": period.id, "start": start})
    groups: dict[tuple[bool, str], list[Rendition]] = {}
    for rendition in period.renditions:
        groups.setdefault((not rendition.is_video, rendition.language_tag or ""), []).append(rendition)
    for set_id, key in enumerate(sorted(groups, key=lambda k: k[0]), start=1):
        adaptation_set(element, period, groups[key], set_id)
    return element


def mpd(presentation: Presentation) -> str:
    """The MPD (§5.3.1) of `presentation`, static or dynamic (see the module docstring), as an XML document."""
    live = presentation.live
    longest = max((d / r.timeline.timescale for p in presentation.periods for r in p.renditions
                   for _, _, d in r.timeline.segments()), default=0.0)
    min_buffer = presentation.min_buffer_time_s if presentation.min_buffer_time_s is not None else longest
    attributes = {"xmlns": MPD_NAMESPACE, "type": "dynamic" if presentation.is_dynamic else "static",
                  "profiles": PROFILE}
    if live is not None:
        attributes["availabilityStartTime"] = date_time(live.availability_start_time)
        attributes["publishTime"] = date_time(live.publish_time)
    if presentation.is_dynamic:
        attributes["minimumUpdatePeriod"] = duration(live.minimum_update_period_s)
        attributes["timeShiftBufferDepth"] = duration(live.time_shift_buffer_depth_s)
    else:
        total = presentation.duration_s if presentation.duration_s is not None else presentation.end_s()
        attributes["mediaPresentationDuration"] = duration(total)
    attributes["minBufferTime"] = duration(min_buffer)
    root = ET.Element("MPD", attributes)
    for period in presentation.periods:
        period_element(root, period)
    if presentation.is_dynamic and live.utc_timing_uri:
        ET.SubElement(root, "UTCTiming", {"schemeIdUri": UTC_TIMING_SCHEME, "value": live.utc_timing_uri})
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
