"""python -m bench [--quick] [--long] [--profile] [--parts seek,upstream,fod,memory] [--out BENCHMARKS.md]

Runs origin_proxy and Debian's nginx (ngx_http_mp4_module, mp4_start_key_frame on, one worker) side by side on
the same files in bench/media/, interleaving every measurement (A B A B ...), and writes a Markdown report with
medians, min-max and origin_proxy/nginx ratios, plus bench/seek_latency.png. Parts: seek (?start= TTFB, requests/s,
local whole body, RSS per movie length), upstream (whole body through an HTTP upstream rule against nginx
proxy_pass, MB/s per core), fod (fragment-on-demand against ffmpeg -c copy, bench/fod.py) and memory (metadata
cache per movie, slow readers, bench/memory.py).
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import fod, memory
from .harness import (BENCH, MEDIA, OP_TREE, RANGE, ROOT, SEED, Client, Row, Server, curl_bytes_s, curl_mbps,
                      free_port, log, ref_table, start_nginx, start_origin_proxy, table, wait_port, wrk_rps)

PLOT = BENCH / "seek_latency.png"

# name -> seconds. 160x90 testsrc2, x264 superfast with 3 B-frames, GOP 50, ~16 kb/s video + 16 kb/s mono AAC:
# tiny files whose sample tables (what a seek costs) are as long as a real movie of the same duration.
MOVIES = {"movie_10m": 600, "movie_1h": 3600, "movie_2h": 7200}
LONG_MOVIES = {"movie_8h": 28800}
BULK = "bulk_512m.mp4"  # whole-body throughput: 512 MiB of random bytes, served as-is (no ?start=)
BULK_BYTES = 512 * 1024 * 1024
PARTS = ("seek", "upstream", "fod", "memory")
CACHED_MOVIES = 100  # distinct 2 h movies in the cache for the memory measurement
SLOW_READERS = 500


# ---------------------------------------------------------------------------------------------------- media
def ffmpeg_movie(path: Path, seconds: int) -> float:
    tmp = path.with_suffix(".tmp.mp4")
    started = time.monotonic()
    subprocess.run([
        "ffmpeg", "-nostdin", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
        "-t", str(seconds), "-map", "0:v", "-map", "1:a",
        "-c:v", "libx264", "-preset", "superfast", "-bf", "3", "-g", "50", "-b:v", "16k",
        "-c:a", "aac", "-b:a", "16k", "-ac", "1", str(tmp)], check=True)
    tmp.rename(path)
    return time.monotonic() - started


def probe(path: Path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,nb_frames,has_b_frames",
                          "-show_entries", "format=duration", "-of", "json", str(path)],
                         check=True, capture_output=True, text=True).stdout
    data = json.loads(out)
    streams = {s["codec_type"]: s for s in data["streams"]}
    return {"duration": float(data["format"]["duration"]),
            "video_samples": int(streams["video"]["nb_frames"]), "audio_samples": int(streams["audio"]["nb_frames"]),
            "b_frames": int(streams["video"].get("has_b_frames", 0)), "size": path.stat().st_size,
            "moov": moov_size(path)}


def moov_size(path: Path) -> int:
    with path.open("rb") as f:
        offset = 0
        end = path.stat().st_size
        while offset < end:
            f.seek(offset)
            head = f.read(16)
            size, kind = int.from_bytes(head[:4], "big"), head[4:8]
            if size == 1:
                size = int.from_bytes(head[8:16], "big")
            elif size == 0:
                size = end - offset
            if kind == b"moov":
                return size
            offset += size
    return 0


def ensure_media(movies: dict[str, int]) -> dict[str, dict]:
    MEDIA.mkdir(parents=True, exist_ok=True)
    info = {}
    for name, seconds in movies.items():
        path = MEDIA / f"{name}.mp4"
        cost = None
        if not path.exists():
            log(f"generating {path.name} ({seconds} s) with ffmpeg")
            cost = ffmpeg_movie(path, seconds)
        info[name] = probe(path) | {"generated_in_s": cost}
    bulk = MEDIA / BULK
    if not bulk.exists() or bulk.stat().st_size != BULK_BYTES:
        log(f"writing {bulk.name}")
        with bulk.open("wb") as f:
            for _ in range(BULK_BYTES // (1 << 20)):
                f.write(os.urandom(1 << 20))
    return info


# ---------------------------------------------------------------------------------------------------- ?start=
def starts(duration: float, n: int, rng: random.Random) -> list[float]:
    return [round(rng.uniform(0, duration - 10), 2) for _ in range(n)]


def interleaved_ttfb(a: Server, b: Server, movie: str, duration: float, n: int, warm: bool,
                     rng: random.Random) -> dict[str, list[float]]:
    """n random starts; for each, A then B (order alternating each round). warm: one untimed priming request of
    the same URL right before the timed one."""
    clients = {a.name: Client(a.port), b.name: Client(b.port)}
    out: dict[str, list[float]] = {a.name: [], b.name: []}
    for i, start in enumerate(starts(duration, n, rng)):
        order = (a, b) if i % 2 == 0 else (b, a)
        for server in order:
            path = f"{server.prefix}{movie}.mp4?start={start}"
            if warm:
                clients[server.name].ttfb(path, RANGE)
            out[server.name].append(clients[server.name].ttfb(path, RANGE))
    return out


WRK_LUA = """
math.randomseed({seed})
request = function()
  local s = math.random(0, {hundredths}) / 100
  return wrk.format("GET", "/vod/{movie}.mp4?start=" .. s, {{["Range"] = "bytes=0-65535"}})
