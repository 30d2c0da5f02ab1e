"""Shared L2 metadata cache over a real redis-server: N edge apps ("nodes") sharing one Redis (DESIGN.md §7).

Upstream moov reads are counted on the StaticUpstream: a GET whose Range covers the moov offset of the clip.
Redis is Debian's `redis-server` on a free port without persistence; a test that kills it starts its own.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from origin_proxy.server.state import EDGE_STATE
from conftest import media

CLIP = "mp4/silent-black-10s.mp4"  # moov at the end: a moov read is a Range GET past the mdat
QUERY = "?start=2&end=6"


def _moov_offset(path: Path) -> int:
    data = path.read_bytes()
    offset = 0
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset : offset + 4], "big")
        if data[offset + 4 : offset + 8] == b"moov":
            return offset
        offset += size
    raise AssertionError(f"no moov in {path}")


class RedisServer:
    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_session():
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is required (apt-get install redis-server)")
    server = RedisServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_server(redis_session):
    redis_session.client.flushall()
    return redis_session


@pytest.fixture
async def nodes(edge_client, start_upstream, tmp_path):
    """factory: await nodes(n, redis_url, root=dir, upstream=u) -> (upstream, [TestClient] * n), all on one rule.

    Without `upstream` a new StaticUpstream over `root` (default: a directory holding clip.mp4) is started."""
    async def build(count: int, redis_url: str, root: Path | None = None, upstream=None):
        if upstream is None:
            if root is None:
                root = tmp_path / "media"
                root.mkdir(exist_ok=True)
                (root / "clip.mp4").write_bytes(media(CLIP).read_bytes())
            upstream = await start_upstream(root)
        clients = [await edge_client([{"from": "/v/", "to": upstream.url + "/media/"}],
                                     redis={"url": redis_url, "timeout_s": 0.5})
                   for _ in range(count)]
        return upstream, clients

    return build


def _moov_reads(upstream, moov_offset: int) -> int:
    count = 0
    for method, _, range_header in upstream.requests:
        if method != "GET" or not range_header:
            continue
        first, _, last = range_header.removeprefix("bytes=").partition("-")
        if int(first) <= moov_offset <= (int(last) if last else 1 << 62):
            count += 1
    return count


async def _get(client, path: str) -> bytes:
    resp = await client.get(path)
    assert resp.status == 200, await resp.text()
    return await resp.read()


async def test_second_node_reads_no_moov_from_the_upstream(nodes, redis_server):
    upstream, (node1, node2) = await nodes(2, redis_server.url)
    moov_offset = _moov_offset(media(CLIP))
    body1 = await _get(node1, "/v/clip.mp4" + QUERY)
    assert _moov_reads(upstream, moov_offset) == 1
    upstream.reset_counters()
    body2 = await _get(node2, "/v/clip.mp4" + QUERY)
    assert body2 == body1
    assert _moov_reads(upstream, moov_offset) == 0
    l2 = node2.app[EDGE_STATE].l2
    assert l2.hits == 1 and l2.fills == 0 and l2.degraded == 0
    assert node1.app[EDGE_STATE].l2.fills == 1
    keys = [key.decode() for key in redis_server.client.keys("op:moov:v1:*")]
    assert len(keys) == 1 and not keys[0].endswith(":lock")
    # /metrics reports both levels (prometheus_client's own parser reads it back).
    families = {f.name: f for f in text_string_to_metric_families((await (await node2.get("/metrics")).text()))}
    assert families["origin_proxy_l2_cache_hits"].samples[0].value == 1
    assert families["origin_proxy_l2_cache_available"].samples[0].value == 1
    assert families["origin_proxy_l1_cache_loads"].samples[0].value == 1


async def test_five_cold_nodes_read_the_moov_once(nodes, redis_server):
    upstream, clients = await nodes(5, redis_server.url)
    moov_offset = _moov_offset(media(CLIP))
    bodies = await asyncio.gather(*(_get(client, "/v/clip.mp4" + QUERY) for client in clients))
    assert len(set(bodies)) == 1
    assert _moov_reads(upstream, moov_offset) == 1
    caches = [client.app[EDGE_STATE].l2 for client in clients]
    assert sum(cache.fills for cache in caches) == 1
    assert sum(cache.fallbacks for cache in caches) == 0
    assert sum(cache.hits for cache in caches) == 4


async def test_redis_killed_mid_test_degrades_to_l1(nodes, tmp_path, caplog):
    server = RedisServer()
    try:
        root = tmp_path / "media"
        root.mkdir()
        for name in ("a.mp4", "b.mp4", "c.mp4"):
            (root / name).write_bytes(media(CLIP).read_bytes())
        upstream, (node1, node2) = await nodes(2, server.url, root)
        expected = await _get(node1, "/v/a.mp4" + QUERY)
        assert node1.app[EDGE_STATE].l2.fills == 1
        server.stop()
        caplog.set_level(logging.INFO, logger="origin_proxy.store.redis_cache")
        for name in ("a.mp4", "b.mp4", "c.mp4", "a.mp4", "b.mp4"):
            assert await _get(node2, f"/v/{name}{QUERY}") == expected
            assert await _get(node1, f"/v/{name}{QUERY}") == expected
        for node in (node1, node2):
            l2 = node.app[EDGE_STATE].l2
            assert l2.degraded == 1 and not l2.available and l2.errors >= 1
        lines = [r for r in caplog.records if r.name == "origin_proxy.store.redis_cache" and "unavailable" in r.message]
        assert len(lines) == 2  # one per node, not one per request
    finally:
        server.stop()


async def test_garbage_value_is_a_miss(nodes, redis_server):
    upstream, (node1,) = await nodes(1, redis_server.url)
    moov_offset = _moov_offset(media(CLIP))
    expected = await _get(node1, "/v/clip.mp4" + QUERY)
    (key,) = redis_server.client.keys("op:moov:v1:*")
    stored = redis_server.client.get(key)
    for garbage in (b"not a moov", stored[:-1], stored[:30] + b"\xff" * (len(stored) - 30), b""):
        redis_server.client.set(key, garbage)
        upstream.reset_counters()
        _, (fresh,) = await nodes(1, redis_server.url, upstream=upstream)  # cold L1, same upstream URL
        assert await _get(fresh, "/v/clip.mp4" + QUERY) == expected
        l2 = fresh.app[EDGE_STATE].l2
        assert l2.bad_values == 1 and l2.fills == 1 and l2.degraded == 0
        assert _moov_reads(upstream, moov_offset) == 1  # read again, and the key now holds a good value
        assert redis_server.client.get(key) == stored


async def test_changed_upstream_file_gets_a_new_key(nodes, redis_server, tmp_path):
    root = tmp_path / "media"
    root.mkdir()
    target = root / "clip.mp4"
    target.write_bytes(media(CLIP).read_bytes())
    upstream, (node1, node2) = await nodes(2, redis_server.url, root)
    first = await _get(node1, "/v/clip.mp4?start=1")
    other = media("mp4/bbb_prog_10s.mp4").read_bytes()
    target.write_bytes(other)
    second = await _get(node2, "/v/clip.mp4?start=1")
    assert second != first
    assert len(redis_server.client.keys("op:moov:v1:*")) == 2
    assert node2.app[EDGE_STATE].l2.fills == 1 and node2.app[EDGE_STATE].l2.hits == 0
    # The new metadata is the new file's: node1 serves the same bytes as node2 now (from L2, not its old L1).
    assert await _get(node1, "/v/clip.mp4?start=1") == second
    assert node1.app[EDGE_STATE].l2.hits == 1
