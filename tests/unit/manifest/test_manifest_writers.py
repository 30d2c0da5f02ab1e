"""manifest/ writers from plain data (gohlslib style: the input model and the expected text in one case), VOD and
live, and the dynamic and ended-live MPDs validated with xmllint against ../shared/schemas/DASH-MPD.xsd.

What each case proves: HLS live keeps a sliding EXT-X-MEDIA-SEQUENCE (the window's first number), one
EXT-X-PROGRAM-DATE-TIME per segment from the availability anchor (+ Period start + time - PTO), an
EXT-X-DISCONTINUITY with a new EXT-X-MAP at a second Period, no ENDLIST until the end; DASH dynamic has
availabilityStartTime/publishTime/timeShiftBufferDepth/minimumUpdatePeriod, a Period per discontinuity, S@t only
where a run does not follow, startNumber/presentationTimeOffset of the window; the ended presentation is static
with mediaPresentationDuration; Smooth live has IsLive, DVRWindowLength, LookaheadCount 0 and c@t on the window's
first chunk.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path

import pytest

from origin_proxy.errors import NotFound
from origin_proxy.manifest import dash, hls, smooth
from origin_proxy.manifest.model import (Live, Period, Presentation, Rendition, SegmentTimeline, SmoothQualityLevel,
                                         SmoothStreamIndex, TimelineRun, UrlTemplates)

SCHEMAS = Path(__file__).resolve().parents[3].parent / "shared" / "schemas"
START = datetime(2026, 12, 7, 8, 0, 0, tzinfo=timezone.utc)
NOW = datetime(2026, 12, 7, 8, 1, 0, 500_000, tzinfo=timezone.utc)
LIVE_URLS = UrlTemplates(media_playlist="$RepresentationID$/index.m3u8", initialization="$RepresentationID$/init.mp4",
                         media="$RepresentationID$/$Number$.m4s")
LIVE_URLS_2 = UrlTemplates(media_playlist="$RepresentationID$/index.m3u8",
                           initialization="$RepresentationID$/init-2.mp4", media="$RepresentationID$/$Number$.m4s",
                           hls_initialization="init-2.mp4")


def _video(timeline: SegmentTimeline) -> Rendition:
    return Rendition(id="v1", kind="video", codecs="avc1.64001e", bandwidth_bps=800_000, average_bandwidth_bps=600_000,
                     timeline=timeline, width=640, height=360, frame_rate=Fraction(25))


def _audio(timeline: SegmentTimeline) -> Rendition:
    return Rendition(id="a2", kind="audio", codecs="mp4a.40.2", bandwidth_bps=130_000, average_bandwidth_bps=128_000,
                     timeline=timeline, language_tag="en", sample_rate_hz=48_000, channel_count=2)


# A live window: segments 30..32 of Period "p0" (2 s at 90 kHz from t=5 400 000 = 60 s), then a discontinuity:
# Period "p1" starting at 66.5 s whose timeline restarts at 0 and is numbered on (33, 34).
WINDOW = (Period("p0", Fraction(0), (_video(SegmentTimeline.from_durations(90_000, 5_400_000, [180_000] * 3, 30)),),
                 LIVE_URLS),
          Period("p1", Fraction(133, 2), (_video(SegmentTimeline.from_durations(90_000, 0, [180_000, 90_000], 33)),),
                 LIVE_URLS_2))
LIVE = Live(availability_start_time=START, publish_time=NOW, time_shift_buffer_depth_s=10.0,
            minimum_update_period_s=2.0)
ENDED = Live(availability_start_time=START, publish_time=NOW, time_shift_buffer_depth_s=10.0,
             minimum_update_period_s=2.0, ended=True)


def test_timeline_runs_fold_equal_durations():
    timeline = SegmentTimeline.from_durations(1000, 500, [2000, 2000, 2000, 1500, 2000], first_number=7)
    assert timeline.runs == (TimelineRun(500, 2000, 2), TimelineRun(6500, 1500), TimelineRun(8000, 2000))
    assert list(timeline.segments())[3] == (10, 6500, 1500) and timeline.count == 5 and timeline.end_ticks == 10_000


def test_hls_vod_media_playlist():
    presentation = Presentation((Period("0", Fraction(0), (
        _video(SegmentTimeline.from_durations(12_800, 0, [51_200, 51_200, 25_600])),)),))
    assert hls.media_playlist(presentation, "v1") == """\
