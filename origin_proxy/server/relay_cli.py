"""`origin-proxy relay INPUT`: one feed served mkvserver-style, without a config file (docs/relay.md).

INPUT is a Matroska/WebM file (sent into the relay in real time by its own timestamps, again and again with
`--loop`, timestamps continuing), `-` for standard input (read as it comes), or an http(s) URL (pulled,
reconnecting with backoff when it drops). Viewers: `http://HOST:PORT/relay/NAME.mkv`. Without --loop, a file
or stdin input that ends ends the viewers' bodies, and the process exits once they are done (at most 30 s later).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from pathlib import Path

from aiohttp import web

from ..config import AppConfig, ServiceConfig, parse_remap
from ..relay.hub import Feed
from ..relay.pull import pull_feed
from .app import make_app
from .relay import RELAY_HUB, policy_of

log = logging.getLogger("origin_proxy.relay")

PREFIX = "/relay/"
FILE_CHUNK = 16 << 10
DRAIN_S = 30.0


def relay_config(host: str, port: int, backlog_gops: int, low_latency: bool) -> AppConfig:
    service = ServiceConfig.model_validate({"listen": {"host": host, "port": port}})
    remap = parse_remap({"remap": [{"from": PREFIX, "relay": {"backlog_gops": backlog_gops,
                                                               "low_latency": low_latency}}]}, Path.cwd())
    return AppConfig(service=service, remap=remap)


async def feed_file(feed: Feed, path: Path, loop_input: bool) -> None:
    """Publish `path` paced by its timestamps: after each chunk, wait until wall time catches up with the feed."""
    publisher = feed.open_publisher(f"file {path}")
    wall0 = edge0 = None
    try:
        while True:
            with path.open("rb") as handle:
                while chunk := handle.read(FILE_CHUNK):
                    publisher.receive(chunk)
                    if wall0 is None and feed.gops:
                        wall0, edge0 = time.monotonic(), feed.edge_s
                    if wall0 is not None:
                        ahead = (feed.edge_s - edge0) - (time.monotonic() - wall0)
                        if ahead > 0:
                            await asyncio.sleep(ahead)
            if not loop_input:
                break
        publisher.receive(b"")
    finally:
        publisher.close()


async def feed_stdin(feed: Feed) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    publisher = feed.open_publisher("stdin")
    try:
        while chunk := await reader.read(1 << 16):
            publisher.receive(chunk)
        publisher.receive(b"")
    finally:
        publisher.close()


async def run_relay(source: str, name: str, host: str, port: int, loop_input: bool, backlog_gops: int,
                    low_latency: bool) -> int:
    """Serve one feed until the input ends (file/stdin) or SIGINT/SIGTERM. Returns the exit status."""
    config = relay_config(host, port, backlog_gops, low_latency)
    app = make_app(config)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # the real port when --port 0
    feed = app[RELAY_HUB].feed(PREFIX, name, policy_of(config.remap.remap[0].relay), create=True)
    if source.startswith(("http://", "https://")):
        task = asyncio.create_task(pull_feed(feed, source))
    elif source == "-":
        task = asyncio.create_task(feed_stdin(feed))
    else:
        task = asyncio.create_task(feed_file(feed, Path(source), loop_input))
    print(f"origin-proxy relay: http://{host}:{bound}{PREFIX}{name}.mkv", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    status = 0
    if task.done():
        if task.exception() is not None:
            log.error("relay input %s failed: %s", source, task.exception())
            status = 1
        deadline = time.monotonic() + DRAIN_S
        while feed.viewers and time.monotonic() < deadline and not stop.is_set():
            await asyncio.sleep(0.1)
    task.cancel()
    stopper.cancel()
    await runner.cleanup()
    return status
