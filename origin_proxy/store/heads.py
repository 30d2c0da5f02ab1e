"""The head cache: generated heads built once per source version and shared by every response (DESIGN.md §7).

A head is the generated part of a body: a clip's ftyp + moov + mdat header, a CMAF init segment, a CMAF
fragment's moof + mdat header, a Smooth fragment's moof + mdat header. `HeadCache.plan(key, build)` returns the
Plan `build()` makes, frozen: consecutive generated parts joined into one buffer (LazyBytes rendered once), held as
a read-only `memoryview`, so responses and Range slices of it are zero-copy; SourceRanges kept as they are.

Keys are store/catalog.py's HeadKey (the SourceVersion or Presentation plus the canonical request parameters): a
new validator is a new key, so a changed source never meets an old head. The cache is a MetadataCache (byte
budget = the frozen heads' bytes, TTL, single-flight: N concurrent misses for one key run one build).

Builds are CPU work (a 490k-sample clip costs ~10 ms): they run in a pool of `build_threads` threads so the event
loop keeps answering `/healthz` and cached heads during a burst of first requests; `build_threads=0` builds on the
loop (tests, one-core machines). `run_build(fn)` offers the same pool to other CPU-heavy cached builds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from ..plan import Part, Plan, SourceRange, materialize
from .cache import MetadataCache
from .catalog import HeadKey

T = TypeVar("T")

_PART_OVERHEAD_BYTES = 64  # what one part costs besides its bytes (object headers, tuple slot)


@dataclass(frozen=True)
class FrozenPlan:
    """A cached Plan whose generated parts are read-only memoryviews of buffers built once. `nbytes`: memory held."""

    plan: Plan
    nbytes: int


def freeze(plan: Plan) -> FrozenPlan:
    """`plan` with each run of consecutive generated parts rendered and joined into one read-only buffer."""
    parts: list[Part] = []
    run: list[bytes | memoryview] = []
    held = 0

    def flush() -> None:
        nonlocal held
        if run:
            joined = run[0] if len(run) == 1 and isinstance(run[0], bytes) else b"".join(run)
            parts.append(memoryview(joined).toreadonly())
            held += len(joined) + _PART_OVERHEAD_BYTES
            run.clear()

    for part in plan.parts:
        if isinstance(part, SourceRange):
            flush()
            parts.append(part)
            held += _PART_OVERHEAD_BYTES
        else:
            run.append(materialize(part))
    flush()
    return FrozenPlan(Plan(tuple(parts), plan.content_type), held)


class HeadCache:
    """Frozen Plans by HeadKey, bounded in bytes, with single-flight builds in a thread pool.

    Args:
        max_bytes: the frozen heads' bytes never exceed this (a larger head is served, not cached).
        ttl_s: seconds a head lives after it was built.
        build_threads: threads builds run in; 0 = on the event loop.
        timer: monotonic clock in seconds.
    Attributes:
        hits, misses, builds: lookups answered from the cache / that waited for a build; builds started.
    """

    def __init__(self, max_bytes: int, ttl_s: float, build_threads: int = 2,
                 timer: Callable[[], float] = time.monotonic) -> None:
        self._cache = MetadataCache(max_bytes, ttl_s, timer)
        self._pool = ThreadPoolExecutor(build_threads, thread_name_prefix="head-build") if build_threads else None

    @property
    def hits(self) -> int:
        return self._cache.hits

    @property
    def misses(self) -> int:
        return self._cache.misses

    @property
    def builds(self) -> int:
        return self._cache.loads

    @property
    def current_bytes(self) -> int:
        return self._cache.current_bytes

    def __len__(self) -> int:
        return len(self._cache)

    def keys(self) -> list[HeadKey]:
        return self._cache.keys()

    async def plan(self, key: HeadKey, build: Callable[[], Plan]) -> Plan:
        """The frozen Plan for `key`: cached, or `build()` (a pure function; run in the pool) frozen and cached.
        Raises what `build()` raises (OriginErrors); nothing is cached then."""
        async def load() -> FrozenPlan:
            return await self.run_build(lambda: freeze(build()))

        return (await self._cache.get_or_load(key, load)).plan

    async def run_build(self, fn: Callable[[], T]) -> T:
        """`fn()` in the build pool (on the loop when there is none)."""
        if self._pool is None:
            return fn()
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
