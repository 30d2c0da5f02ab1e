"""Real browser players over real HTTP: play a manifest URL in headless Chromium with hls.js, dash.js or Shaka.

    from players.harness import play
    result = play("http://127.0.0.1:8080/media/movie.mp4/master.m3u8", "hlsjs", timeout_s=60)
    assert result["ok"], result

`play` runs `node run_player.mjs` (playwright-core driving Debian's /usr/bin/chromium, never a downloaded browser)
as a subprocess with a hard timeout and returns its JSON verdict. The stream must be reachable over HTTP from this
machine; the server may be in this process (a thread or another event loop) but must not need this thread to run,
since `play` blocks (from an async test: `await asyncio.to_thread(play, ...)`).

The player page is answered by the browser driver itself under `<origin of url>/__players__/` (no server of ours
serves it), so by default the page and the media share one origin and the media server needs no CORS headers.
`page_origin="cross"` moves the page to another origin (127.0.0.1 <-> localhost, same port) to prove that the
server's CORS headers let a page on a different site play the stream.

Result keys (see player.js and run_player.mjs): loaded, played_to_end, seeked_ok, errors, warnings, video_width,
video_height, audio_tracks, audio_languages, duration, seek_point, frames_decoded, frames_dropped, video_decoded_bytes,
audio_decoded_bytes, timeline, timed_out, http_errors, aborted_requests, console_errors, browser_version,
player_version, wall_ms,
harness_error (only when the browser could not be driven), plus `ok` added here: loaded, played to the end, seek
worked, no errors, no timeout.

Live streams: `play(url, player, live_s=N)` plays at rate 1 from where the player joins and is done once
currentTime advanced N s (no seek); `until_end=True` then goes on until the stream ends while playing (a
publishing point that stops: HLS ENDLIST, static MPD). Extra keys: live_ok, live_start_time, live_advanced_s,
is_live (the player's own verdict), stalls; `ok` is then loaded, live_ok, played to the end when until_end, no
errors, no timeout.

Setup: Debian's `chromium` package and `npm ci --prefix tests/players` (scripts/test does both through
scripts/_bootstrap.sh). A missing piece raises PlayerHarnessError with the command that fixes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

from aiohttp import web

HERE = Path(__file__).resolve().parent
RUNNER = HERE / "run_player.mjs"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
PLAYERS = ("hlsjs", "dashjs", "shaka")
#: Seconds the driver may need beyond the page's own deadline: browser start and shutdown.
_SLACK_S = 30.0


class PlayerHarnessError(RuntimeError):
    """The harness itself cannot run (no node, no chromium, no node_modules) or printed no verdict."""


def check_setup() -> None:
    """Raise PlayerHarnessError naming what is missing for `play` to run."""
    if shutil.which("node") is None:
        raise PlayerHarnessError("node not found on PATH (Debian: apt-get install nodejs npm)")
    if not os.access(CHROMIUM, os.X_OK):
        raise PlayerHarnessError(f"{CHROMIUM} not found (Debian: apt-get install chromium; or set $CHROMIUM)")
    for package in ("playwright-core", "hls.js", "dashjs", "shaka-player"):
        if not (HERE / "node_modules" / package / "package.json").is_file():
            raise PlayerHarnessError(f"tests/players/node_modules/{package} missing: run `npm ci --prefix tests/players`")


def play(url: str, player: str, timeout_s: float = 60.0, *, rate: float = 4.0, page_origin: str = "same",
         live_s: float | None = None, until_end: bool = False) -> dict:
    """Play `url` (an HLS or DASH manifest) with `player` and return the verdict dict (see the module docstring).

    Args:
        url: absolute http(s) URL of the manifest.
        player: "hlsjs", "dashjs" or "shaka".
        timeout_s: bound on the page scenario (load, play to the end at `rate`, seek, play 1 s); when it passes
            the result has timed_out=True and whatever was reached. The subprocess is killed (with its browser)
            `timeout_s + 30` s after the start at the latest.
        rate: playbackRate; a 12 s stream at 4x takes about 3 s of wall time to play.
        page_origin: "same" (page on the URL's own origin; no CORS needed) or "cross" (needs CORS on the server).
        live_s: a live stream: seconds of playback (at rate 1, `rate` ignored) from where the player joins.
        until_end: with live_s: also play on until the stream ends (it must end within timeout_s).
    Raises:
        PlayerHarnessError: the harness could not run or printed no JSON (never for a stream that fails to play).
    """
    if player not in PLAYERS:
        raise ValueError(f"player must be one of {PLAYERS}, not {player!r}")
    if page_origin not in ("same", "cross"):
        raise ValueError(f"page_origin must be 'same' or 'cross', not {page_origin!r}")
    if until_end and live_s is None:
        raise ValueError("until_end needs live_s")
    check_setup()
    argv = ["node", os.fspath(RUNNER), "--player", player, "--src", url, "--timeout-s", str(timeout_s),
            "--rate", str(rate), "--page-origin", page_origin]
    if live_s is not None:
        argv += ["--live-s", str(live_s), "--until-end", "1" if until_end else "0"]
    env = {**os.environ, "CHROMIUM": CHROMIUM}
    # A session of its own, so that a timeout kills node and every Chromium process it started.
    proc = subprocess.Popen(argv, cwd=HERE, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace", start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s + _SLACK_S)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        stdout, stderr = proc.communicate()
        raise PlayerHarnessError(f"run_player.mjs still running after {timeout_s + _SLACK_S} s; killed. "
                                 f"stderr: {stderr[-2000:]}") from None
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise PlayerHarnessError(f"run_player.mjs exit {proc.returncode} printed no JSON. "
                                 f"stdout: {stdout[-1000:]} stderr: {stderr[-2000:]}")
    result = json.loads(lines[-1])
    if live_s is None:
        passed = result.get("played_to_end") and result.get("seeked_ok")
    else:
        passed = result.get("live_ok") and (result.get("played_to_end") or not until_end)
    result["ok"] = bool(result.get("loaded") and passed and not result.get("errors") and not result.get("timed_out")
                        and not result.get("harness_error"))
    if stderr.strip():
        result["stderr"] = stderr[-2000:]
    return result


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL node's session (node and its Chromium); only while node is unreaped, so the id is still ours."""
    if proc.returncode is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@contextlib.contextmanager
def serve_in_thread(app: web.Application, host: str = "127.0.0.1") -> Iterator[str]:
    """Run aiohttp `app` on `host`:<free port> in a thread with its own event loop; yield "http://host:port".

    For calling the blocking `play` against a server in this process, e.g. our own origin:
        with serve_in_thread(make_app(make_config(rules))) as base:
            play(base + "/files/movie.mp4/master.m3u8", "hlsjs")
    The app's startup and cleanup hooks run in that loop; leaving the block stops the server (bounded, 10 s).
    """
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    started = threading.Event()
    failure: list[BaseException] = []
    base = ""

    def run() -> None:
        nonlocal base
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, host, 0)
            loop.run_until_complete(site.start())
            base = f"http://{host}:{runner.addresses[0][1]}"
        except BaseException as exc:  # reported to the caller below
            failure.append(exc)
            started.set()
            loop.close()
            return
        started.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    thread = threading.Thread(target=run, name="players-http", daemon=True)
    thread.start()
    if not started.wait(30):
        raise PlayerHarnessError("the test server did not start within 30 s")
    if failure:
        raise PlayerHarnessError(f"the test server did not start: {failure[0]!r}") from failure[0]
    try:
        yield base
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