#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:4
#EXT-X-MEDIA-SEQUENCE:1
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI="init.mp4"
#EXTINF:4.000000,
1.m4s
#EXTINF:4.000000,
2.m4s
#EXTINF:2.000000,
3.m4s
#EXT-X-ENDLIST
"""
    with pytest.raises(NotFound):
        hls.media_playlist(presentation, "a9")


def test_hls_master_video_and_audio():
    presentation = Presentation((Period("0", Fraction(0), (
        _video(SegmentTimeline.from_durations(90_000, 0, [180_000])),
        _audio(SegmentTimeline.from_durations(48_000, 0, [96_000]))), LIVE_URLS),))
    assert hls.master_playlist(presentation) == """\
#EXTM3U
#EXT-X-VERSION:7
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="en a2",LANGUAGE="en",DEFAULT=YES,AUTOSELECT=YES,CHANNELS="2",URI="a2/index.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=930000,AVERAGE-BANDWIDTH=728000,CODECS="avc1.64001e,mp4a.40.2",RESOLUTION=640x360,FRAME-RATE=25.000,AUDIO="aud"
v1/index.m3u8
"""


def test_hls_live_window_with_discontinuity():
    presentation = Presentation(WINDOW, live=LIVE, discontinuity_sequence=4)
    assert hls.media_playlist(presentation, "v1") == """\
#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:30
#EXT-X-DISCONTINUITY-SEQUENCE:4
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI="init.mp4"
#EXT-X-PROGRAM-DATE-TIME:2026-12-07T08:01:00.000Z
#EXTINF:2.000000,
30.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-12-07T08:01:02.000Z
#EXTINF:2.000000,
31.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-12-07T08:01:04.000Z
#EXTINF:2.000000,
32.m4s
#EXT-X-DISCONTINUITY
#EXT-X-MAP:URI="init-2.mp4"
#EXT-X-PROGRAM-DATE-TIME:2026-12-07T08:01:06.500Z
#EXTINF:2.000000,
33.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-12-07T08:01:08.500Z
#EXTINF:1.000000,
34.m4s
"""
    ended = hls.media_playlist(Presentation(WINDOW, live=ENDED, discontinuity_sequence=4), "v1")
    assert ended.endswith("34.m4s\n#EXT-X-ENDLIST\n") and "PLAYLIST-TYPE" not in ended


DYNAMIC_MPD = """\
<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic" profiles="urn:mpeg:dash:profile:isoff-live:2011" \
availabilityStartTime="2026-12-07T08:00:00Z" publishTime="2026-12-07T08:01:00.500Z" minimumUpdatePeriod="PT2.000S" \
timeShiftBufferDepth="PT10.000S" minBufferTime="PT2.000S">
  <Period id="p0" start="PT0S">
    <AdaptationSet id="1" contentType="video" mimeType="video/mp4" segmentAlignment="true" startWithSAP="1">
      <Representation id="v1" bandwidth="800000" codecs="avc1.64001e" width="640" height="360" frameRate="25">
        <SegmentTemplate timescale="90000" initialization="$RepresentationID$/init.mp4" \
media="$RepresentationID$/$Number$.m4s" startNumber="30">
          <SegmentTimeline>
            <S t="5400000" d="180000" r="2" />
          </SegmentTimeline>
        </SegmentTemplate>
      </Representation>
    </AdaptationSet>
  </Period>
  <Period id="p1" start="PT66.500S">
    <AdaptationSet id="1" contentType="video" mimeType="video/mp4" segmentAlignment="true" startWithSAP="1">
      <Representation id="v1" bandwidth="800000" codecs="avc1.64001e" width="640" height="360" frameRate="25">
        <SegmentTemplate timescale="90000" initialization="$RepresentationID$/init-2.mp4" \
media="$RepresentationID$/$Number$.m4s" startNumber="33">
          <SegmentTimeline>
            <S t="0" d="180000" />
            <S d="90000" />
          </SegmentTimeline>
        </SegmentTemplate>
      </Representation>
    </AdaptationSet>
  </Period>
  <UTCTiming schemeIdUri="urn:mpeg:dash:utc:http-iso:2014" value="https://time.example/iso" />
