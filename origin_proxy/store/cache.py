"""L1 metadata cache: parsed MovieFiles per (source identity, validator), bounded in bytes (DESIGN.md §7).

A `cachetools.TTLCache` whose maxsize is a byte budget and whose item size is the value's `nbytes` attribute
(MovieFile reports the memory of its numpy columns). The validator is part of the key, so a changed upstream
object never meets its old metadata. Loads are single-flight: concurrent misses for one key await the same task,
so 200 viewers arriving at once cost one upstream read. A failed load is not cached; every waiter sees its error.
Values must be plain immutable data (dataclasses + read-only numpy), never construct objects.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from cachetools import TTLCache


def _nbytes(value: Any) -> int:
    return max(1, int(value.nbytes))


class _NotifyingTTLCache(TTLCache):
    """A TTLCache that tells `on_remove(key)` about every entry it drops by itself: the least recently used one
    evicted for room (`popitem`) and the expired ones (`expire`, which cachetools runs lazily, on the next store
    or eviction)."""

    def __init__(self, *args: Any, on_remove: Callable[[Hashable], None], **kwargs: Any) -> None:
        self._on_remove = on_remove
        super().__init__(*args, **kwargs)

    def expire(self, time: float | None = None) -> list:
        expired = super().expire(time)
        for key, _value in expired:
            self._on_remove(key)
        return expired

    def popitem(self) -> tuple:
        key, value = super().popitem()
        self._on_remove(key)
        return key, value


class MetadataCache:
    """Byte-bounded TTL cache with single-flight loads.

    Args:
        max_bytes: sum of the cached values' `nbytes` never exceeds this; a larger value is served, not cached.
        ttl_s: seconds an entry lives after it was stored.
        timer: monotonic clock in seconds (tests pass a fake one).
    Attributes:
        on_remove: None, or called with the key of every entry evicted for room or expired (HeadCache.follow sets
            it, to drop the clip heads that pin an evicted movie); not for a value that was never stored, nor for
            `discard`.
        hits, misses: lookups answered from the cache / that had to wait for a load.
        loads: loader calls started (misses that found a load in flight do not start one).
    """

    def __init__(self, max_bytes: int, ttl_s: float, timer: Callable[[], float] = time.monotonic) -> None:
        self.on_remove: Callable[[Hashable], None] | None = None
        self._entries: TTLCache = _NotifyingTTLCache(maxsize=max_bytes, ttl=ttl_s, timer=timer, getsizeof=_nbytes,
                                                     on_remove=self._removed)
        self._in_flight: dict[Hashable, asyncio.Task] = {}
        self.hits = 0
        self.misses = 0
        self.loads = 0

    @property
    def current_bytes(self) -> int:
        return int(self._entries.currsize)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def keys(self) -> list[Hashable]:
        """The keys held now (store/catalog.py key types at the edge), expired ones left out."""
        self._entries.expire()
        return list(self._entries.keys())

    def _removed(self, key: Hashable) -> None:
        if self.on_remove is not None:
            self.on_remove(key)

    def discard(self, key: Hashable) -> None:
        """Drop `key` if it is stored (on_remove is not called: the caller knows)."""
        self._entries.pop(key, None)

    def get_now(self, key: Hashable) -> Any | None:
        """The cached value for `key` (counted as a hit), or None (not counted) when it is not cached."""
        try:
            value = self._entries[key]
        except KeyError:
            return None
        self.hits += 1
        return value

    def loading(self, key: Hashable) -> bool:
        """True while a load of `key` is in flight (a caller must then wait for it: get_or_load)."""
        return key in self._in_flight

    def build_now(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """`build()` run at once (no task, no await) and cached: a miss and a load, like get_or_load's, for a
        caller that found `key` neither cached (get_now) nor loading. Raises what `build()` raises; nothing is
        cached then."""
        self.misses += 1
        self.loads += 1
        value = build()
        try:
            self._entries[key] = value
        except ValueError:  # larger than max_bytes: served, not cached
            pass
        return value

    async def get_or_load(self, key: Hashable, load: Callable[[], Awaitable[Any]]) -> Any:
        """The cached value for `key`, else the result of one shared `load()` call.

        A cancelled waiter does not cancel the shared load (other waiters may still need it).
        Raises whatever `load()` raises; nothing is cached then.
        """
        try:
            value = self._entries[key]
        except KeyError:
            pass
        else:
            self.hits += 1
            return value
        self.misses += 1
        task = self._in_flight.get(key)
        if task is None:
            self.loads += 1
            task = asyncio.ensure_future(self._load(key, load))
            # Mark the error as seen even when every waiter was cancelled (no "never retrieved" warning).
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            self._in_flight[key] = task
        return await asyncio.shield(task)

    async def _load(self, key: Hashable, load: Callable[[], Awaitable[Any]]) -> Any:
        try:
            value = await load()
            try:
                self._entries[key] = value
            except ValueError:  # cachetools: a single value larger than max_bytes; serve it uncached
                pass
            return value
        finally:
            del self._in_flight[key]
