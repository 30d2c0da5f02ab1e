"""Real players on OUR streams: origin_proxy's fragment-on-demand HLS, DASH and Smooth in hls.js, dash.js and Shaka.

The edge runs in a thread (`serve_in_thread(make_app(make_config(rules)))`) with file: rules and 2 s segments:
- the shared H.264 + AAC movie (mp4/bbb_prog_10s.mp4): HLS in hls.js and Shaka, DASH in dash.js and Shaka;
- a generated movie with two AAC tracks (eng, fra): the HLS master has two EXT-X-MEDIA with LANGUAGE, and every
  player sees two audio tracks and plays;
- a three-variant `.ism` set (tests/ism_sets.py): HLS in hls.js, DASH in dash.js;
- Smooth Streaming (`Manifest`) of all three in dash.js with its MSS plugin: the two-language file as two audio
  StreamIndexes that dash.js offers as two tracks, eng and fra; the set as one video StreamIndex of three
  QualityLevels.
Each play must load, play to the end, seek to the middle and go on (`ok`, see harness.py), with pictures and sound
really decoded (Chromium's counters) and no HTTP errors.
Shaka Player 5 has no Smooth parser (MSS support was removed in 5.0, shaka-project/shaka-player#9329): it refuses
our Manifest with error 4000 (UNABLE_TO_GUESS_MANIFEST_TYPE) although we send application/vnd.ms-sstr+xml, the
type Shaka 4 registered its MSS parser under. One short play checks exactly that, so an upgrade that brings
Smooth back shows up here.

About 100 s on 2 cores (13 plays at 4x, one Chromium each, plus about 8 s of ffmpeg).
"""

from __future__ import annotations

import os
import urllib.request
from fractions import Fraction
from pathlib import Path

import m3u8
import pytest

import mediatools as mt
from conftest import MEDIA_ROOT, make_config
from harness import play, serve_in_thread
from ism_sets import make_ism_set
from origin_proxy.server.app import make_app

pytestmark = pytest.mark.players

TIMEOUT_S = 45.0
BBB = "mp4/bbb_prog_10s.mp4"
LANGUAGES_S = 10.0
SET_S = 20.0


def _two_languages(path: Path) -> Path:
    """One H.264 video and two AAC tracks tagged eng and fra (different tones), LANGUAGES_S long."""
    mt.run([mt.FFMPEG, "-nostdin", "-y", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=24",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
            "-f", "lavfi", "-i", "sine=frequency=660:sample_rate=48000", "-t", str(LANGUAGES_S),
            "-map", "0:v", "-map", "1:a", "-map", "2:a",
            "-c:v", "libx264", "-preset", "superfast", "-pix_fmt", "yuv420p",
            "-g", "48", "-keyint_min", "48", "-sc_threshold", "0",
            "-c:a", "aac", "-ar", "48000", "-ac", "2", "-b:a", "96k",
            "-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=fra",
            "-movflags", "+faststart", path], timeout=120)
    return path


