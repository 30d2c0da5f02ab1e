"""`origin-proxy relay INPUT` as a real subprocess (issue 12 item 5): a file in real time to two viewers, `-` from
a pipe, and a pulled http feed that drops and comes back (reconnect with backoff)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import aiohttp
import pytest
from aiohttp import web

from relay_media import H264_OPUS, check_capture, make_feed

from conftest import REPO_ROOT


@pytest.fixture(scope="module")
def feed_file(tmp_path_factory):
    return make_feed(tmp_path_factory.mktemp("relay_cli") / "f.mkv", H264_OPUS, 4)


async def start_relay(*args: str, stdin=None):
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "origin_proxy", "relay", *args, "--port", "0", "--name", "f",
        cwd=REPO_ROOT, stdin=stdin if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE)
    line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
    assert line.startswith("origin-proxy relay: http://"), line
    return process, line.split()[-1]


async def fetch(url: str, out) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=60)) as response:
            assert response.status == 200
            out.write_bytes(await response.read())


async def test_file_in_real_time_to_two_viewers(feed_file, tmp_path):
    began = time.monotonic()
    process, url = await start_relay(str(feed_file), "--backlog-gops", "0")
    await asyncio.sleep(0.3)
    await asyncio.gather(fetch(url, tmp_path / "a.mkv"), fetch(url, tmp_path / "b.mkv"))
    assert time.monotonic() - began >= 3.0  # 4 s of media, paced, not dumped at once
    assert await asyncio.wait_for(process.wait(), 40) == 0  # exits once its input and viewers are done
    for name in ("a.mkv", "b.mkv"):
        pkts = check_capture(tmp_path / name)
        assert max(p["pts"] for p in pkts) > 3.5


async def test_stdin_from_a_pipe(feed_file, tmp_path):
    encoder = subprocess.Popen(["ffmpeg", "-v", "error", "-re", "-i", str(feed_file), "-c", "copy", "-f", "matroska",
                                "-live", "1", "-"], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        process, url = await start_relay("-", stdin=encoder.stdout)
        encoder.stdout.close()
        await asyncio.sleep(0.5)
        await fetch(url, tmp_path / "pipe.mkv")
        assert await asyncio.wait_for(process.wait(), 40) == 0
    finally:
        encoder.wait(timeout=30)
    pkts = check_capture(tmp_path / "pipe.mkv")
    assert max(p["pts"] for p in pkts) > 3.5


async def test_pulled_feed_drops_and_comes_back(feed_file, aiohttp_server, tmp_path):
    data = feed_file.read_bytes()
    connections = []

    async def camera(request: web.Request) -> web.StreamResponse:
        connections.append(time.monotonic())
        response = web.StreamResponse(headers={"Content-Type": "video/x-matroska"})
        await response.prepare(request)
        step = len(data) // 20
        for pos in range(0, len(data), step):  # ~2 s per connection, then the camera "drops"
            await response.write(data[pos:pos + step])
            await asyncio.sleep(0.1)
        return response

    app = web.Application()
    app.router.add_get("/stream.mkv", camera)
    upstream = await aiohttp_server(app)
    process, url = await start_relay(f"http://127.0.0.1:{upstream.port}/stream.mkv", "--backlog-gops", "1")
    try:
        await asyncio.sleep(0.8)
        await fetch(url, tmp_path / "first.mkv")  # ends cleanly when the camera drops
        deadline = time.monotonic() + 10
        while len(connections) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert len(connections) >= 2 and connections[1] - connections[0] < 5  # reconnected with backoff
        await asyncio.sleep(0.8)
        await fetch(url, tmp_path / "second.mkv")
        async with aiohttp.ClientSession() as session:
            async with session.get(url + "/status") as response:
                status = json.loads(await response.text())
        assert status["publishers"] >= 2
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), 20) == 0
    check_capture(tmp_path / "first.mkv")
    check_capture(tmp_path / "second.mkv")
