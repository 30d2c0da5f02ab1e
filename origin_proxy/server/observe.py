"""What the edge tells operators: Prometheus `/metrics`, the request counting middleware, the JSON access log.

Every request is counted by route (the labels of server/routes.py: media_passthrough, media_clip, hls_master,
cmaf_segment, smooth_fragment, ..., live_*, relay_*, other) and status, and timed until its handler returns, which
for a streamed body is after the last byte went to the socket.
The L1 metadata cache and the head cache (store/heads.py: hits, misses, builds, entries, bytes) report through a
collector read at scrape time.
"""

from __future__ import annotations

import json
import logging
import os
import time

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from .. import metrics
from ..store.source.upstream import UpstreamObserver, set_upstream_observer
from .body import BODY_BYTES, count_body_bytes
from .routes import route_label
from .state import EDGE_STATE, EdgeState


class PrometheusUpstreamObserver(UpstreamObserver):
    """Upstream reads counted in origin_proxy_upstream_{requests,body_bytes,errors}_total."""

    def request(self, status: int) -> None:
        metrics.UPSTREAM_REQUESTS.labels(str(status)).inc()

    def body_bytes(self, count: int) -> None:
        metrics.UPSTREAM_BYTES.inc(count)

    def error(self, kind: str) -> None:
        metrics.UPSTREAM_ERRORS.labels(kind).inc()


set_upstream_observer(PrometheusUpstreamObserver())  # the edge counts what its upstream reads do


