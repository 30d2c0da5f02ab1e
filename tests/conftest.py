"""Shared test helpers: media paths, configs, a local static upstream with a byte counter, an edge client.

Fixtures:
    upstream        StaticUpstream serving ../shared/media under /media/ (Range, If-Range via aiohttp FileResponse)
    start_upstream  factory: await start_upstream(root_dir) -> StaticUpstream over another directory
    edge            Edge(client, upstream): rules /files/ -> file: ../shared/media/, /up/ -> upstream /media/
    edge_client     factory: await edge_client(rules, **service_settings) -> aiohttp TestClient
    serve_process   factory: serve_process(rules, *serve_args, config=..., env=...) -> a running ServeProcess
Plain helpers: media(name), make_config(rules, base_dir=None, **service_settings), raw_get(port, target).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from origin_proxy.config import AppConfig, ServiceConfig, parse_remap
from origin_proxy.server.app import make_app

# Session-scoped generated movies (movie_10min_moov_end, movie_60s, movie_large) for every module, and the
# serve_process factory (a real `origin_proxy serve` subprocess, tests/serve_process.py).
pytest_plugins = ["media_fixtures", "serve_process", "live_captures"]

REPO_ROOT = Path(__file__).resolve().parents[1]
MEDIA_ROOT = REPO_ROOT.parent / "shared" / "media"

# Short upstream timeouts so that the timeout tests finish quickly.
TEST_SERVICE = {"upstream": {"connect_timeout_s": 1.0, "read_timeout_s": 0.5, "connections_per_host": 8},
                "log_level": "DEBUG"}


def media(name: str) -> Path:
    """Path of a shared test file, e.g. media("mp4/sample.mp4") -> ../shared/media/mp4/sample.mp4."""
    path = MEDIA_ROOT / name
    if not path.is_file():
        raise FileNotFoundError(f"shared test media missing: {path}")
    return path


def make_config(rules: list[dict], base_dir: str | Path | None = None, **service: object) -> AppConfig:
    """An AppConfig from remap rules (dicts as in the YAML) and service settings over the short-timeout defaults."""
    settings = {**TEST_SERVICE, **service}
    return AppConfig(service=ServiceConfig.model_validate(settings),
                     remap=parse_remap({"remap": rules}, base_dir or REPO_ROOT))


async def raw_get(port: int, target: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """Send `GET target` byte for byte (no client-side URL normalisation); return (status, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"GET {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


class StaticUpstream:
    """An aiohttp static file server on 127.0.0.1 (FileResponse: Range, If-Range, strong ETag).

    Routes: /media/<path> files of `root`; /status/<code>/<any> answers that status; /stall/<any> sends nothing
    until released. Records every request; `bytes_sent` sums the Content-Length of the 200/206 answers.
    `before_request`, when set, is awaited with the request before it is handled (e.g. to replace a file).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self.bytes_sent = 0
        self.before_request: Callable[[web.Request], Awaitable[None]] | None = None
        self.release = asyncio.Event()
        self.url = ""

    def app(self) -> web.Application:
        @web.middleware
        async def record(request: web.Request, handler):
            self.requests.append((request.method, request.path, request.headers.get("Range")))
            if self.before_request is not None:
                await self.before_request(request)
            return await handler(request)

        async def count(request: web.Request, response: web.StreamResponse) -> None:
            # on_response_prepare runs when status and Content-Length are final (ranges applied).
            if request.method == "GET" and response.status in (200, 206) and response.content_length:
                self.bytes_sent += response.content_length

        async def status(request: web.Request) -> web.Response:
            return web.Response(status=int(request.match_info["code"]), text="upstream says no\n")

        async def stall(request: web.Request) -> web.Response:
            try:
                await asyncio.wait_for(self.release.wait(), timeout=10)
            except TimeoutError:
                pass
            return web.Response(text="too late\n")

        app = web.Application(middlewares=[record])
        app.on_response_prepare.append(count)
        app.router.add_static("/media/", self.root)
        app.router.add_get("/status/{code:\\d+}/{tail:.*}", status)
        app.router.add_get("/stall/{tail:.*}", stall)
        return app

    def reset_counters(self) -> None:
        self.requests.clear()
        self.bytes_sent = 0


@pytest.fixture
async def start_upstream(aiohttp_server):
    started: list[StaticUpstream] = []

    async def start(root: Path) -> StaticUpstream:
        upstream = StaticUpstream(root)
        server = await aiohttp_server(upstream.app())
        upstream.url = f"http://127.0.0.1:{server.port}"
        started.append(upstream)
        return upstream

    yield start
    for upstream in started:
        upstream.release.set()


@pytest.fixture
async def upstream(start_upstream) -> StaticUpstream:
    return await start_upstream(MEDIA_ROOT)


@pytest.fixture
async def edge_client(aiohttp_client):
    async def build(rules: list[dict], base_dir: str | Path | None = None, **service: object) -> TestClient:
        return await aiohttp_client(make_app(make_config(rules, base_dir, **service)))

    return build


@dataclass
class Edge:
    client: TestClient
    upstream: StaticUpstream


@pytest.fixture
async def edge(edge_client, upstream) -> Edge:
    """/files/ -> file: ../shared/media/ and /up/ -> the static upstream's /media/ (same files)."""
    client = await edge_client([
        {"from": "/files/", "to": "file://" + os.fspath(MEDIA_ROOT) + "/"},
        {"from": "/up/", "to": upstream.url + "/media/"},
    ])
    return Edge(client, upstream)
