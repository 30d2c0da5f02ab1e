"""python -m bench.warm_path [--rounds N] [--blocks K] [--wrk S] [--tree LABEL=DIR ...] [--config LABEL=YAML ...]

A quick interleaved loop for the warm `?start=` per-request path (issue 13): origin_proxy (this checkout, plus
any `--tree` builds and `--config` variants), nginx's mp4 module and the bare-aiohttp floor (bench/floor_server.py)
answer `GET /vod/<movie>.mp4?start=S` with `Range: bytes=0-65535`, S never asked before in the run, every answer
checked as a 206 of 65536 bytes (bench/seek.py's CheckedClient). Servers alternate request by request (A B C, then
C B A). The run is cut into `--blocks` blocks; each block gives one ratio of medians against nginx, and the report
shows the median ratio and its min–max over the blocks (keep-alive and a new connection per request), on the main
movie (movie_360p_2h) and the short one (movie_10m: the constant per-request cost). With `--wrk S`, requests/s of
`wrk -t1 -c16` on random starts, S seconds per server, alternating, three rounds, with each server's CPU per
request (psutil, its children included: nginx's worker).

Compare builds inside one run only (the machine is shared): `git archive <commit> origin_proxy | tar -x -C DIR` and
`--tree before=DIR`.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import psutil

from .__main__ import start_floor_server
from .harness import OP_TREE, Server, log, start_nginx, start_origin_proxy
from .seek import WRK_LUA, CheckedClient, Starts, wrk_rps

MOVIES = {"movie_360p_2h": 7200.0, "movie_10m": 600.0, "movie_1h": 3600.0, "movie_2h": 7200.0}


def _rounds(servers: list[Server], movie: str, duration: float, n: int, keep_alive: bool,
            starts: Starts) -> dict[str, list[float]]:
    clients = {s.name: CheckedClient(s.port, keep_alive) for s in servers}
    out: dict[str, list[float]] = {s.name: [] for s in servers}
    try:
        for i in range(n):
            for server in (servers if i % 2 == 0 else servers[::-1]):
                path = f"/vod/{movie}.mp4?start={starts.take(duration)}"
                out[server.name].append(clients[server.name].get(path).last_byte_s)
    finally:
        for c in clients.values():
            c.close()
    return out


def _cpu_s(server: Server) -> float:
    """CPU seconds (user + system) of a server process and its children (nginx's worker) so far."""
    process = psutil.Process(server.proc.pid)
    return sum(sum(p.cpu_times()[:2]) for p in [process, *process.children(recursive=True)])


def _summary(blocks: list[dict[str, list[float]]], name: str) -> str:
    medians = [statistics.median(b[name]) * 1e3 for b in blocks]
    ratios = [statistics.median(b[name]) / statistics.median(b["nginx"]) for b in blocks]
    return (f"{statistics.median(medians):6.2f} ms  ratio {statistics.median(ratios):4.2f}x "
            f"({min(ratios):.2f}-{max(ratios):.2f})")


def burst(count: int) -> int:
    """bench/slow_readers.py's burst of `count` distinct first clips (each client reads the first KiB and leaves)
    against three placements of the head builds; prints /healthz probes missed and CPU per reader."""
    from .slow_readers import MOVIE, run_case

    distinct = [f"/vod/{MOVIE}.mp4?start={100 + 7 * i}" for i in range(count)]
    cases = {"threads + inline budget (default)": "",
             "threads only (inline_build_budget_s 0)": "cache:\n  inline_build_budget_s: 0\n",
             "on the loop (build_threads 0)": "cache:\n  build_threads: 0\n"}
    with tempfile.TemporaryDirectory(prefix="bench-burst-") as tmpname:
        tmp = Path(tmpname)
        for i, (label, extra) in enumerate(cases.items()):
            result = run_case(label, lambda e=extra, n=i: start_origin_proxy(tmp, f"burst{n}", extra_config=e),
                              distinct, 3.0, first_kib_only=True)
            print(f"{label:>40}: /healthz missed {result['healthz_missed_burst']}/{result['healthz_sent_burst']} "
                  f"in the burst ({result['burst_s']:.1f} s), {result['burst_cpu_ms_per_reader']:.2f} ms CPU per "
                  f"reader, errors {result['errors']}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.warm_path", description=__doc__.splitlines()[2])
    parser.add_argument("--rounds", type=int, default=20, help="requests per server per block")
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--wrk", type=int, default=0, help="seconds of wrk -c16 per server and round (0: none)")
    parser.add_argument("--tree", action="append", default=[], metavar="LABEL=DIR")
    parser.add_argument("--config", action="append", default=[], metavar="LABEL=YAML",
                        help="this checkout with these config lines added (\\n for newlines)")
    parser.add_argument("--no-floor", action="store_true")
    parser.add_argument("--movies", default="movie_360p_2h,movie_10m")
    parser.add_argument("--burst", type=int, default=0,
                        help="also: a burst of N distinct first clips (bench/slow_readers.py's case) with the inline "
                             "budget, without it and on the loop: /healthz probes missed")
    args = parser.parse_args(argv)
    if args.burst:
        return burst(args.burst)
    starts = Starts(29)
    with tempfile.TemporaryDirectory(prefix="bench-warm-") as tmpname:
        tmp = Path(tmpname)
        servers: list[Server] = []
        try:
            servers.append(start_nginx(tmp, "nginx"))
            servers.append(start_origin_proxy(tmp, "origin_proxy"))
            for i, spec in enumerate(args.tree):
                label, _, tree = spec.partition("=")
                saved = OP_TREE["path"]
                OP_TREE["path"] = Path(tree).resolve()
                try:
                    server = start_origin_proxy(tmp, f"tree{i}")
                finally:
                    OP_TREE["path"] = saved
                server.name = label
                servers.append(server)
            for i, spec in enumerate(args.config):
                label, _, text = spec.partition("=")
                server = start_origin_proxy(tmp, f"cfg{i}", extra_config=text.replace("\\n", "\n"))
                server.name = label
                servers.append(server)
            if not args.no_floor:
                servers.append(start_floor_server())
            names = [s.name for s in servers if s.name != "nginx"]
            for movie in args.movies.split(","):
                duration = MOVIES[movie]
                for s in servers:  # metadata into the caches, page cache
                    for _ in range(3):
                        CheckedClient(s.port, True).get(f"/vod/{movie}.mp4?start={starts.take(duration)}")
                for keep_alive in (True, False):
                    blocks = [_rounds(servers, movie, duration, args.rounds, keep_alive, starts)
                              for _ in range(args.blocks)]
                    mode = "keep-alive" if keep_alive else "new connection"
                    print(f"{movie}, {mode}: nginx {statistics.median(x for b in blocks for x in b['nginx']) * 1e3:.2f}"
                          f" ms", flush=True)
                    for name in names:
                        print(f"  {name:>16}: {_summary(blocks, name)}", flush=True)
            if args.wrk:
                movie = "movie_360p_2h"
                script = tmp / "start.lua"
                script.write_text(WRK_LUA.format(seed=17, thousandths=int(0.9 * MOVIES[movie] * 1000), movie=movie))
                rps: dict[str, list[float]] = {s.name: [] for s in servers if s.name != "floor"}
                cpu_ms: dict[str, list[float]] = {name: [] for name in rps}  # server CPU per request
                measured = [s for s in servers if s.name != "floor"]
                for i in range(3):
                    for server in (measured if i % 2 == 0 else measured[::-1]):
                        cpu_before = _cpu_s(server)
                        rate = wrk_rps(server, script, args.wrk, 16)
                        rps[server.name].append(rate)
                        cpu_ms[server.name].append((_cpu_s(server) - cpu_before) / (rate * args.wrk) * 1e3)
                ng = statistics.median(rps["nginx"])
                print(f"wrk -t1 -c16, {movie}: nginx {ng:.0f} req/s, {statistics.median(cpu_ms['nginx']):.2f} ms CPU "
                      f"per request", flush=True)
                for name, values in rps.items():
                    if name != "nginx":
                        print(f"  {name:>16}: {statistics.median(values):.0f} req/s  ratio "
                              f"{statistics.median(values) / ng:.2f}x ({min(values) / ng:.2f}-{max(values) / ng:.2f}), "
                              f"{statistics.median(cpu_ms[name]):.2f} ms CPU per request "
                              f"({min(cpu_ms[name]):.2f}-{max(cpu_ms[name]):.2f})", flush=True)
        finally:
            for s in servers:
                s.stop()
    return 0


if __name__ == "__main__":
    log("warm path")
    sys.exit(main())
