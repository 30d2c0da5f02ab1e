"""mpv and VLC play a relay viewer URL headless for 10 s without an error line (issue 12 "Must show"): the relay
CLI loops a short ffmpeg-made H.264+Opus feed in real time; both players run at once; the feed's status shows
they were sent about 10 s of it."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import urllib.request

import pytest

from relay_media import H264_OPUS, make_feed

from conftest import REPO_ROOT

PLAY_S = 10


@pytest.fixture(scope="module")
def feed_file(tmp_path_factory):
    return make_feed(tmp_path_factory.mktemp("players") / "f.mkv", H264_OPUS, 4)


def _vlc_command(url: str) -> list[str]:
    command = ["cvlc", "-q", "--intf", "dummy", "--vout=dummy", "--aout=dummy", f"--run-time={PLAY_S}",
               "--play-and-exit", url]
    if os.geteuid() == 0:  # VLC refuses to run as root
        command = ["runuser", "-u", "nobody", "--", *command]
    return command


async def test_mpv_and_vlc_play_the_relay(feed_file):
    for tool in ("mpv", "cvlc"):
        assert shutil.which(tool), f"{tool} is missing: scripts/_bootstrap.sh installs it"
    relay = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "origin_proxy", "relay", str(feed_file), "--loop", "--port", "0", "--name", "play",
        cwd=REPO_ROOT, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE)
    try:
        url = (await asyncio.wait_for(relay.stdout.readline(), 20)).decode().split()[-1]
        await asyncio.sleep(1.5)
        mpv = await asyncio.create_subprocess_exec(
            "mpv", "--no-config", "--vo=null", "--ao=null", f"--length={PLAY_S}", "--msg-level=all=warn", url,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        vlc = await asyncio.create_subprocess_exec(
            *_vlc_command(url), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)
        (mpv_out, _), (vlc_out, _) = await asyncio.wait_for(asyncio.gather(mpv.communicate(), vlc.communicate()),
                                                            PLAY_S + 30)
        status = json.loads(await asyncio.to_thread(lambda: urllib.request.urlopen(url + "/status").read()))
    finally:
        relay.terminate()
        await relay.wait()
    assert mpv.returncode == 0 and mpv_out.decode().strip() == "", mpv_out.decode()[-2000:]
    assert vlc.returncode == 0 and vlc_out.decode().strip() == "", vlc_out.decode()[-2000:]
    assert status["viewers_total"] == 2
    # two players, each sent at least ~8 s of a ~1.5 Mbit/s feed
    assert status["bytes_out"] > 2 * 8 * 1_500_000 / 8 * 0.8