</MPD>
"""


def test_dash_dynamic_mpd():
    live = Live(START, NOW, 10.0, 2.0, utc_timing_uri="https://time.example/iso")
    assert dash.mpd(Presentation(WINDOW, live=live)) == DYNAMIC_MPD


def test_dash_gap_in_a_timeline_gets_s_t_and_pto():
    timeline = SegmentTimeline(1000, (TimelineRun(1000, 500, 1), TimelineRun(3000, 500)), first_number=4,
                               presentation_time_offset_ticks=1000)
    text = dash.mpd(Presentation((Period("0", Fraction(0), (_video(timeline),)),), live=LIVE))
    assert 'startNumber="4" presentationTimeOffset="1000"' in text
    assert re.findall(r"<S [^>]*/>", text) == ['<S t="1000" d="500" r="1" />', '<S t="3000" d="500" />']


def test_dash_ended_live_is_static_with_duration():
    text = dash.mpd(Presentation(WINDOW, live=ENDED))
    # The end: Period p1 at 66.5 s + 3 s of its timeline.
    assert '<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static"' in text
    assert 'mediaPresentationDuration="PT69.500S"' in text and "timeShiftBufferDepth" not in text
    assert "minimumUpdatePeriod" not in text and "UTCTiming" not in text


SMOOTH_LIVE = """\
<?xml version="1.0" encoding="utf-8"?>
<SmoothStreamingMedia MajorVersion="2" MinorVersion="2" TimeScale="10000000" Duration="0" IsLive="TRUE" \
LookaheadCount="0" DVRWindowLength="100000000">
  <StreamIndex Type="video" Name="video" Chunks="3" QualityLevels="1" \
Url="QualityLevels({bitrate})/Fragments(video={start time})" MaxWidth="640" MaxHeight="360" DisplayWidth="640" \
DisplayHeight="360">
    <QualityLevel Index="0" Bitrate="800000" FourCC="H264" MaxWidth="640" MaxHeight="360" CodecPrivateData="000000016742" />
    <c t="600000000" d="20000000" />
    <c d="20000000" />
    <c d="10000000" />
  </StreamIndex>
  <StreamIndex Type="audio" Name="audio" Chunks="1" QualityLevels="1" \
Url="QualityLevels({bitrate})/Fragments(audio={start time})" Language="eng">
    <QualityLevel Index="0" Bitrate="128000" FourCC="AACL" SamplingRate="48000" Channels="2" BitsPerSample="16" \
PacketSize="4" AudioTag="255" CodecPrivateData="1190" />
    <c t="600000000" d="20000000" />
  </StreamIndex>
</SmoothStreamingMedia>
"""


def _smooth_streams() -> list[SmoothStreamIndex]:
    video = SmoothStreamIndex("video", "video", (SmoothQualityLevel(800_000, "H264", bytes.fromhex("000000016742"),
                                                                    width=640, height=360),),
                              SegmentTimeline.from_durations(10_000_000, 600_000_000, [20_000_000] * 2 + [10_000_000]),
                              display_width=640, display_height=360)
    level = SmoothQualityLevel(128_000, "AACL", b"\x11\x90", sample_rate_hz=48_000, channel_count=2)
    audio = SmoothStreamIndex("audio", "audio", (level,),
                              SegmentTimeline.from_durations(10_000_000, 600_000_000, [20_000_000]), language="eng")
    return [video, audio]


def test_smooth_live_and_ended():
    assert smooth.client_manifest(_smooth_streams(), live=LIVE) == SMOOTH_LIVE
    ended = smooth.client_manifest(_smooth_streams(), live=ENDED)
    assert 'TimeScale="10000000" Duration="650000000">' in ended and "IsLive" not in ended


@pytest.fixture(scope="module")
def schema(tmp_path_factory) -> Path:
    if not (SCHEMAS / "DASH-MPD.xsd").is_file() or shutil.which("xmllint") is None:
        pytest.skip(f"no DASH-MPD.xsd in {SCHEMAS} or no xmllint")
    folder = tmp_path_factory.mktemp("dash-schema")
    text = (SCHEMAS / "DASH-MPD.xsd").read_text(encoding="utf-8")
    text = re.sub(r'schemaLocation="https?://www\.w3\.org/[^"]*xlink\.xsd"', 'schemaLocation="xlink.xsd"', text)
    (folder / "DASH-MPD.xsd").write_text(text, encoding="utf-8")
    for name in ("xlink.xsd", "xml.xsd"):
        shutil.copyfile(SCHEMAS / name, folder / name)
    return folder / "DASH-MPD.xsd"


@pytest.mark.parametrize("live", [Live(START, NOW, 10.0, 2.0, utc_timing_uri="https://time.example/iso"), ENDED],
                         ids=["dynamic", "ended"])
def test_live_mpds_validate_against_the_schema(schema, tmp_path, live):
    path = tmp_path / "live.mpd"
    path.write_text(dash.mpd(Presentation(WINDOW, live=live)), encoding="utf-8")
    done = subprocess.run(["xmllint", "--noout", "--nonet", "--schema", str(schema), str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