end
"""


# ---------------------------------------------------------------------------------------------------- report
def plot(seek: dict[str, dict[str, list[float]]], info: dict[str, dict], growth: dict[str, dict]) -> None:
    """Left: warm ?start= TTFB against movie length. Right (when measured): RSS after loading each length."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    names = list(seek)
    hours = [info[n]["duration"] / 3600 for n in names]
    fig, axes = plt.subplots(1, 2 if growth else 1, figsize=(11.5 if growth else 6.4, 4.2), dpi=100,
                             squeeze=False)
    ax = axes[0][0]
    labels = {"origin_proxy": "origin_proxy (warm cache)", "nginx": "nginx (parses the moov every request)"}
    for server, style in (("origin_proxy", "o-"), ("nginx", "s--")):
        med = [statistics.median(seek[n][server]) * 1000 for n in names]
        lo = [m - min(seek[n][server]) * 1000 for m, n in zip(med, names)]
        hi = [max(seek[n][server]) * 1000 - m for m, n in zip(med, names)]
        ax.errorbar(hours, med, yerr=[lo, hi], fmt=style, capsize=3, label=f"{labels[server]}: median, min–max")
    ax.set_yscale("log")
    ax.set_ylabel("?start= TTFB, Range 0-65535 (ms)")
    ax.set_title("Seek latency against movie length")
    ax.legend(fontsize=8)
    if growth:
        ax = axes[0][1]
        grown = [n for n in names if n in growth]
        g_hours = [info[n]["duration"] / 3600 for n in grown]
        ax.plot(g_hours, [growth[n]["op_rss_added"] / 1e6 for n in grown], "o-",
                label="origin_proxy: RSS added by loading this movie")
        ax.plot(g_hours, [growth[n]["op_cache_added"] / 1e6 for n in grown], "^:",
                label="origin_proxy: its cache's own count for this movie")
        ax.plot(g_hours, [3 * info[n]["moov"] / 1e6 for n in grown], "k-", alpha=0.4, label="goal: 3 × moov size")
        ax.plot(g_hours, [growth[n]["nginx_rss"] / 1e6 for n in grown], "s--", label="nginx worker RSS (total)")
        ax.set_yscale("log")
        ax.set_ylabel("MB")
        ax.set_title("Memory after loading each length")
        ax.legend(fontsize=8)
    for ax in axes[0]:
        ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xscale("log")
        ax.set_xticks(hours)
        ax.set_xticklabels([n.removeprefix("movie_") for n in names])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xlabel("movie length")
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(PLOT)
    plt.close(fig)


def version(cmd: list[str], pick: int = 0) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True)
        return (out.stdout + out.stderr).strip().splitlines()[pick].split(" Copyright")[0]
    except (OSError, IndexError):
        return "unavailable"


