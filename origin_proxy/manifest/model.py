"""What a manifest says, as plain data: one model for VOD and live, written by hls.py, dash.py and smooth.py. Pure.

No numpy, no MP4, no clock: the caller (package/ for VOD files, live/ for publishing points) builds these values
and passes the wall-clock times in. Every writer is a function `model -> str`.

```python
from datetime import datetime, timezone
from fractions import Fraction
from origin_proxy.manifest import dash, hls, smooth
from origin_proxy.manifest.model import (Live, Period, Presentation, Rendition, SegmentTimeline,
                                         SmoothQualityLevel, SmoothStreamIndex)

video = Rendition(id="v1", kind="video", codecs="avc1.64001f", bandwidth_bps=900_000,
                  timeline=SegmentTimeline.from_durations(90_000, start_ticks=0, durations_ticks=[180_000] * 5,
                                                          first_number=1),
                  width=640, height=360, frame_rate=Fraction(25))
audio = Rendition(id="a2", kind="audio", codecs="mp4a.40.2", bandwidth_bps=96_000, language_tag="en",
                  name="en 2", timeline=SegmentTimeline.from_durations(48_000, 0, [96_000] * 5),
                  sample_rate_hz=48_000, channel_count=2)
live = Live(availability_start_time=datetime(2026, 12, 7, 8, 0, tzinfo=timezone.utc),
            publish_time=datetime(2026, 12, 7, 8, 0, 10, tzinfo=timezone.utc),
            time_shift_buffer_depth_s=30.0, minimum_update_period_s=2.0)
p = Presentation(periods=(Period("0", Fraction(0), (video, audio)),), live=live)
hls.master_playlist(p); hls.media_playlist(p, "v1"); dash.mpd(p)
```

Conventions:
- Times on a timeline are integer ticks of its `timescale`; Period starts and durations are seconds.
- A `SegmentTimeline` is run-length coded like DASH's S elements (ISO/IEC 23009-1 §5.3.9.6) and Smooth's c
  elements (MS-SSTR §2.2.2.6): runs of (start_ticks, duration_ticks, repeat), repeat = extra segments of the same
  duration, so a run covers repeat + 1 segments. Segment numbers count on from `first_number` over the runs
  (HLS Media Sequence Number and DASH $Number$ are the same number).
- A segment's presentation time in seconds is `period.start_s + (t - presentation_time_offset_ticks) / timescale`
  (DASH §5.3.9.2); its wall-clock time (HLS EXT-X-PROGRAM-DATE-TIME) adds `live.availability_start_time`.
- Several Periods = discontinuities: DASH writes one Period each, HLS one EXT-X-DISCONTINUITY before the first
  segment of every Period after the first, and a new EXT-X-MAP when the Period's init URI differs. A Rendition
  keeps its `id` across Periods. `Presentation.discontinuity_sequence` counts the discontinuities that have slid
  out of a live window (EXT-X-DISCONTINUITY-SEQUENCE, RFC 8216 §4.3.3.3).
- `live` None: VOD (HLS PLAYLIST-TYPE VOD + ENDLIST, static MPD). `live` set and not ended: HLS sliding window
  without ENDLIST, dynamic MPD, Smooth IsLive. `live.ended`: HLS ENDLIST, static MPD with
  mediaPresentationDuration, Smooth without IsLive.
- URL templates use DASH's identifiers `$RepresentationID$` and `$Number$` (§5.3.9.4.4); HLS writers substitute
  them. Smooth fragment URLs are MS-SSTR's own `QualityLevels({bitrate})/Fragments(<name>={start time})`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from typing import Literal

Kind = Literal["video", "audio"]


@dataclass(frozen=True)
class TimelineRun:
    """repeat + 1 segments of `duration_ticks` each, the first at `start_ticks` (DASH S@t/@d/@r, Smooth c)."""

    start_ticks: int
    duration_ticks: int
    repeat: int = 0

    @property
    def end_ticks(self) -> int:
        return self.start_ticks + self.duration_ticks * (self.repeat + 1)


@dataclass(frozen=True)
class SegmentTimeline:
    """The segments of one rendition in a Period: `timescale` ticks per second, runs in time order, numbered from
    `first_number`. `presentation_time_offset_ticks` is the timeline time shown at the Period start (DASH
    @presentationTimeOffset); 0 for our VOD output."""

    timescale: int
    runs: tuple[TimelineRun, ...]
    first_number: int = 1
    presentation_time_offset_ticks: int = 0

    @classmethod
    def from_durations(cls, timescale: int, start_ticks: int, durations_ticks: list[int] | tuple[int, ...],
                       first_number: int = 1, presentation_time_offset_ticks: int = 0) -> SegmentTimeline:
        """Contiguous segments from `start_ticks`, consecutive equal durations folded into one run."""
        runs: list[TimelineRun] = []
        now = start_ticks
        for d in durations_ticks:
            d = int(d)
            if runs and runs[-1].duration_ticks == d:
                runs[-1] = TimelineRun(runs[-1].start_ticks, d, runs[-1].repeat + 1)
            else:
                runs.append(TimelineRun(now, d))
            now += d
        return cls(timescale, tuple(runs), first_number, presentation_time_offset_ticks)

    def segments(self) -> Iterator[tuple[int, int, int]]:
        """(number, start_ticks, duration_ticks) of every segment, in order."""
        number = self.first_number
        for run in self.runs:
            for k in range(run.repeat + 1):
                yield number, run.start_ticks + k * run.duration_ticks, run.duration_ticks
                number += 1

    @property
    def count(self) -> int:
        return sum(run.repeat + 1 for run in self.runs)

    @property
    def end_ticks(self) -> int:
        return self.runs[-1].end_ticks if self.runs else self.presentation_time_offset_ticks


@dataclass(frozen=True)
class UrlTemplates:
    """Relative URIs of a rendition's resources ($RepresentationID$, $Number$ substituted per segment).

    Attributes:
        media_playlist: an HLS media playlist, relative to the master playlist.
        initialization, media: init segment and media segment, relative to the MPD (SegmentTemplate).
        hls_initialization, hls_media: the same resources relative to the media playlist.
    """

    media_playlist: str = "cmaf1/$RepresentationID$/playlist.m3u8"
    initialization: str = "cmaf1/$RepresentationID$/init.mp4"
    media: str = "cmaf1/$RepresentationID$/$Number$.m4s"
    hls_initialization: str = "init.mp4"
    hls_media: str = "$Number$.m4s"


def fill(template: str, representation_id: str, number: int | None = None) -> str:
    """`template` with $RepresentationID$ and $Number$ replaced (ISO/IEC 23009-1 §5.3.9.4.4, no format tags)."""
    text = template.replace("$RepresentationID$", representation_id)
    return text.replace("$Number$", str(number)) if number is not None else text


@dataclass(frozen=True)
class Rendition:
    """One track as HLS and DASH describe it (an HLS variant or EXT-X-MEDIA rendition, a DASH Representation).

    Attributes:
        id: the Representation@id and URL token, e.g. "v1", "a2".
        kind: "video" or "audio".
        codecs: the RFC 6381 codecs string, e.g. "avc1.64001f", "mp4a.40.2".
        bandwidth_bps: peak bit rate (HLS BANDWIDTH, DASH @bandwidth); average_bandwidth_bps: HLS AVERAGE-BANDWIDTH.
        timeline: its segments in this Period.
        language_tag: RFC 5646 tag ("en") or None when undetermined (no LANGUAGE / @lang).
        name: HLS EXT-X-MEDIA NAME of an audio rendition; "" gives "<tag or und> <id>".
        width, height: coded picture size in pixels (video); frame_rate: frames per second (video) or None.
        sample_rate_hz, channel_count: audio facts (DASH audioSamplingRate, AudioChannelConfiguration, HLS CHANNELS).
    """

    id: str
    kind: Kind
    codecs: str
    bandwidth_bps: int
    timeline: SegmentTimeline
    average_bandwidth_bps: int | None = None
    language_tag: str | None = None
    name: str = ""
    width: int | None = None
    height: int | None = None
    frame_rate: Fraction | None = None
    sample_rate_hz: int | None = None
    channel_count: int | None = None

    @property
    def is_video(self) -> bool:
        return self.kind == "video"


@dataclass(frozen=True)
class Period:
    """A DASH Period / the HLS segments between two discontinuities. `start_s`: seconds from presentation time 0."""

    id: str
    start_s: Fraction
    renditions: tuple[Rendition, ...]
    urls: UrlTemplates = field(default_factory=UrlTemplates)

    def rendition(self, rendition_id: str) -> Rendition | None:
        return next((r for r in self.renditions if r.id == rendition_id), None)


@dataclass(frozen=True)
class Live:
    """The live state of a presentation; every time is passed in (timezone-aware UTC datetimes).

    Attributes:
        availability_start_time: wall clock of presentation time 0 (DASH @availabilityStartTime; HLS
            PROGRAM-DATE-TIME anchor).
        publish_time: when this manifest is made, i.e. "now" (DASH @publishTime).
        time_shift_buffer_depth_s: the window kept (DASH @timeShiftBufferDepth, Smooth DVRWindowLength).
        minimum_update_period_s: how often clients should reload (DASH @minimumUpdatePeriod).
        ended: the publishing point has stopped: HLS ENDLIST, static MPD, Smooth VOD form.
        utc_timing_uri: an http-iso time source for DASH clients (UTCTiming), or None.
    """

    availability_start_time: datetime
    publish_time: datetime
    time_shift_buffer_depth_s: float
    minimum_update_period_s: float
    ended: bool = False
    utc_timing_uri: str | None = None


@dataclass(frozen=True)
class Presentation:
    """Everything HLS and DASH manifests say.

    Attributes:
        periods: one or more, in time order (one for VOD).
        live: None for VOD; else the live state.
        duration_s: presentation duration (DASH mediaPresentationDuration when static); None: from the timelines.
        min_buffer_time_s: DASH @minBufferTime; None: the longest segment.
        discontinuity_sequence: discontinuities before the first listed segment (HLS, live windows).
    """

    periods: tuple[Period, ...]
    live: Live | None = None
    duration_s: float | None = None
    min_buffer_time_s: float | None = None
    discontinuity_sequence: int = 0

    @property
    def is_dynamic(self) -> bool:
        return self.live is not None and not self.live.ended

    def end_s(self) -> float:
        """The latest rendition end, seconds from presentation time 0."""
        ends = [float(p.start_s) + (r.timeline.end_ticks - r.timeline.presentation_time_offset_ticks)
                / r.timeline.timescale for p in self.periods for r in p.renditions]
        return max(ends, default=0.0)


@dataclass(frozen=True)
class SmoothQualityLevel:
    """One QualityLevel (MS-SSTR §2.2.2.5): `bitrate_bps` (unique in its StreamIndex; names fragment URLs),
    `fourcc` ("H264", "AACL", "AACH"), `codec_private_data` (Annex-B SPS+PPS, or the AudioSpecificConfig), coded
    `width`/`height` (video), `sample_rate_hz`/`channel_count` (audio)."""

    bitrate_bps: int
    fourcc: str
    codec_private_data: bytes
    width: int = 0
    height: int = 0
    sample_rate_hz: int = 0
    channel_count: int = 0


@dataclass(frozen=True)
class SmoothStreamIndex:
    """One StreamIndex (MS-SSTR §2.2.2.3): `name` ("video", "audio", "audio_a3"), `kind`, its QualityLevels in Index
    order, the shared chunk `timeline` (10 MHz ticks for our output), `language` (ISO 639-2/T as stored, audio) and
    the largest level's picture as displayed (`display_width`, `display_height`, video)."""

    name: str
    kind: Kind
    levels: tuple[SmoothQualityLevel, ...]
    timeline: SegmentTimeline
    language: str = "und"
    display_width: int = 0
    display_height: int = 0

    @property
    def is_video(self) -> bool:
        return self.kind == "video"
