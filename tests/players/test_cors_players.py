"""CORS for real: a player page served from one origin plays our HLS/DASH from another (the page on
http://localhost:P, the media on http://127.0.0.1:P; harness.py `page_origin="cross"`).

- with the default `cors` settings hls.js plays the HLS (and dash.js the DASH) to the end and seeks, with
  segments fetched cross-origin (sent with Origin, read by the page);
- with `cors: off` the same page is refused by Chromium (a CORS console error, nothing loaded): the control that
  shows the plays above depend on our headers and not on a lenient browser.

About 25 s on 2 cores (3 plays at 4x).
"""

from __future__ import annotations

import os

import pytest

from conftest import MEDIA_ROOT, make_config
from harness import play, serve_in_thread
from origin_proxy.server.app import make_app

pytestmark = pytest.mark.players

TIMEOUT_S = 45.0
REFUSED_TIMEOUT_S = 15.0
BBB = "mp4/bbb_prog_10s.mp4"
RULES = [{"from": "/files/", "to": "file://" + os.fspath(MEDIA_ROOT) + "/", "segment_duration_s": 2}]


def _summary(result: dict) -> str:
    keys = ("ok", "loaded", "played_to_end", "seeked_ok", "errors", "timed_out", "http_errors", "console_errors",
            "harness_error", "duration", "frames_decoded", "wall_ms")
    return repr({key: result.get(key) for key in keys})


@pytest.fixture(scope="module")
def cors_base() -> str:
    with serve_in_thread(make_app(make_config(RULES, log_level="WARNING"))) as base:
        yield base


@pytest.mark.parametrize(("player", "manifest"), [("hlsjs", "master.m3u8"), ("dashjs", "manifest.mpd")])
def test_cross_origin_page_plays_our_stream(cors_base, player, manifest):
    result = play(f"{cors_base}/files/{BBB}/{manifest}", player, TIMEOUT_S, page_origin="cross")
    assert result["ok"], _summary(result)
    assert result["duration"] == pytest.approx(10.0, abs=0.3), _summary(result)
    assert result["frames_decoded"] > 0 and not result["http_errors"], _summary(result)
    assert not any("CORS" in line for line in result["console_errors"]), _summary(result)


def test_cross_origin_page_is_refused_when_cors_is_off():
    with serve_in_thread(make_app(make_config(RULES, log_level="WARNING", cors=False))) as base:
        result = play(f"{base}/files/{BBB}/master.m3u8", "hlsjs", REFUSED_TIMEOUT_S, page_origin="cross")
    assert not result["ok"] and not result["loaded"] and result["errors"], _summary(result)
    assert any("CORS" in line for line in result["console_errors"]), _summary(result)