@web.middleware
async def metrics_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Outermost middleware: counts and times every answer, errors mapped further in included."""
    started = time.perf_counter()
    count_body_bytes(request)  # for the access log: body bytes sent (server/body.py)
    status = 500
    metrics.HTTP_IN_FLIGHT.inc()
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        metrics.HTTP_IN_FLIGHT.dec()
        kind = route_label(request)  # after the handler: it names the route it recognised
        children = _ROUTE_CHILDREN.get((kind, status))
        if children is None:
            children = _ROUTE_CHILDREN[(kind, status)] = (metrics.HTTP_REQUESTS.labels(kind, str(status)),
                                                          metrics.HTTP_DURATION.labels(kind))
        children[0].inc()
        children[1].observe(time.perf_counter() - started)


# (route, status) -> the request counter's and duration histogram's children: prometheus-client's labels() takes a
# lock and builds the label tuple on every call (~10 us a request on the warm seek path); route labels are a fixed
# set (server/routes.py) and statuses a few dozen, so this stays small.
_ROUTE_CHILDREN: dict[tuple[str, int], tuple] = {}


class CacheCollector:
    """The cache levels' counters as Prometheus metrics, read at scrape time: L1 (cache.py keeps plain
    ints) and, when service.redis.url is set, L2 (store/redis_cache.py's counters and availability)."""

    def __init__(self, state: EdgeState) -> None:
        self._state = state

    def collect(self):
        cache = self._state.cache
        labels, values = (["pid"], [str(os.getpid())]) if metrics.MULTIPROCESS else ([], [])
        for name, doc, value in (("hits", "lookups answered from the cache", cache.hits),
                                 ("misses", "lookups that waited for a load", cache.misses),
                                 ("loads", "metadata loads started (single-flight)", cache.loads)):
            family = CounterMetricFamily(f"origin_proxy_l1_cache_{name}", f"L1 metadata cache: {doc}.",
                                         labels=labels)
            family.add_metric(values, value)
            yield family
        family = GaugeMetricFamily("origin_proxy_l1_cache_bytes", "L1 metadata cache: bytes held.", labels=labels)
        family.add_metric(values, cache.current_bytes)
        yield family
        heads = self._state.heads
        for name, doc, value in (("hits", "lookups answered from the cache", heads.hits),
                                 ("misses", "lookups that waited for a build", heads.misses),
                                 ("builds", "head builds started (single-flight)", heads.builds),
                                 ("inline_builds", "builds run on the event loop by the inline budget",
                                  heads.inline_builds)):
            family = CounterMetricFamily(f"origin_proxy_head_cache_{name}", f"Head cache: {doc}.", labels=labels)
            family.add_metric(values, value)
            yield family
        for name, doc, value in (("entries", "heads held", len(heads)), ("bytes", "bytes held", heads.current_bytes)):
            family = GaugeMetricFamily(f"origin_proxy_head_cache_{name}", f"Head cache: {doc}.", labels=labels)
            family.add_metric(values, value)
            yield family
        known = self._state.known_files
        if known is not None:
            for name, doc, value in (("fast_opens", "local opens of a known inode on the loop", known.fast_opens),
                                     ("checked_opens", "local opens checked in full in a thread", known.checked_opens)):
                family = CounterMetricFamily(f"origin_proxy_local_{name}", f"Local files: {doc}.", labels=labels)
                family.add_metric(values, value)
                yield family
        l2 = self._state.l2
        if l2 is None:
            return
        for name, value in l2.counters.items():  # hits, misses, fills, waits, ..., errors, degraded
            family = CounterMetricFamily(f"origin_proxy_l2_cache_{name}", f"L2 (Redis) moov cache: {name}.",
                                         labels=labels)
            family.add_metric(values, value)
            yield family
        family = GaugeMetricFamily("origin_proxy_l2_cache_available", "L2 (Redis) in use (1) or degraded (0).",
                                   labels=labels)
        family.add_metric(values, 1 if l2.available else 0)
        yield family


async def handle_metrics(request: web.Request) -> web.Response:
    body, content_type = metrics.render([CacheCollector(request.app[EDGE_STATE])])
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type  # carries its own charset and format version
    return response


class JsonAccessLogger(AbstractAccessLogger):
    """One JSON object per request: method, path (with query), status, bytes, duration_ms, remote.

    `bytes` is the body bytes sent, headers not included (like nginx's $body_bytes_sent): whole bodies, ranges and
    multipart bodies as written, sendfile'd bytes included; for a response the client aborted, what was handed to
    the socket minus what our transport still held (bytes already in the kernel's send buffer count as sent).
    """

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        _emit(self.logger, json.dumps({
            "method": request.method,
            "path": request.path_qs,
            "status": response.status,
            "bytes": _body_bytes(request, response),
            "duration_ms": round(time * 1000, 3),
            "remote": request.remote,
        }, separators=(",", ":")))


def _emit(logger: logging.Logger, line: str) -> None:
    """`logger.info(line)` without the caller lookup (a stack walk per record; access log formats never show
    the caller's file and line)."""
    if logger.isEnabledFor(logging.INFO):
        logger.handle(logger.makeRecord(logger.name, logging.INFO, "(unknown file)", 0, line, None, None))


class PlainAccessLogger(AbstractAccessLogger):
    """The `plain` access log: the line aiohttp's default AccessLogger writes (its LOG_FORMAT,
    `%a %t "%r" %s %b "%{Referer}i" "%{User-Agent}i"`), made for a fraction of its cost: the request start time
    is formatted once per second, and the record goes to the logger's handlers without the caller lookup and the
    per-field `extra` attributes (our log format uses neither). ~50 -> ~15 us a request on the warm seek path.

    Fields: remote address ("-" when unknown); `[day/Mon/year:H:M:S +zone]` local time the request started;
    the request line; status; `response.body_length` (body bytes as aiohttp counts them); the Referer and
    User-Agent request headers ("-" when absent).
    """

    _second = -1
    _stamp = ""

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)

    def _start_stamp(self, elapsed_s: float) -> str:
        second = int(time.time() - elapsed_s)
        if second != self._second:
            self._stamp = time.strftime("[%d/%b/%Y:%H:%M:%S %z]", time.localtime(second))
            self._second = second
        return self._stamp

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        logger = self.logger
        if not logger.isEnabledFor(logging.INFO):
            return
        try:
            headers = request.headers
            version = request.version
            remote = request.remote
            _emit(logger, f'{remote if remote is not None else "-"} {self._start_stamp(time)} '
                          f'"{request.method} {request.path_qs} HTTP/{version.major}.{version.minor}" '
                          f'{response.status} {response.body_length} '
                          f'"{headers.get("Referer", "-")}" "{headers.get("User-Agent", "-")}"')
        except Exception:
            logger.exception("Error in logging")


def _body_bytes(request: web.BaseRequest, response: web.StreamResponse) -> int:
    counter = request.get(BODY_BYTES)
    return counter.sent if counter is not None else response.body_length


def configure_access_log(mode: str) -> dict:
    """AppRunner keyword arguments for `service.access_log` (off | plain | json).

    json lines go to stderr bare (no timestamp/level prefix), so each line is one parseable object.
    """
    if mode == "off":
        return {"access_log": None}
    if mode == "json":
        access = logging.getLogger("aiohttp.access")
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(handler)
        access.setLevel(logging.INFO)
        access.propagate = False
        return {"access_log_class": JsonAccessLogger}
    return {"access_log_class": PlainAccessLogger}