def machine() -> list[str]:
    import aiohttp
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    free = subprocess.run(["free", "-h"], capture_output=True, text=True).stdout.rstrip()
    return [f"- `nproc`: {os.cpu_count()}; CPU: {cpu}; kernel {platform.release()}",
            f"- Python {platform.python_version()}, aiohttp {aiohttp.__version__}; "
            f"{version(['nginx', '-v'])}; {version(['ffmpeg', '-version'])}; {version(['wrk', '-v'])}",
            "- `free -h`:", "", "```", free, "```"]


# ---------------------------------------------------------------------------------------------------- profile
def profile(op: Server, movie: str, duration: float, seconds: int, tmp: Path) -> list[str]:
    """py-spy on the warm origin_proxy while one client loops warm ?start= requests; returns report lines."""
    if shutil.which("py-spy") is None:
        return ["py-spy is not installed (`pip install py-spy`); profile skipped."]
    raw = tmp / "profile.txt"
    spy = subprocess.Popen(["py-spy", "record", "--pid", str(op.proc.pid), "--duration", str(seconds),
                            "--rate", "500", "--format", "raw", "--output", str(raw)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    client = Client(op.port)
    rng = random.Random(SEED + 7)
    path = f"/vod/{movie}.mp4?start="
    client.ttfb(path + "1", RANGE)
    count = 0
    while spy.poll() is None:
        client.ttfb(path + str(round(rng.uniform(0, duration - 10), 2)), RANGE)
        count += 1
    if spy.returncode != 0 or not raw.exists():
        return [f"py-spy failed: {spy.stderr.read().decode(errors='replace')[-300:]}"]
    total = idle = 0
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if "run_forever" not in stack:  # only the event-loop thread (idle executor threads wait in queue.get)
            continue
        samples = int(n)
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]  # per function, not per line
        total += samples
        if "select (selectors.py)" in frames[-1]:
            idle += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    if not total:
        return ["py-spy recorded no event-loop samples."]
    lines = [f"{count} warm `?start=` requests on {movie} (Range 0-65535, one client, keep-alive) while py-spy "
             f"sampled the server's event-loop thread for {seconds} s at 500 Hz: {total} samples, "
             f"{100 * idle / total:.1f}% of them idle in `select`. Shares are of all event-loop samples.", "",
             "Top functions by **inclusive** share (time on the stack):", "",
             "| share | function (file) |", "|---|---|"]
    shown = 0
    for frame, n in inclusive.most_common():
        if ("origin_proxy/" in frame or "aiohttp/" in frame) and "__main__" not in frame:
            lines.append(f"| {100 * n / total:.1f}% | `{frame}` |")
            shown += 1
            if shown == 25:
                break
    lines += ["", "Top functions by **own** (self) share:", "", "| share | function (file) |", "|---|---|"]
    for frame, n in own.most_common(15):
        lines.append(f"| {100 * n / total:.1f}% | `{frame}` |")
    return lines


# ---------------------------------------------------------------------------------------------------- whole body
def whole_body(a: Server, b: Server, path: str, rounds: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """curl of `path` from A and B alternately, `rounds` times each. Returns (MB/s, MB/s per core) per server
    name; per core = body MB / CPU seconds the serving process used during that transfer."""
    mbps: dict[str, list[float]] = {a.name: [], b.name: []}
    per_core: dict[str, list[float]] = {a.name: [], b.name: []}
    for server in (a, b):
        curl_mbps(server, path)  # page cache, upstream keep-alive connections
    for i in range(rounds):
        for server in ((a, b) if i % 2 == 0 else (b, a)):
            cpu_before = server.cpu_s()
            speed, received = curl_bytes_s(server, path)
            cpu = server.cpu_s() - cpu_before
            mbps[server.name].append(speed / 1e6)
            per_core[server.name].append(received / 1e6 / max(cpu, 0.01))  # psutil counts 10 ms ticks
    return mbps, per_core


def measure_upstream(op: Server, ng: Server, rounds: int) -> list[Row]:
    log("whole body through an HTTP upstream")
    mbps, per_core = whole_body(op, ng, f"/up/{BULK}", 2 * rounds)
    return [
        Row(f"whole body, {BULK}, HTTP upstream rule (Range GETs to a static nginx) vs nginx proxy_pass of the "
            f"same upstream, curl", "MB/s", mbps["origin_proxy"], mbps["nginx"], better="higher"),
        Row("same transfers: body MB per CPU second of the proxy process (origin_proxy; nginx's worker)",
            "MB/s per core", per_core["origin_proxy"], per_core["nginx"], better="higher",
            goal="≥ 400 MB/s per core", target=400.0, absolute=True),
    ]


# ---------------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[2])
    parser.add_argument("--quick", action="store_true",
                        help="10 min and 1 h movies only, fewer rounds; fragment-on-demand and memory on the 1 h movie")
    parser.add_argument("--long", action="store_true", help="also generate and measure the 8 h movie")
    parser.add_argument("--profile", action="store_true", help="py-spy the warm ?start= path of the longest movie")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"comma-separated subset of {','.join(PARTS)} (default: all); seek is the ?start= "
                             "TTFB, requests/s and local whole-body part")
    parser.add_argument("--op-tree", type=Path, default=ROOT,
                        help="run the origin_proxy package found in this directory (e.g. one commit exported with "
                             "`git archive <commit> origin_proxy | tar -x -C DIR`); default: this checkout")
    parser.add_argument("--starts", type=int, default=25, help="random ?start= values per TTFB measurement")
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--rerender", action="store_true",
                        help="rewrite the report and plot from bench/media/last_run.json without measuring")
    args = parser.parse_args(argv)
    if args.rerender:
        last = json.loads((MEDIA / "last_run.json").read_text())
        if last.get("seek"):
            plot(last["seek"], last["info"], last.get("growth", {}))
        write_report(args.out, last)
        return 0
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    OP_TREE["path"] = args.op_tree.resolve()
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown --parts {','.join(sorted(unknown))} (choose from {','.join(PARTS)})")

    movies = dict(MOVIES)
    if args.quick:
        movies = {k: v for k, v in movies.items() if k in ("movie_10m", "movie_1h")}
    if args.long:
        movies |= LONG_MOVIES
    command = "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])
    info = ensure_media(movies)
    main_movie = max(movies, key=movies.get)
    if args.long:
        main_movie = "movie_2h" if "movie_2h" in movies else main_movie
    rounds = 2 if args.quick else 3
    run: dict = {"command": command, "op_tree": op_tree_text(args.op_tree), "info": info, "parts": parts,
                 "rows": [], "seek": {}, "growth": {},
                 "upstream": [], "fod": [], "fod_facts": {}, "memory": [], "memory_facts": {},
                 "profile": ["Not run (pass `--profile`)."], "main_movie": main_movie}

    with tempfile.TemporaryDirectory(prefix="bench-") as tmpname:
        tmp = Path(tmpname)
        servers: list[Server] = []
        try:
            upstream = start_nginx(tmp, "nginx_upstream")
            servers.append(upstream)
            ng = start_nginx(tmp, "nginx", upstream_port=upstream.port)
            servers.append(ng)
            op = start_origin_proxy(tmp, "origin_proxy", upstream_port=upstream.port)
            servers.append(op)
            cold = start_origin_proxy(tmp, "origin_proxy_cold", cold=True)
            servers.append(cold)
            if "seek" in parts:
                measure_seek(run, op, cold, ng, movies, main_movie, rounds, args, tmp)
            if "upstream" in parts:
                run["upstream"] = [r.__dict__ for r in run.pop("local_body", [])] + \
                    [r.__dict__ for r in measure_upstream(op, ng, rounds)]
            if "fod" in parts:
                rows, run["fod_facts"] = fod.measure(op, cold, main_movie, tmp, args.quick, rounds)
                run["fod"] = [r.__dict__ for r in rows]
            if "memory" in parts:
                run["memory"], run["memory_facts"] = measure_memory(tmp, upstream, info, main_movie, args.quick)
            if args.profile:
                log("profiling")
                run["profile"] = profile(op, main_movie, info[main_movie]["duration"], 20, tmp)
        finally:
            for s in reversed(servers):
                s.stop()
    run.pop("local_body", None)
    run["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    run["machine"] = machine()
    (MEDIA / "last_run.json").write_text(json.dumps(run))
    if run["seek"]:
        plot(run["seek"], info, run["growth"])
    write_report(args.out, run)
    log(f"wrote {args.out}" + (f" and {PLOT}" if run["seek"] else ""))
    for r in (Row(**d) for key in ("rows", "upstream", "fod", "memory") for d in run[key]):
        log(f"{r.what}: median {statistics.median(r.a):.4g}" + (f", ratio {r.ratio:.2f}" if r.ratio else ""))
    return 0


def op_tree_text(tree: Path) -> str:
    """Which origin_proxy the run measured, for the report."""
    if tree.resolve() == ROOT:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "origin_proxy"],
                               capture_output=True, text=True).stdout.strip()
        return f"this checkout, commit {head}" + (" with uncommitted changes under origin_proxy/" if dirty else "")
    return f"the origin_proxy package in `{tree}`"


