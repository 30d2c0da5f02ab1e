"""Feeds origin_proxy pulls itself (`relay.feeds`, the CLI's http(s) INPUT): GET the URL, stream its body into
the feed's publisher, and reconnect with exponential backoff when it drops (0.5 s doubling to 30 s, back to
0.5 s after a connection that lasted 10 s). aiohttp client only; one log line per drop."""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp

from ..errors import OriginError
from .hub import Feed

log = logging.getLogger("origin_proxy.relay")

BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 30.0
STABLE_S = 10.0
READ_CHUNK = 64 << 10


async def pull_feed(feed: Feed, url: str, session: aiohttp.ClientSession | None = None, *,
                    forever: bool = True) -> None:
    """Keep `feed` published from `url` until cancelled (or, `forever=False`, until the first clean end)."""
    own = session is None
    if own:
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, connect=5, sock_read=15),
                                        auto_decompress=False)
    backoff = BACKOFF_START_S
    try:
        while True:
            began = time.monotonic()
            publisher = None
            try:
                async with session.get(url) as response:
                    if response.status != 200:
                        raise aiohttp.ClientResponseError(response.request_info, (), status=response.status,
                                                          message=response.reason or "")
                    publisher = feed.open_publisher(f"pull {url}")
                    async for data in response.content.iter_chunked(READ_CHUNK):
                        publisher.receive(data)
                    publisher.receive(b"")
                log.info("relay feed %s: %s ended", feed.name, url)
                if not forever:
                    return
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError, OriginError) as exc:
                log.warning("relay feed %s: %s: %s: %s", feed.name, url, type(exc).__name__, exc)
            finally:
                if publisher is not None:
                    publisher.close()
            if time.monotonic() - began >= STABLE_S:
                backoff = BACKOFF_START_S
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)
    finally:
        if own:
            await session.close()
