"""Prometheus metrics of the edge and its upstream reads (DESIGN.md §8), on prometheus-client.

The counters live here, away from aiohttp, so that source/ can count its upstream requests and server/ its
HTTP requests. `render()` produces the `/metrics` text.

With several worker processes (`--workers N`), the master sets `$PROMETHEUS_MULTIPROC_DIR` before any worker
starts, so prometheus-client keeps every counter, histogram and gauge in per-process files there, and
`render()` sums them across workers (gauges: live processes only). The L1 cache counters come from the
serving process's MetadataCache through a collector that `render()` is given, so they are per worker: with
N workers, a scrape reports the worker that answered it, labelled with its `pid`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.registry import REGISTRY, Collector

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

# `route` labels: the fixed set of server/routes.py, so label cardinality stays bounded whatever paths clients ask for.

HTTP_REQUESTS = Counter("origin_proxy_http_requests", "HTTP requests answered, by route kind and status.",
                        ["route", "status"])
HTTP_DURATION = Histogram("origin_proxy_http_request_duration_seconds",
                          "Time from request to the last body byte handed to the socket, by route kind.",
                          ["route"],
                          buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
HTTP_IN_FLIGHT = Gauge("origin_proxy_http_requests_in_flight", "Requests being handled right now.",
                       multiprocess_mode="livesum")

UPSTREAM_REQUESTS = Counter("origin_proxy_upstream_requests", "HTTP requests sent to upstreams, by status.",
                            ["status"])
UPSTREAM_BYTES = Counter("origin_proxy_upstream_body_bytes", "Body bytes read from upstreams.")
UPSTREAM_ERRORS = Counter("origin_proxy_upstream_errors", "Failed upstream reads, by kind.", ["kind"])


class _Union:
    """What one scrape collects: a registry's metrics followed by `extra` collectors'."""

    def __init__(self, registry: CollectorRegistry, extra: Iterable[Collector]) -> None:
        self._registry = registry
        self._extra = tuple(extra)

    def collect(self):
        yield from self._registry.collect()
        for collector in self._extra:
            yield from collector.collect()


def render(extra: Iterable[Collector] = ()) -> tuple[bytes, str]:
    """The exposition text (body, Content-Type) of every metric above plus the `extra` collectors."""
    registry = REGISTRY  # this process's metrics plus prometheus-client's process/platform/gc collectors
    if MULTIPROCESS:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # every worker's files, summed
    return generate_latest(_Union(registry, extra)), CONTENT_TYPE_LATEST
