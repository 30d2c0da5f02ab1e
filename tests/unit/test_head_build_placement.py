"""Where the head cache (store/heads.py) runs a build: on the event loop when the build is cheap and the loop
iteration's inline budget has room, in the build threads otherwise (issue 13: a lone warm `?start=` pays no thread
hop; issue 15: a burst of distinct first clips still leaves the loop free to poll its sockets).

Oracle: the thread each build ran on (`threading.get_ident()` inside the build), and the Plans returned.
"""

from __future__ import annotations

import asyncio
import threading
import time

from origin_proxy.plan import Plan
from origin_proxy.store.catalog import HeadKey, SourceVersion
from origin_proxy.store.heads import HeadCache

VERSION = SourceVersion("file:///m.mp4", "1-2")


class _ThreadCPU:
    """A per-thread CPU clock that advances only when a build says it worked: the budget's decisions are then the
    same on every machine (a real time.thread_time can tick in 1-4 ms steps under a loaded VM)."""

    def __init__(self) -> None:
        self._by_thread: dict[int, float] = {}

    def __call__(self) -> float:
        return self._by_thread.get(threading.get_ident(), 0.0)

    def work(self, cpu_s: float) -> None:
        ident = threading.get_ident()
        self._by_thread[ident] = self._by_thread.get(ident, 0.0) + cpu_s


CPU = _ThreadCPU()


BUDGET_S = 2.0**-9  # ~2 ms, exact in binary so that four 2**-11 s builds fill it exactly


def _heads(build_threads: int = 2, inline_budget_s: float = BUDGET_S) -> HeadCache:
    return HeadCache(1 << 20, 60.0, build_threads=build_threads, inline_budget_s=inline_budget_s, cpu_clock=CPU)


def _builder(threads: list[int], cpu_s: float, body: bytes):
    def build() -> Plan:
        threads.append(threading.get_ident())
        CPU.work(cpu_s)  # the CPU a real clip build would spend
        return Plan((body,), "video/mp4")

    return build


async def test_a_lone_cheap_build_runs_on_the_loop_and_is_cached():
    heads = _heads()
    threads: list[int] = []
    try:
        plan = await heads.plan(HeadKey(VERSION, "clip", "start=1"), _builder(threads, 0.0001, b"head-1"))
        again = await heads.plan(HeadKey(VERSION, "clip", "start=1"), _builder(threads, 0.0001, b"other"))
    finally:
        heads.close()
    assert threads == [threading.get_ident()]  # built once, on the loop's thread
    assert bytes(plan.parts[0]) == b"head-1" and bytes(again.parts[0]) == b"head-1"
    assert (heads.builds, heads.hits, heads.inline_builds) == (1, 1, 1)


async def test_an_expensive_kind_goes_to_the_pool_once_its_cost_is_known():
    heads = _heads()
    threads: list[int] = []
    try:
        await heads.plan(HeadKey(VERSION, "segment", "v1\x000"), _builder(threads, 0.005, b"a"))  # cost unknown
        await asyncio.sleep(0)  # the next loop iteration: a fresh budget
        await heads.plan(HeadKey(VERSION, "segment", "v1\x001"), _builder(threads, 0.005, b"b"))
    finally:
        heads.close()
    loop_thread = threading.get_ident()
    assert threads[0] == loop_thread  # unknown cost, first of its iteration: on the loop
    assert threads[1] != loop_thread  # 5 ms > the 2 ms budget: in a build thread


async def test_a_burst_of_distinct_cheap_builds_spills_to_the_pool_after_the_budget():
    heads = _heads()
    threads: list[int] = []
    try:
        await heads.plan(HeadKey(VERSION, "clip", "warm"), _builder(threads, 2.0**-11, b"w"))  # learn the cost
        await asyncio.sleep(0)
        threads.clear()
        plans = await asyncio.gather(*(heads.plan(HeadKey(VERSION, "clip", f"start={i}"),
                                                  _builder(threads, 2.0**-11, b"%d" % i)) for i in range(40)))
    finally:
        heads.close()
    loop_thread = threading.get_ident()
    on_loop = sum(t == loop_thread for t in threads)
    assert [bytes(p.parts[0]) for p in plans] == [b"%d" % i for i in range(40)]
    assert on_loop == 4  # 2**-11 s each against 2**-9 s per iteration: the first four, then the budget is spent
    assert len(threads) - on_loop == 36  # the rest ran in the build threads


async def test_budget_zero_always_uses_the_pool():
    heads = _heads(1, 0.0)
    threads: list[int] = []
    try:
        await heads.plan(HeadKey(VERSION, "clip", "start=2"), _builder(threads, 0.0, b"x"))
    finally:
        heads.close()
    assert threads and threads[0] != threading.get_ident()
    assert heads.inline_builds == 0
