"""cache.py: single-flight loads, byte bound, TTL, failures not cached."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np
import pytest

from origin_proxy.store.cache import MetadataCache


@dataclass(frozen=True)
class Movieish:
    """Stands in for a MovieFile: plain data with an `nbytes`."""

    column: np.ndarray

    @property
    def nbytes(self) -> int:
        return self.column.nbytes


def value(n_bytes: int) -> Movieish:
    return Movieish(np.zeros(n_bytes, dtype=np.uint8))


async def test_200_concurrent_misses_cost_one_load():
    cache = MetadataCache(max_bytes=10_000, ttl_s=60)
    calls = 0
    gate = asyncio.Event()

    async def slow_load():
        nonlocal calls
        calls += 1
        await gate.wait()
        return value(100)

    waiters = [asyncio.create_task(cache.get_or_load(("file:///a.mp4", "1-100"), slow_load)) for _ in range(200)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*waiters)
    assert calls == 1 and cache.loads == 1
    assert all(result is results[0] for result in results)
    assert (cache.misses, cache.hits) == (200, 0)
    assert await cache.get_or_load(("file:///a.mp4", "1-100"), slow_load) is results[0]
    assert cache.hits == 1 and calls == 1


async def test_validator_is_part_of_the_key():
    cache = MetadataCache(max_bytes=10_000, ttl_s=60)
    first = await cache.get_or_load(("u", "etag1"), lambda: _ready(value(10)))
    second = await cache.get_or_load(("u", "etag2"), lambda: _ready(value(10)))
    assert first is not second and cache.loads == 2


async def _ready(result):
    return result


async def test_failed_load_is_not_cached_and_reaches_every_waiter():
    cache = MetadataCache(max_bytes=10_000, ttl_s=60)
    gate = asyncio.Event()

    async def failing():
        await gate.wait()
        raise ValueError("broken moov")

    waiters = [asyncio.create_task(cache.get_or_load("k", failing)) for _ in range(5)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(r, ValueError) for r in results)
    assert "k" not in cache and cache.loads == 1
    assert (await cache.get_or_load("k", lambda: _ready(value(1)))).nbytes == 1
    assert cache.loads == 2


async def test_byte_bound_evicts_least_recently_used():
    cache = MetadataCache(max_bytes=100, ttl_s=60)
    for key in ("a", "b"):
        await cache.get_or_load(key, lambda: _ready(value(40)))
    await cache.get_or_load("a", lambda: _ready(value(40)))  # touch a: b is now the oldest
    await cache.get_or_load("c", lambda: _ready(value(40)))
    assert "a" in cache and "c" in cache and "b" not in cache
    assert cache.current_bytes == 80 <= 100


async def test_value_larger_than_the_budget_is_served_uncached():
    cache = MetadataCache(max_bytes=100, ttl_s=60)
    big = await cache.get_or_load("big", lambda: _ready(value(1000)))
    assert big.nbytes == 1000
    assert "big" not in cache and cache.current_bytes == 0


async def test_entries_expire_after_ttl():
    now = [0.0]
    cache = MetadataCache(max_bytes=100, ttl_s=10, timer=lambda: now[0])
    await cache.get_or_load("k", lambda: _ready(value(1)))
    now[0] = 9.0
    assert "k" in cache
    now[0] = 10.5
    assert "k" not in cache
    await cache.get_or_load("k", lambda: _ready(value(1)))
    assert cache.loads == 2


async def test_cancelled_waiter_does_not_cancel_the_shared_load():
    cache = MetadataCache(max_bytes=100, ttl_s=60)
    gate = asyncio.Event()

    async def load():
        await gate.wait()
        return value(5)

    first = asyncio.create_task(cache.get_or_load("k", load))
    second = asyncio.create_task(cache.get_or_load("k", load))
    await asyncio.sleep(0)
    first.cancel()
    gate.set()
    assert (await second).nbytes == 5
    with pytest.raises(asyncio.CancelledError):
        await first
    assert "k" in cache