def measure_seek(run: dict, op: Server, cold: Server, ng: Server, movies: dict[str, int], main_movie: str,
                 rounds: int, args: argparse.Namespace, tmp: Path) -> None:
    """The ?start= part: cold and warm TTFB, RSS after each length, wrk requests/s, local whole body."""
    info = run["info"]
    rows: list[Row] = []
    duration = info[main_movie]["duration"]
    rng = random.Random(SEED)
    log("cold ?start= TTFB")
    r = interleaved_ttfb(cold, ng, main_movie, duration, args.starts, False, rng)
    rows.append(Row(f"`?start=` TTFB, cold (op cache off), {main_movie}, {args.starts} starts", "ms",
                    r["origin_proxy_cold"], r["nginx"], goal="≤ 1.5×", target=1.5))

    log("warm ?start= TTFB against movie length")
    metrics = Client(op.port)
    rss, cached = op.rss_bytes(), memory.l1_cache_bytes(metrics)
    for name in movies:
        # the same seed for every movie: the starts fall at the same fractions of each movie's length,
        # so the lengths differ and the share of the tables after the start does not
        r = interleaved_ttfb(op, ng, name, info[name]["duration"], args.starts, True, random.Random(SEED + 1))
        run["seek"][name] = r
        rows.append(Row(f"`?start=` TTFB, warm, {name}, {args.starts} starts", "ms", r["origin_proxy"],
                        r["nginx"], goal="≤ 0.5×" if name == main_movie else "log growth",
                        target=0.5 if name == main_movie else None))
        now_rss, now_cached = op.rss_bytes(), memory.l1_cache_bytes(metrics)
        run["growth"][name] = {"op_rss": now_rss, "op_rss_added": now_rss - rss, "op_cache": now_cached,
                               "op_cache_added": now_cached - cached, "nginx_rss": ng.rss_bytes()}
        rss, cached = now_rss, now_cached
    metrics.close()

    log("TTFB floor: a bare aiohttp handler against nginx")
    floor = start_floor_server()
    try:
        r = interleaved_ttfb(floor, ng, main_movie, duration, args.starts, True, random.Random(SEED + 1))
    finally:
        floor.stop()
    rows.append(Row(f"TTFB floor: bare aiohttp handler answering the same request with 64 KiB (no media work; "
                    f"bench/floor_server.py) vs nginx warm, {main_movie}", "ms", r["floor"], r["nginx"]))

    log("wrk ?start= requests/s")
    script = tmp / "start.lua"
    script.write_text(WRK_LUA.format(seed=SEED, hundredths=int((duration - 10) * 100), movie=main_movie))
    rps: dict[str, list[float]] = {"origin_proxy": [], "nginx": []}
    wrk_seconds = 10
    for i in range(rounds):
        for server in ((op, ng) if i % 2 == 0 else (ng, op)):
            rps[server.name].append(wrk_rps(server, script, wrk_seconds))
            log(f"  {server.name}: {rps[server.name][-1]:.0f} req/s")
    rows.append(Row(f"`?start=` requests/s, wrk -t1 -c16 -d{wrk_seconds}s, {main_movie}, Range 0-65535",
                    "req/s", rps["origin_proxy"], rps["nginx"], better="higher", goal="≥ 1.0×", target=1.0))

    log("whole-body throughput")
    mbps, per_core = whole_body(op, ng, f"/vod/{BULK}", 2 * rounds)
    rows.append(Row(f"whole body, {BULK} (512 MiB, page cache), file:// rule vs nginx static, curl",
                    "MB/s", mbps["origin_proxy"], mbps["nginx"], better="higher", goal="≥ 0.8×", target=0.8))
    run["rows"] = [row.__dict__ for row in rows]
    run["local_body"] = [Row(f"whole body, {BULK}, file:// rule vs nginx static (the row in Results): body MB per "
                             "CPU second of the serving process", "MB/s per core", per_core["origin_proxy"],
                             per_core["nginx"], better="higher")]