@pytest.fixture(scope="module")
def edge_base(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("players-ours")
    _two_languages(root / "languages.mp4")
    make_ism_set(root / "set", SET_S)
    rules = [{"from": "/files/", "to": "file://" + os.fspath(MEDIA_ROOT) + "/", "segment_duration_s": 2},
             {"from": "/gen/", "to": "file://" + os.fspath(root) + "/", "segment_duration_s": 2}]
    with serve_in_thread(make_app(make_config(rules, log_level="WARNING"))) as base:
        yield base


def _summary(result: dict) -> str:
    keys = ("ok", "loaded", "played_to_end", "seeked_ok", "errors", "warnings", "timed_out", "http_errors",
            "console_errors", "harness_error", "audio_tracks", "audio_languages", "duration", "video_width",
            "video_height", "timeline", "wall_ms")
    return repr({key: result.get(key) for key in keys})


def _assert_played(result: dict, duration_s: float, audio_tracks: int = 1) -> None:
    assert result["ok"], _summary(result)
    assert result["duration"] == pytest.approx(duration_s, abs=0.3), _summary(result)
    assert result["audio_tracks"] == audio_tracks, _summary(result)
    # Really decoded, not only buffered: Chromium's decoder counters.
    assert result["frames_decoded"] > 0 and result["video_decoded_bytes"] > 0, _summary(result)
    assert result["audio_decoded_bytes"] > 0, _summary(result)
    assert not result["http_errors"], _summary(result)


@pytest.mark.parametrize(("manifest", "player"), [("master.m3u8", "hlsjs"), ("master.m3u8", "shaka"),
                                                  ("manifest.mpd", "dashjs"), ("manifest.mpd", "shaka")])
def test_h264_aac_plays_to_end_and_seeks(edge_base, manifest, player):
    result = play(f"{edge_base}/files/{BBB}/{manifest}", player, TIMEOUT_S)
    _assert_played(result, mt.duration_s(MEDIA_ROOT / BBB))
    # The element reports display pixels: coded 320x240 with the source's sample aspect ratio (ffprobe).
    video = next(s for s in mt.ffprobe_streams(MEDIA_ROOT / BBB) if s["codec_type"] == "video")
    sar = Fraction(video.get("sample_aspect_ratio", "1:1").replace(":", "/"))
    expected = (round(video["width"] * sar), video["height"])
    assert (result["video_width"], result["video_height"]) == expected, _summary(result)


def test_two_languages_are_two_hls_renditions(edge_base):
    with urllib.request.urlopen(f"{edge_base}/gen/languages.mp4/master.m3u8", timeout=10) as resp:
        master = m3u8.loads(resp.read().decode())
    assert [(m.type, m.language) for m in master.media] == [("AUDIO", "en"), ("AUDIO", "fr")]  # RFC 5646 tags
    assert len({m.group_id for m in master.media}) == 1 and len(master.playlists) == 1


@pytest.mark.parametrize(("manifest", "player"), [("master.m3u8", "hlsjs"), ("master.m3u8", "shaka"),
                                                  ("manifest.mpd", "dashjs")])
def test_two_languages_play_with_two_audio_tracks(edge_base, manifest, player):
    result = play(f"{edge_base}/gen/languages.mp4/{manifest}", player, TIMEOUT_S)
    _assert_played(result, LANGUAGES_S, audio_tracks=2)


@pytest.mark.parametrize(("manifest", "player"), [("master.m3u8", "hlsjs"), ("manifest.mpd", "dashjs")])
def test_ism_set_plays_and_seeks(edge_base, manifest, player):
    result = play(f"{edge_base}/gen/set/set.ism/{manifest}", player, TIMEOUT_S)
    _assert_played(result, SET_S)
    assert result["video_height"] in (180, 360, 540), _summary(result)


def test_smooth_h264_aac_plays_in_dashjs(edge_base):
    result = play(f"{edge_base}/files/{BBB}/Manifest", "dashjs", TIMEOUT_S)
    _assert_played(result, mt.duration_s(MEDIA_ROOT / BBB))
    # dash.js MSS builds its own init segment from CodecPrivateData and the QualityLevel's MaxWidth/MaxHeight, with
    # no pasp and no use of DisplayWidth: the source's 4:3 pixels (pasp only, not in the SPS) are shown square.
    video = next(s for s in mt.ffprobe_streams(MEDIA_ROOT / BBB) if s["codec_type"] == "video")
    assert (result["video_width"], result["video_height"]) == (video["width"], video["height"]), _summary(result)


def test_smooth_two_languages_play_with_two_audio_tracks_in_dashjs(edge_base):
    result = play(f"{edge_base}/gen/languages.mp4/Manifest", "dashjs", TIMEOUT_S)
    _assert_played(result, LANGUAGES_S, audio_tracks=2)
    assert sorted(result["audio_languages"]) == ["eng", "fra"], _summary(result)


def test_smooth_ism_set_plays_and_seeks_in_dashjs(edge_base):
    result = play(f"{edge_base}/gen/set/set.ism/Manifest", "dashjs", TIMEOUT_S)
    _assert_played(result, SET_S)
    assert result["video_height"] in (180, 360, 540), _summary(result)


def test_shaka_5_has_no_smooth_parser(edge_base):
    result = play(f"{edge_base}/files/{BBB}/Manifest", "shaka", 20.0)
    assert not result["loaded"] and not result["http_errors"], _summary(result)
    messages = [e["message"] for e in result["errors"]]
    assert any("code 4000" in m and "application/vnd.ms-sstr+xml" in m for m in messages), _summary(result)
