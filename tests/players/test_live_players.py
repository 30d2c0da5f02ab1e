"""Real players on a live publishing point (issue 11 "Must show"): while two ffmpeg `-re -f ismv` pushes run into
one point in parallel (one encoder per bitrate: 320x240 H.264 + AAC, 160x120 H.264), hls.js plays
`BASE/master.m3u8`, dash.js `BASE/manifest.mpd` and dash.js with its MSS plugin `BASE/Manifest`, all three at once
in headless Chromium; each joins live and plays at rate 1. The pushes end while they play (the point stops, its
manifests turn VOD): the HLS and DASH viewers must play on to the end of the event. (A live Smooth viewer is not
told that the event ended: dash.js MSS never reloads the manifest; docs/live.md.)

The pushed files are encoded first (14 s, 1 s GOPs, so 1 s fragments) and pushed with `-re -c copy`. The players
start about 3 s into the event; with their browsers' start-up they join it some seconds later and play the rest.
Verdicts come from the players (their own live flag, errors) and Chromium's decoder counters.

A second test restarts the origin process under a live hls.js viewer (the encoder reconnects where the archive
ends) and checks the viewer plays on across the restart.

About 45 s on 2 cores (two 14 s pushes with three Chromiums at once, then a 20 s push with one).
"""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import make_config
from harness import play, serve_in_thread
from origin_proxy.server.app import make_app

pytestmark = pytest.mark.players

TOKEN = "players-token"
PUSH_S = 14
PLAY_S = 3.0
TIMEOUT_S = 45.0


@pytest.fixture(scope="module")
def pushed_files(tmp_path_factory) -> dict[str, os.PathLike]:
    """Two encodes of one picture, as two encoders of one event would make them: "hi" 320x240 with AAC and "lo"
    160x120 video only, same GOPs (1 s), PUSH_S long."""
    folder = tmp_path_factory.mktemp("live-players")
    files = {}
    for name, size, audio in (("hi", "320x240", True), ("lo", "160x120", False)):
        files[name] = folder / f"{name}.mp4"
        args = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-c:a", "aac", "-b:a", "64k"] \
            if audio else []
        subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i",
                        f"testsrc2=size={size}:rate=25", *args, "-t", str(PUSH_S), "-pix_fmt", "yuv420p",
                        "-c:v", "libx264", "-preset", "veryfast", "-g", "25", "-keyint_min", "25", "-sc_threshold", "0",
                        os.fspath(files[name])], check=True, timeout=120)
    return files


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def _wait_for_fragments(base: str, count: int, push: subprocess.Popen, timeout_s: float = 20.0) -> None:
    """Until the Smooth manifest lists `count` c elements (all StreamIndexes together)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert push.poll() is None, "the push ended before the manifests listed anything"
        status, manifest = _get(base + "/Manifest")  # Smooth: one c element per fragment, never folded
        if status == 200 and manifest.count(b"<c ") >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"{base} listed fewer than {count} fragments after {timeout_s} s")


def _wait_for_state(base: str, state: bytes, timeout_s: float = 10.0) -> bytes:
    """The point's /state once it holds `state` (ffmpeg may exit before the origin has read its last bytes)."""
    deadline = time.monotonic() + timeout_s
    while True:
        body = _get(base + "/state")[1]
        if state in body or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def _summary(result: dict) -> str:
    keys = ("ok", "loaded", "is_live", "live_ok", "live_start_time", "live_advanced_s", "played_to_end", "stalls",
            "errors", "warnings", "timed_out", "http_errors", "console_errors", "harness_error", "duration",
            "current_time", "frames_decoded", "timeline", "wall_ms")
    return repr({key: result.get(key) for key in keys})


