"""The head cache: generated heads built once per source version and shared by every response (DESIGN.md §7).

A head is the generated part of a body: a clip's ftyp + moov + mdat header, a CMAF init segment, a CMAF
fragment's moof + mdat header, a Smooth fragment's moof + mdat header. `HeadCache.plan(key, build)` returns the
Plan `build()` makes, frozen: consecutive eager generated parts joined into one buffer held as a read-only
`memoryview` (responses and Range slices of it are zero-copy); LazyBytes (rewritten chunk tables) rendered at most
once, when a response first covers them, then shared; SourceRanges kept as they are.

Keys are store/catalog.py's HeadKey (the SourceVersion or Presentation plus the canonical request parameters): a
new validator is a new key, so a changed source never meets an old head. The cache is a MetadataCache (byte
budget = the frozen heads' bytes, TTL, single-flight: N concurrent misses for one key run one build).

Builds are CPU work: they run in a pool of `build_threads` threads so the event loop keeps answering `/healthz` and
cached heads during a burst of first requests; `build_threads=0` builds on the loop (tests, one-core machines).
A cheap build is not worth the thread hops (a warm clip head of a 2 h movie costs ~0.35 ms, the hops about as much
again): a build runs at once on the loop (no task, no hop) when its kind's recent CPU cost (a running average per
HeadKey kind, measured with `time.thread_time` wherever it ran) fits in what is left of the loop iteration's
`inline_budget_s`. A lone new `?start=` is answered without a hop, while in a burst of distinct first clips at most
`inline_budget_s` of builds run per loop iteration and the rest go to the pool, so the loop still polls its sockets
(and answers `/healthz`) every few milliseconds. `run_build(fn)` offers the pool to other CPU-heavy cached builds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from ..plan import LazyBytes, Part, Plan, SourceRange
from .cache import MetadataCache
from .catalog import HeadKey

T = TypeVar("T")

_PART_OVERHEAD_BYTES = 64  # what one part costs besides its bytes (object headers, tuple slot)
_SHARE_BYTES = 32 * 1024  # eager parts this large are kept as zero-copy views; smaller runs are joined
INLINE_BUDGET_S = 0.002  # at most this much queued build CPU runs on the loop instead of in the pool
_COST_WEIGHT = 0.25  # weight of the newest build in the running cost average


@dataclass(frozen=True)
class FrozenPlan:
    """A cached Plan whose generated parts are read-only memoryviews of buffers built once. `nbytes`: memory held."""

    plan: Plan
    nbytes: int


class _RenderOnce:
    """The render function of a LazyBytes, run at most once: the bytes are kept for every later response."""

    __slots__ = ("_lazy", "_data")

    def __init__(self, lazy: LazyBytes) -> None:
        self._lazy: LazyBytes | None = lazy
        self._data: bytes | None = None

    def __call__(self) -> bytes:
        if self._data is None:
            self._data = bytes(self._lazy)  # checks the promised size
            self._lazy = None  # the tables it rendered from are no longer needed by this part
        return self._data


def freeze(plan: Plan) -> FrozenPlan:
    """`plan` with each run of consecutive small eager generated parts joined into one read-only buffer (parts of
    _SHARE_BYTES or more kept as read-only views of the bytes they are, without a copy), and each
    LazyBytes kept lazy but rendered at most once (on the first response whose range covers it, then shared).

    A LazyBytes stays lazy so a new clip's first bytes never wait for tables the range does not reach (a rewritten
    stco/stsc of an 8 h movie costs milliseconds to render; `Range: bytes=0-65535` rarely needs it): the warm
    cost of a new `?start=` stays independent of movie length (issue 13). Its promised size counts in `nbytes`.
    """
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
        elif isinstance(part, LazyBytes):
            flush()
            parts.append(LazyBytes(part.size, _RenderOnce(part)))
            held += part.size + _PART_OVERHEAD_BYTES
        elif len(part) >= _SHARE_BYTES:
            flush()  # a large table slice (stsz, stts runs of the source moov): shared as it is, not copied
            view = part if isinstance(part, memoryview) else memoryview(part)
            parts.append(view.toreadonly())
            held += len(part) + _PART_OVERHEAD_BYTES
        else:
            run.append(part)
    flush()
    return FrozenPlan(Plan(tuple(parts), plan.content_type), held)


class HeadCache:
    """Frozen Plans by HeadKey, bounded in bytes, with single-flight builds in a thread pool.

    Args:
        max_bytes: the frozen heads' bytes never exceed this (a larger head is served, not cached).
        ttl_s: seconds a head lives after it was built.
        build_threads: threads builds run in; 0 = on the event loop.
        timer: monotonic clock in seconds.
        cpu_clock: the calling thread's CPU seconds (time.thread_time), for the build costs the budget uses.
        inline_budget_s: CPU seconds of builds one loop iteration may run on the loop (a build goes there when
            its kind's average cost fits in what is left); 0: always the pool, when there is one.
    Attributes:
        hits, misses, builds: lookups answered from the cache / that waited for a build; builds started.
        inline_builds: builds run on the loop by the budget (not counting build_threads=0).
    """

    def __init__(self, max_bytes: int, ttl_s: float, build_threads: int = 2,
                 timer: Callable[[], float] = time.monotonic, inline_budget_s: float = INLINE_BUDGET_S,
                 cpu_clock: Callable[[], float] = time.thread_time) -> None:
        self._cpu_clock = cpu_clock
        self._cache = MetadataCache(max_bytes, ttl_s, timer)
        self._cache.on_remove = self._forget
        # Heads that pin a value of another cache (a clip head's lazy tables and table views pin the MovieFile):
        # kept only while that value is cached there (follow()).
        self._dependency_held: Callable[[Hashable], bool] = lambda dependency: True
        self._dependents: dict[Hashable, set[HeadKey]] = {}
        self._depends_on: dict[HeadKey, Hashable] = {}
        self._pool = ThreadPoolExecutor(build_threads, thread_name_prefix="head-build") if build_threads else None
        self._inline_budget_s = inline_budget_s
        self._cost_s: dict[str, float] = {}  # recent CPU seconds of one build, by HeadKey kind
        self._spent_s = 0.0  # inline build CPU seconds in this loop iteration
        self._reset_scheduled = False
        self.inline_builds = 0  # builds run on the loop although a pool exists

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

    def follow(self, movies: MetadataCache) -> None:
        """Tie the heads built with `depends_on=` a key of `movies` to that entry: such a head is cached only while
        the movie is, and dropped when `movies` evicts or expires it. A clip head shares the movie's table bytes
        (views of the moov, lazily rendered tables) and counts only its own; without this a head would keep an
        evicted movie alive outside both byte budgets (a 1-byte metadata cache held ~775 MB of pinned movies
        after 100 distinct cold clips of a 2 h movie)."""
        movies.on_remove = self.drop_dependents
        self._dependency_held = movies.__contains__

    def drop_dependents(self, dependency: Hashable) -> None:
        """Drop every cached head built with `depends_on=dependency`."""
        for key in self._dependents.pop(dependency, ()):
            self._depends_on.pop(key, None)
            self._cache.discard(key)

    def _forget(self, key: Hashable) -> None:
        """A head left the cache by itself (evicted, expired): forget what it depended on."""
        dependency = self._depends_on.pop(key, None)
        if dependency is not None:
            keys = self._dependents.get(dependency)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._dependents[dependency]

    def _tie(self, key: HeadKey, dependency: Hashable) -> None:
        """After a build of `key`: keep it tied to `dependency`, or uncached when the dependency is not cached."""
        if key not in self._cache:
            return
        if not self._dependency_held(dependency):
            self._cache.discard(key)
            return
        self._depends_on[key] = dependency
        self._dependents.setdefault(dependency, set()).add(key)

    async def plan(self, key: HeadKey, build: Callable[[], Plan], depends_on: Hashable | None = None) -> Plan:
        """The frozen Plan for `key`: cached, or `build()` (a pure function) frozen and cached, built on the loop
        when the inline budget allows (see the module docstring), else in the pool. With `depends_on` (a key of
        the cache given to follow()), the head stays cached only while that entry does. Raises what `build()`
        raises (OriginErrors); nothing is cached then."""
        cached = self._cache.get_now(key)
        if cached is not None:
            return cached.plan
        if depends_on is None:
            return await self._plan(key, build)
        plan = await self._plan(key, build)
        self._tie(key, depends_on)
        return plan

    async def _plan(self, key: HeadKey, build: Callable[[], Plan]) -> Plan:
        kind = key.kind

        def timed() -> FrozenPlan:
            started = self._cpu_clock()
            try:
                return freeze(build())
            finally:
                self._note_cost(kind, self._cpu_clock() - started)

        if self._pool is not None and not self._cache.loading(key) and self._inline_allowed(kind):
            self.inline_builds += 1
            spent_s = 0.0

            def timed_and_spent() -> FrozenPlan:  # one clock pair for the cost average and the budget
                nonlocal spent_s
                started = self._cpu_clock()
                try:
                    return freeze(build())
                finally:
                    spent_s = self._cpu_clock() - started
                    self._note_cost(kind, spent_s)

            try:
                return self._cache.build_now(key, timed_and_spent).plan
            finally:
                self._spend(spent_s)

        async def load() -> FrozenPlan:
            return await self.run_build(timed)

        return (await self._cache.get_or_load(key, load)).plan

    def _note_cost(self, kind: str, cost_s: float) -> None:
        previous = self._cost_s.get(kind)
        self._cost_s[kind] = cost_s if previous is None else previous + _COST_WEIGHT * (cost_s - previous)

    def _inline_allowed(self, kind: str) -> bool:
        """Whether a build of `kind` fits in what is left of this loop iteration's inline budget (an unknown cost
        counts as the whole budget: it runs on the loop only as the iteration's first inline build)."""
        if self._inline_budget_s <= 0:
            return False
        return self._spent_s + self._cost_s.get(kind, self._inline_budget_s) <= self._inline_budget_s

    def _spend(self, cost_s: float) -> None:
        """Count inline build CPU against this loop iteration's budget; the next iteration starts at zero."""
        if not self._reset_scheduled:
            self._reset_scheduled = True
            asyncio.get_running_loop().call_soon(self._reset_budget)
        self._spent_s += cost_s

    def _reset_budget(self) -> None:
        self._spent_s = 0.0
        self._reset_scheduled = False

    async def run_build(self, fn: Callable[[], T]) -> T:
        """`fn()` in the build pool (on the loop when there is none)."""
        if self._pool is None:
            return fn()
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
