"""The player harness itself, proven on REFERENCE streams that ffmpeg packages (not on origin_proxy's output).

One 12 s H.264 + AAC movie (mediatools.make_test_movie) is packaged by ffmpeg's own muxers as HLS fMP4 (master +
media playlist, VOD) and as DASH (SegmentTemplate + SegmentTimeline), and served by a static aiohttp server in a
thread. hls.js and Shaka must play the HLS to the end and seek; dash.js and Shaka the DASH. Broken copies (an HLS
playlist naming a segment that does not exist, a DASH init segment with its moov overwritten) must come back as not
played with errors, so a harness that always says "ok" fails here. The CORS pair shows that page_origin="cross"
really needs Access-Control-Allow-Origin from the server.

Each play() starts its own Chromium (about 1 s) and plays at 4x; the module takes about 40 s on 2 cores.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from aiohttp import web

import mediatools
from harness import play, serve_in_thread

pytestmark = pytest.mark.players

MOVIE_S = 12.0
TIMEOUT_S = 45.0
#: Broken streams fail within a few seconds (few, short retries); the bound only caps a player that hangs.
BROKEN_TIMEOUT_S = 25.0


def _package(movie: Path, root: Path) -> None:
    """ffmpeg's HLS and DASH packagings of `movie` under root/hls and root/dash, plus the broken copies."""
    hls, dash = root / "hls", root / "dash"
    hls.mkdir()
    dash.mkdir()
    mediatools.run([mediatools.FFMPEG, "-nostdin", "-y", "-v", "error", "-i", movie, "-c", "copy",
                    "-f", "hls", "-hls_time", "2", "-hls_segment_type", "fmp4", "-hls_playlist_type", "vod",
                    "-hls_fmp4_init_filename", "init.mp4", "-hls_segment_filename", hls / "seg_%03d.m4s",
                    "-master_pl_name", "master.m3u8", hls / "media.m3u8"], timeout=60)
    mediatools.run([mediatools.FFMPEG, "-nostdin", "-y", "-v", "error", "-i", movie, "-c", "copy",
                    "-f", "dash", "-seg_duration", "2", "-use_template", "1", "-use_timeline", "1",
                    dash / "manifest.mpd"], timeout=60)
    # HLS whose third segment is not on the server (404).
    media = (hls / "media.m3u8").read_text()
    assert "seg_002.m4s" in media, media
    (hls / "missing.m3u8").write_text(media.replace("seg_002.m4s", "gone_002.m4s"))
    # DASH whose video init segment keeps its size and its ftyp but has every byte after that overwritten.
    bad = root / "dash_badinit"
    shutil.copytree(dash, bad)
    init = bad / "init-stream0.m4s"
    data = bytearray(init.read_bytes())
    ftyp_size = int.from_bytes(data[:4], "big")
    assert data[4:8] == b"ftyp" and ftyp_size < len(data), data[:16]
    data[ftyp_size:] = b"\xa5" * (len(data) - ftyp_size)
    init.write_bytes(bytes(data))


def _app(root: Path) -> web.Application:
    """/ref/<file>: the packaged files, no CORS headers. /cors/<file>: the same files with CORS headers."""

    @web.middleware
    async def cors(request: web.Request, handler):
        response = await handler(request)
        if request.path.startswith("/cors/"):
            response.headers["Access-Control-Allow-Origin"] = "*"
            response.headers["Access-Control-Expose-Headers"] = "Content-Length, Content-Range"
        return response

    app = web.Application(middlewares=[cors])
    app.router.add_static("/ref/", root)
    app.router.add_static("/cors/", root)
    return app


@pytest.fixture(scope="module")
def ref_server(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("players-ref")
    movie = mediatools.make_test_movie(root / "movie.mp4", MOVIE_S, moov_at_end=False)
    _package(movie, root)
    with serve_in_thread(_app(root)) as base:
        yield base


def _summary(result: dict) -> str:
    keys = ("ok", "loaded", "played_to_end", "seeked_ok", "errors", "warnings", "timed_out", "http_errors",
            "console_errors", "harness_error", "timeline", "wall_ms")
    return repr({key: result.get(key) for key in keys})


def _assert_played(result: dict) -> None:
    assert result["ok"], _summary(result)
    assert (result["video_width"], result["video_height"]) == (320, 240), _summary(result)
    assert result["audio_tracks"] == 1, _summary(result)
    assert result["duration"] == pytest.approx(MOVIE_S, abs=0.25), _summary(result)
    # Really decoded, not only buffered: Chromium's decoder counters.
    assert result["frames_decoded"] > 0 and result["video_decoded_bytes"] > 0, _summary(result)
    assert result["audio_decoded_bytes"] > 0, _summary(result)
    assert not result["http_errors"], _summary(result)


@pytest.mark.parametrize("player", ["hlsjs", "shaka"])
def test_hls_fmp4_reference_plays_to_end_and_seeks(ref_server, player):
    _assert_played(play(f"{ref_server}/ref/hls/master.m3u8", player, TIMEOUT_S))


@pytest.mark.parametrize("player", ["dashjs", "shaka"])
def test_dash_reference_plays_to_end_and_seeks(ref_server, player):
    _assert_played(play(f"{ref_server}/ref/dash/manifest.mpd", player, TIMEOUT_S))


@pytest.mark.parametrize("player", ["hlsjs", "shaka"])
def test_hls_missing_segment_is_reported_as_not_played(ref_server, player):
    result = play(f"{ref_server}/ref/hls/missing.m3u8", player, BROKEN_TIMEOUT_S)
    assert not result["ok"] and not result["played_to_end"], _summary(result)
    assert result["errors"], _summary(result)
    assert any(e.startswith("404 ") and "gone_002.m4s" in e for e in result["http_errors"]), _summary(result)


def test_dash_corrupt_init_segment_is_reported_as_not_played(ref_server):
    result = play(f"{ref_server}/ref/dash_badinit/manifest.mpd", "dashjs", BROKEN_TIMEOUT_S)
    assert not result["ok"] and not result["played_to_end"], _summary(result)
    assert result["errors"], _summary(result)


def test_cross_origin_page_needs_cors_headers(ref_server):
    refused = play(f"{ref_server}/ref/hls/master.m3u8", "hlsjs", BROKEN_TIMEOUT_S, page_origin="cross")
    assert not refused["ok"] and not refused["loaded"] and refused["errors"], _summary(refused)
    assert any("CORS" in line for line in refused["console_errors"]), _summary(refused)
    allowed = play(f"{ref_server}/cors/hls/master.m3u8", "hlsjs", TIMEOUT_S, page_origin="cross")
    _assert_played(allowed)