def test_three_players_play_a_live_push_to_its_end(tmp_path, pushed_files):
    rules = [{"from": "/live/", "live": {"storage": os.fspath(tmp_path / "live"), "ingest_token": TOKEN,
                                          "dvr_window_s": 60}}]
    with serve_in_thread(make_app(make_config(rules, log_level="WARNING"))) as origin:
        base = origin + "/live/event.isml"
        pushes = [subprocess.Popen(  # two encoders, one per bitrate, in parallel (the seed's "Method 1")
            ["ffmpeg", "-v", "error", "-nostdin", "-re", "-i", os.fspath(path), "-c", "copy",
             "-f", "ismv", "-movflags", "isml+frag_keyframe", "-headers", f"Authorization: Bearer {TOKEN}\r\n",
             "-method", "POST", base + f"/Streams({name})"], stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
            for name, path in pushed_files.items()]
        try:
            _wait_for_fragments(base, 4, pushes[0])  # about 3 s in: the browsers need a few seconds to start
            plays = {"hls": (base + "/master.m3u8", "hlsjs", True), "dash": (base + "/manifest.mpd", "dashjs", True),
                     "smooth": (base + "/Manifest", "dashjs", False)}
            with concurrent.futures.ThreadPoolExecutor(len(plays)) as pool:
                futures = {name: pool.submit(play, url, player, TIMEOUT_S, live_s=PLAY_S, until_end=until_end)
                           for name, (url, player, until_end) in plays.items()}
                results = {name: future.result() for name, future in futures.items()}
            errors = [push.communicate(timeout=30)[1] for push in pushes]
        finally:
            for push in pushes:
                if push.poll() is None:
                    push.kill()
                    push.wait()
        assert [push.returncode for push in pushes] == [0, 0], [e.decode() for e in errors]
        state = _wait_for_state(base, b'"stopped"')
        _, master = _get(base + "/master.m3u8")
    assert b'"stopped"' in state and master.count(b"#EXT-X-STREAM-INF") == 2  # both encoders' bitrates
    for name, result in results.items():
        assert result["ok"], (name, _summary(result))
        assert result["is_live"] is True, (name, _summary(result))  # the player joined it as a live stream
        assert result["frames_decoded"] > 0 and result["video_decoded_bytes"] > 0, (name, _summary(result))
        assert result["audio_decoded_bytes"] > 0, (name, _summary(result))
        assert not result["http_errors"], (name, _summary(result))
        if plays[name][2]:  # it played on after the point stopped, to (about) the end of the event
            assert result["played_to_end"] and result["current_time"] >= PUSH_S - 1.5, (name, _summary(result))


RESTART_PUSH_S = 20


def _push(url: str, source: os.PathLike, *before_input: str, after_input: tuple[str, ...] = ()) -> subprocess.Popen:
    return subprocess.Popen(
        ["ffmpeg", "-v", "error", "-nostdin", "-re", *before_input, "-i", os.fspath(source), "-an", "-c", "copy",
         *after_input, "-f", "ismv", "-movflags", "isml+frag_keyframe",
         "-headers", f"Authorization: Bearer {TOKEN}\r\n", "-method", "POST", url],
        stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _statistics(base: str) -> dict:
    import json

    status, body = _get(base + "/statistics")
    assert status == 200, status
    return json.loads(body)


def test_a_live_player_keeps_playing_across_an_origin_restart(tmp_path_factory):
    """hls.js plays a live point while the origin process is restarted under it: the encoder is killed, the
    origin stopped and started again on the same port (the point reloads its index from the archive), the
    encoder reconnects where the archive ends (`-ss T -output_ts_offset T`). The player rides through the outage
    on its retries and keeps playing past the restart, with no fatal error."""
    from serve_process import ServeProcess

    root = tmp_path_factory.mktemp("live-restart")
    source = root / "long.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
                    "-t", str(RESTART_PUSH_S), "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "veryfast",
                    "-g", "25", "-keyint_min", "25", "-sc_threshold", "0", os.fspath(source)], check=True, timeout=120)
    remap = (f"remap:\n  - from: /live/\n    live:\n      storage: {root / 'live'}\n      ingest_token: {TOKEN}\n"
             f"      dvr_window_s: 60\n")
    first = ServeProcess(root / "a", remap).start()
    port = first.port
    base = first.base_url + "/live/r.isml"
    pushes: list[subprocess.Popen] = []
    second = None
    try:
        pushes.append(_push(base + "/Streams(s1)", source))
        _wait_for_fragments(base, 4, pushes[0])
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            playing = pool.submit(play, base + "/master.m3u8", "hlsjs", 60.0, live_s=11.0)
            time.sleep(5)
            pushes[0].kill()  # the encoder dies mid-fragment, then the origin restarts
            pushes[0].wait()
            first.stop()
            second = ServeProcess(root / "b", remap, "--port", str(port)).start()
            tracks = _statistics(base)["tracks"]
            resume_s = tracks[0]["last_time_s"]
            assert _statistics(base)["state"] == "started" and resume_s > 4  # back from the archive
            pushes.append(_push(base + "/Streams(s1)", source, "-ss", f"{resume_s:.3f}",
                                after_input=("-output_ts_offset", f"{resume_s:.3f}")))
            result = playing.result()
        assert result["ok"], _summary(result)
        # It played across the restart: from before the encoder died to well after the reconnect.
        assert result["live_start_time"] < resume_s - 3 and resume_s + 3 < result["current_time"], \
            (resume_s, _summary(result))
        assert result["frames_decoded"] > 0 and not result["errors"], _summary(result)
        after = _statistics(base)["tracks"][0]
        assert after["last_time_s"] > resume_s + 2 and after["encoder_connections"] >= 1
    finally:
        for push in pushes:
            if push.poll() is None:
                push.kill()
                push.wait()
        if second is not None:
            second.stop()
        first.stop()
