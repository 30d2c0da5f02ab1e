"""make_app(config) -> aiohttp Application: routes, the error middleware, and the shared upstream session."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from ..config import AppConfig
from ..errors import MethodNotAllowed
from ..store.source.upstream import client_timeout
from .cors import install_cors
from .errors import error_middleware
from .observe import handle_metrics, metrics_middleware
from .state import EDGE_STATE, EdgeState, l2_cache_ctx
from .live import handle_live
from .relay import RELAY_HUB, handle_relay, relay_ctx
from .routes import set_route
from ..relay.hub import RelayHub
from .media import handle_media


async def healthz(request: web.Request) -> web.Response:
    # The worker's pid tells `--workers N` deployments (and their tests) which process answered.
    return web.Response(text="ok\n", headers={"X-Origin-Proxy-Pid": str(os.getpid())})


UPSTREAM_READ_BUFSIZE = 16 * 1024


async def _upstream_session(app: web.Application) -> AsyncIterator[None]:
    """One ClientSession for every upstream read while the app runs (cleanup_ctx)."""
    state = app[EDGE_STATE]
    settings = state.config.service.upstream
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=settings.connections_per_host)
    timeout = client_timeout(settings.connect_timeout_s, settings.read_timeout_s)
    # A response's read-ahead is twice the larger of read_bufsize and the chunk one read asks for (server/respond.py
    # CHUNK_BYTES, 32 KiB): a stalled reader's upstream read stops after ~64 KiB (bench/slow_readers.py).
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False,
                                     read_bufsize=UPSTREAM_READ_BUFSIZE) as session:
        state.session = session
        yield
        state.session = None


def make_app(config: AppConfig) -> web.Application:
    """The edge application for one configuration.

    Routes: GET /healthz -> "ok"; GET /metrics -> Prometheus text (server/observe.py); GET and HEAD of any other path -> the mapped media (server/media.py).
    `app[EDGE_STATE]` holds the remap table, the metadata cache (`.cache.hits` ...) and the upstream session.
    """
    app = web.Application(middlewares=[metrics_middleware, error_middleware])
    app[EDGE_STATE] = EdgeState.from_config(config)
    install_cors(app, config.service.cors)  # preflights and Access-Control-* headers (server/cors.py)
    app.cleanup_ctx.append(_upstream_session)
    app.cleanup_ctx.append(l2_cache_ctx)
    app[RELAY_HUB] = RelayHub()  # live relay feeds (server/relay.py)
    app.cleanup_ctx.append(relay_ctx)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", handle_metrics)
    app.router.add_route("*", "/{path:.*}", dispatch)
    return app


async def dispatch(request: web.Request) -> web.StreamResponse:
    """Every other path, by the kind of its remap rule: live points and relay feeds take any method (their
    handlers refuse what they do not take); `to` upstreams are read-only media (GET/HEAD, else 405)."""
    state = request.app[EDGE_STATE]
    ref = state.remap.resolve(request.rel_url.raw_path, request.host)
    if ref.rule.live is not None:
        set_route(request, "live_other")  # the handler names the finer route it recognises
        return await handle_live(request, ref)
    if ref.rule.relay is not None:
        set_route(request, "relay_other")
        return await handle_relay(request, ref)
    if request.method not in ("GET", "HEAD"):
        raise MethodNotAllowed(f"{request.method} is not allowed on media", allowed=("GET", "HEAD"))
    return await handle_media(request, ref)
