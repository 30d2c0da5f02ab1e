"""Live relay feeds (DESIGN.md §6, issue 12, docs/relay.md): publish POST and viewer GETs under a `relay:` rule.

    POST  PREFIX/NAME.mkv|.webm|.mp4   publish (.mp4: fragmented MP4) (Authorization: Bearer <publish_token>), chunked body read as it comes
    GET   PREFIX/NAME.mkv|.webm   view: header, backlog GOPs, then live until the feed ends
    GET   PREFIX/NAME.mkv/status  the feed's status JSON
    GET   PREFIX                  every feed of the rule, JSON

Errors (server/errors.py): no or wrong token 403, not Matroska 415 (after 4 bytes), bad framing or a header /
cluster over its cap 400 (feed closed, viewers ended cleanly), second publisher 409, unknown feed 404, other
methods 405. The hub is `app[RELAY_HUB]`, made by `relay_ctx` (cleanup_ctx), which also pulls `feeds:` URLs.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import socket
from collections.abc import AsyncIterator

from aiohttp import web

from ..config import POINT_NAME, RelaySettings
from ..errors import Forbidden, MalformedIngest, MethodNotAllowed, NotFound, UpstreamTimeout
from ..relay.hub import Feed, RelayHub, RelayPolicy
from ..relay.pull import pull_feed
from ..remap import SourceRef
from .body import BodyWriter
from .state import EDGE_STATE

log = logging.getLogger("origin_proxy.relay")

RELAY_HUB = web.AppKey("relay_hub", RelayHub)
HEADER_WAIT_S = 10.0
VIEWER_SNDBUF = 64 << 10
PUBLISH_IDLE_S = 30.0  # a publisher silent this long is ended (400), so its name is free again
CONTENT_TYPES = {"matroska": "video/x-matroska", "webm": "video/webm", "mp4": "video/mp4"}


def policy_of(settings: RelaySettings) -> RelayPolicy:
    return RelayPolicy(settings.backlog_gops, settings.viewer_buffer_s, settings.viewer_max_lag_s,
                       settings.low_latency)


async def relay_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the process's RelayHub, and one pulling task per `feeds:` entry of every relay rule."""
    hub = app[RELAY_HUB]
    tasks = []
    for rule in app[EDGE_STATE].config.remap.remap:
        if rule.relay is None:
            continue
        for name, url in rule.relay.feeds.items():
            feed = hub.feed(rule.prefix, name, policy_of(rule.relay), create=True)
            tasks.append(asyncio.create_task(pull_feed(feed, url), name=f"relay-pull-{name}"))
    yield
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for feed in hub.feeds.values():
        if feed.publisher is not None:
            feed.publisher.close()


def _parse(rest: str) -> tuple[str, str, bool]:
    """rest -> (name, extension, is_status); NotFound for anything else."""
    path, _, tail = rest.partition("/")
    name, dot, ext = path.rpartition(".")
    if not dot or not POINT_NAME.fullmatch(name) or ext not in ("mkv", "webm", "mp4") or tail not in ("", "status"):
        raise NotFound(f"no relay feed at {rest!r}", path=rest)
    return name, ext, tail == "status"


async def handle_relay(request: web.Request, ref: SourceRef) -> web.StreamResponse:
    """Any method under a relay rule (see the module docstring)."""
    hub = request.app[RELAY_HUB]
    settings = ref.rule.relay
    prefix = ref.rule.prefix
    if ref.rest == "":
        request["route"] = "relay_status"
        _only(request, ("GET", "HEAD"))
        return _json(hub.listing(prefix))
    name, ext, is_status = _parse(ref.rest)
    if is_status:
        request["route"] = "relay_status"
        _only(request, ("GET", "HEAD"))
        feed = hub.feed(prefix, name, policy_of(settings), create=False)
        if feed is None:
            raise NotFound(f"no relay feed {name}", feed=name)
        return _json(feed.status())
    if request.method == "POST":
        request["route"] = "relay_publish"
        return await _publish(request, hub, prefix, name, ext, settings)
    request["route"] = "relay_view"
    _only(request, ("GET", "HEAD", "POST"))
    return await _view(request, hub, prefix, name, settings)


def _only(request: web.Request, allowed: tuple[str, ...]) -> None:
    if request.method not in allowed:
        raise MethodNotAllowed(f"{request.method} is not allowed here", allowed=allowed)


def _json(value: object) -> web.Response:
    return web.Response(text=json.dumps(value, indent=1) + "\n", content_type="application/json",
                        headers={"Cache-Control": "no-store"})


def _bound_in_flight(request: web.Request) -> None:
    """Bytes in flight per viewer: at most VIEWER_SNDBUF in the kernel (no autotuning to megabytes on
    loopback) and VIEWER_SNDBUF in the transport before write() waits for drain, so lag shows up in the queue."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, VIEWER_SNDBUF)
        except OSError:
            pass
    transport.set_write_buffer_limits(high=VIEWER_SNDBUF)


async def _publish(request: web.Request, hub: RelayHub, prefix: str, name: str, ext: str,
                   settings: RelaySettings) -> web.Response:
    token = settings.publish_token
    given = request.headers.get("Authorization", "")
    if token is None or not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        raise Forbidden("publishing needs Authorization: Bearer <publish_token>", feed=name)
    feed = hub.feed(prefix, name, policy_of(settings), create=True)
    publisher = feed.open_publisher(f"POST {request.remote}", "mp4" if ext == "mp4" else "matroska")
    log.info("relay feed %s: publisher %s connected", name, request.remote)
    try:
        while True:
            try:
                data = await asyncio.wait_for(request.content.readany(), PUBLISH_IDLE_S)
            except asyncio.TimeoutError:
                raise MalformedIngest(f"publisher sent nothing for {PUBLISH_IDLE_S:g} s", feed=name) from None
            publisher.receive(data)
            if not data:
                break
    finally:
        publisher.close()
    log.info("relay feed %s: publisher %s ended after %d bytes", name, request.remote, feed.bytes_in)
    return web.Response(text="feed ended\n")


async def _view(request: web.Request, hub: RelayHub, prefix: str, name: str,
                settings: RelaySettings) -> web.StreamResponse:
    feed: Feed | None = hub.feed(prefix, name, policy_of(settings), create=False)
    if feed is None or (feed.state == "ended" and feed.publisher is None):
        raise NotFound(f"no live relay feed {name}", feed=name)
    if feed.header is None:
        try:
            await asyncio.wait_for(feed.header_ready.wait(), HEADER_WAIT_S)
        except asyncio.TimeoutError:
            raise UpstreamTimeout(f"relay feed {name} has no stream header yet", feed=name) from None
    response = web.StreamResponse(headers={"Content-Type": CONTENT_TYPES.get(feed.doc_type, "video/x-matroska"),
                                           "Cache-Control": "no-store"})
    if request.method == "HEAD":
        return response
    _bound_in_flight(request)
    viewer = feed.add_viewer()
    try:
        await response.prepare(request)
        clean = await viewer.run(BodyWriter(request, response, VIEWER_SNDBUF).write_bytes)  # the one body writer
    except (ConnectionError, asyncio.CancelledError) as exc:
        feed.remove_viewer(viewer)
        if isinstance(exc, asyncio.CancelledError) and not viewer.disconnected:
            raise
        clean = False
    if not clean:
        log.info("relay feed %s: viewer %s disconnected (lag %.1f s)", name, request.remote, viewer.lag_s())
        if request.transport is not None:
            request.transport.abort()
        return response
    try:
        await response.write_eof()
    except ConnectionError:  # the viewer left just as the feed ended
        pass
    return response