def start_floor_server() -> Server:
    """bench/floor_server.py on a free port, named "floor"."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bench.floor_server", str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc)
    return Server("floor", port, proc)


def measure_memory(tmp: Path, upstream: Server, info: dict[str, dict], main_movie: str,
                   quick: bool) -> tuple[list[dict], dict]:
    count = 20 if quick else CACHED_MOVIES
    duration, moov = info[main_movie]["duration"], info[main_movie]["moov"]
    log(f"memory: {count} distinct {main_movie} in the metadata cache")
    # a fresh instance, so that nothing else sits in its cache; 8 GiB holds every copy with room to spare
    mem = start_origin_proxy(tmp, "origin_proxy_mem", cache_bytes=8 << 30)
    try:
        rows, facts = memory.cache_rss(mem, main_movie, moov, count, duration)
    finally:
        mem.stop()
    readers = 100 if quick else SLOW_READERS
    log(f"memory: {readers} slow readers")
    # connections_per_host: the default pool (32 per upstream host) would leave all but 32 upstream-proxied
    # readers waiting for a connection; the measurement is about memory per connection, so the pool is widened
    def slow_op() -> Server:
        return start_origin_proxy(tmp, "origin_proxy_slow", upstream_port=upstream.port,
                                  extra_config="upstream:\n  connections_per_host: 2000\n")

    def slow_nginx() -> Server:
        return start_nginx(tmp, "nginx_slow", upstream_port=upstream.port)

    runs = memory.slow_readers([("origin_proxy, file:// rule", slow_op, f"/vod/{BULK}"),
                                ("nginx, static file", slow_nginx, f"/vod/{BULK}"),
                                ("origin_proxy, HTTP upstream rule", slow_op, f"/up/{BULK}"),
                                ("nginx, proxy_pass", slow_nginx, f"/up/{BULK}")],
                               readers, 1 if quick else 2, settle_s=5.0 if quick else 8.0,
                               hold_s=5.0 if quick else 10.0)
    rows += memory.slow_reader_rows(runs, readers, 5.0 if quick else 10.0)
    facts["slow_readers"] = {"count": readers, "runs": runs}
    return [r.__dict__ for r in rows], facts


def write_report(out: Path, run: dict) -> None:
    """Fill bench/report_template.md with one run's results (a fresh run or bench/media/last_run.json)."""
    info = run["info"]
    media = ["| file | duration | video samples | audio samples | B-frames | moov | file size | generated in |",
             "|---|---|---|---|---|---|---|---|"]
    for name, i in info.items():
        gen = f"{i['generated_in_s']:.0f} s" if i["generated_in_s"] else "(existing)"
        media.append(f"| {name}.mp4 | {i['duration']:.0f} s | {i['video_samples']} | {i['audio_samples']} | "
                     f"{'yes' if i['b_frames'] else 'no'} | {i['moov'] / 1e6:.2f} MB | {i['size'] / 1e6:.1f} MB | "
                     f"{gen} |")
    growth = run.get("growth", {})
    seek_lines = ["| movie | origin_proxy warm (ms) | nginx (ms) | ratio | origin_proxy RSS after it (MB) | RSS added "
                  "by it (MB) | its cache count (MB) | added ÷ moov | nginx worker RSS (MB) |",
                  "|---|---|---|---|---|---|---|---|---|"]
    for name, r in run.get("seek", {}).items():
        a, b = statistics.median(r["origin_proxy"]), statistics.median(r["nginx"])
        g = growth.get(name)
        mem = "| — | — | — | — | —"
        if g:
            mem = (f"| {g['op_rss'] / 1e6:.1f} | {g['op_rss_added'] / 1e6:.1f} | {g['op_cache_added'] / 1e6:.1f} | "
                   f"{g['op_rss_added'] / info[name]['moov']:.1f}× | {g['nginx_rss'] / 1e6:.1f}")
        seek_lines.append(f"| {name} | {a * 1000:.2f} | {b * 1000:.2f} | {a / b:.2f}× {mem} |")
    rows = [Row(**d) for d in run.get("rows", [])]
    fod_facts = run.get("fod_facts") or {}
    fod_text = ""
    if fod_facts:
        sizes = ", ".join(f"{k} {v / 1e3:.1f} kB" for k, v in fod_facts["manifest_bytes"].items())
        fod_text = (f"{fod_facts['movie']}: {fod_facts['segments']} video segments ({fod_facts['video_rep']}); "
                    f"{sizes}; a video segment (moof + mdat) is {fod_facts['segment_bytes'] / 1e3:.1f} kB (median), "
                    f"ffmpeg's file for the same span (ftyp + moov + its fragments) "
                    f"{fod_facts['ffmpeg_segment_bytes'] / 1e3:.1f} kB (the last one written).")
    mem_facts = run.get("memory_facts") or {}
    mem_text = ""
    if mem_facts:
        rss = mem_facts["rss"]
        mem_text = (f"origin_proxy RSS: {rss['start'] / 1e6:.1f} MB after start-up, {rss['one'] / 1e6:.1f} MB with "
                    f"one movie cached, {rss['all'] / 1e6:.1f} MB with {mem_facts['count']}, "
                    f"{rss['all_packaged'] / 1e6:.1f} MB once each also had its master.m3u8. The cache counted "
                    f"{mem_facts['cache_bytes'] / 1e6:.1f} MB, then {mem_facts['cache_bytes_packaged'] / 1e6:.1f} MB. "
                    f"Moov: {mem_facts['moov_bytes'] / 1e6:.2f} MB.")
        slow = mem_facts.get("slow_readers")
        if slow:
            mem_text += ("\n\nSlow readers, every run (RSS before → settled → after the hold, readers that got "
                         "bytes):\n\n")
            mem_text += "| case | run | RSS before (MB) | settled (MB) | after hold (MB) | readers reading | errors |\n"
            mem_text += "|---|---|---|---|---|---|---|\n"
            for label, runs in slow["runs"].items():
                for i, r in enumerate(runs, 1):
                    mem_text += (f"| {label} | {i} | {r['before'] / 1e6:.1f} | {r['first'] / 1e6:.1f} | "
                                 f"{r['second'] / 1e6:.1f} | {r['reading']} of {slow['count']} | {r['errors']} |\n")
    template = (BENCH / "report_template.md").read_text()
    out.write_text(_keep_seek_section(out, template.format(
        command=run["command"], machine="\n".join(run.get("machine") or machine()), media="\n".join(media),
        table=table(rows) if rows else "The `?start=` part was not run in this run (see `--parts`).",
        seek="\n".join(seek_lines), profile="\n".join(run.get("profile") or []),
        date=run.get("date") or time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        plot=PLOT.relative_to(ROOT).as_posix(), op_tree=run.get("op_tree", "this checkout"),
        parts=", ".join(run.get("parts", ["seek"])),
        upstream=ref_table([Row(**d) for d in run.get("upstream", [])]),
        fod=ref_table([Row(**d) for d in run.get("fod", [])]), fod_facts=fod_text,
        memory=ref_table([Row(**d) for d in run.get("memory", [])]), memory_facts=mem_text)))


SEEK_SECTION = ("<!-- seek-section:begin -->", "<!-- seek-section:end -->")


def _keep_seek_section(out: Path, text: str) -> str:
    """`text` with the issue-13 seek section of the file being replaced (written by `python -m bench.seek` and by
    hand, between the SEEK_SECTION markers) carried over, before "## Reproduce"."""
    begin, end = SEEK_SECTION
    old = out.read_text() if out.exists() else ""
    if begin not in old or end not in old:
        return text
    section = begin + old.split(begin, 1)[1].split(end, 1)[0] + end + "\n\n"
    head, sep, tail = text.partition("## Reproduce")
    return head + section + sep + tail if sep else text + "\n" + section


if __name__ == "__main__":
    sys.exit(main())
