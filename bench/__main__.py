"""python -m bench [--quick] [--long] [--profile] [--out BENCHMARKS.md]

Runs origin_proxy and Debian's nginx (ngx_http_mp4_module, mp4_start_key_frame on, one worker) side by side on
the same files in bench/media/, interleaving every measurement (A B A B ...), and writes a Markdown report with
medians, min-max and origin_proxy/nginx ratios, plus bench/seek_latency.png.
"""
from __future__ import annotations

import argparse
import collections
import http.client
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
MEDIA = BENCH / "media"
PLOT = BENCH / "seek_latency.png"
SEED = 4

# name -> seconds. 160x90 testsrc2, x264 superfast with 3 B-frames, GOP 50, ~16 kb/s video + 16 kb/s mono AAC:
# tiny files whose sample tables (what a seek costs) are as long as a real movie of the same duration.
MOVIES = {"movie_10m": 600, "movie_1h": 3600, "movie_2h": 7200}
LONG_MOVIES = {"movie_8h": 28800}
BULK = "bulk_512m.mp4"  # whole-body throughput: 512 MiB of random bytes, served as-is (no ?start=)
BULK_BYTES = 512 * 1024 * 1024


def log(*args: object) -> None:
    print(time.strftime("%H:%M:%S"), *args, file=sys.stderr, flush=True)


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


# ---------------------------------------------------------------------------------------------------- servers
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} not listening after {timeout} s")


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen
    prefix: str = "/vod/"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_nginx(tmp: Path) -> Server:
    port = free_port()
    for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp / d).mkdir(exist_ok=True)
    conf = tmp / "nginx.conf"
    conf.write_text(f"""
worker_processes 1;
daemon off;
master_process on;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    types {{ video/mp4 mp4; }}
    default_type application/octet-stream;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location /vod/ {{
            alias {MEDIA}/;
            mp4;
            mp4_start_key_frame on;
            mp4_buffer_size 1m;
            mp4_max_buffer_size 64m;
        }}
    }}
}}
""")
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(tmp)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_port(port, proc)
    return Server("nginx", port, proc)


def start_origin_proxy(tmp: Path, name: str, cold: bool = False) -> Server:
    port = free_port()
    remap = tmp / f"{name}-remap.yaml"
    remap.write_text(f"remap:\n  - from: /vod/\n    to: file://{MEDIA}/\n")
    config = tmp / f"{name}.yaml"
    # cold: a metadata cache of 1 byte cannot hold any movie (cachetools refuses the value), so every
    # ?start= request reads and parses the moov again, as after a restart or an eviction.
    cache = "cache:\n  max_bytes: 1\n" if cold else ""
    config.write_text(f'access_log: "off"\nworkers: 1\nlog_level: WARNING\n{cache}')
    proc = subprocess.Popen([sys.executable, "-m", "origin_proxy", "serve", "--config", str(config),
                             "--remap", str(remap), "--host", "127.0.0.1", "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=open(tmp / f"{name}.log", "wb"))
    wait_port(port, proc)
    return Server(name, port, proc)


# ---------------------------------------------------------------------------------------------------- clients
class Client:
    """One keep-alive HTTP/1.1 connection; ttfb() is the time from sending the request to the parsed status line
    and headers (the body, at most 64 KiB here, is read afterwards and not timed)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def ttfb(self, path: str, headers: dict[str, str] | None = None) -> float:
        for attempt in (0, 1):
            try:
                started = time.perf_counter()
                self.conn.request("GET", path, headers=headers or {})
                response = self.conn.getresponse()
                elapsed = time.perf_counter() - started
                response.read()
                if response.status not in (200, 206):
                    raise RuntimeError(f"{self.port} {path}: HTTP {response.status}")
                return elapsed
            except (http.client.RemoteDisconnected, ConnectionError, BrokenPipeError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                if attempt:
                    raise
        raise AssertionError


RANGE = {"Range": "bytes=0-65535"}


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


def wrk_rps(server: Server, script: Path, seconds: int) -> float:
    out = subprocess.run(["wrk", "-t", "1", "-c", "16", "-d", f"{seconds}s", "-s", str(script),
                          f"http://127.0.0.1:{server.port}/"], check=True, capture_output=True, text=True).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk against {server.name}: non-2xx answers\n{out}")
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    raise RuntimeError(out)


def curl_mbps(server: Server, path: str) -> float:
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{speed_download} %{http_code}",
                          f"http://127.0.0.1:{server.port}{path}"], check=True, capture_output=True,
                         text=True).stdout.split()
    if out[1] != "200":
        raise RuntimeError(f"{server.name} {path}: HTTP {out[1]}")
    return float(out[0]) / 1e6


# ---------------------------------------------------------------------------------------------------- report
@dataclass
class Row:
    what: str
    unit: str
    a: list[float]  # origin_proxy
    b: list[float]  # nginx
    better: str = "lower"  # lower | higher
    goal: str = ""
    target: float | None = None  # the issue-4 ratio goal, if any

    @property
    def verdict(self) -> str:
        if self.target is None:
            return "see plot"
        met = self.ratio <= self.target if self.better == "lower" else self.ratio >= self.target
        return "met" if met else "**missed**"

    @property
    def ratio(self) -> float:
        return statistics.median(self.a) / statistics.median(self.b)


def fmt(values: list[float], scale: float = 1.0) -> str:
    med = statistics.median(values) * scale
    lo, hi = min(values) * scale, max(values) * scale
    digits = 2 if med < 100 else 0
    return f"{med:.{digits}f} ({lo:.{digits}f}–{hi:.{digits}f})"


def table(rows: list[Row]) -> str:
    lines = ["| measurement | unit | origin_proxy median (min–max) | nginx median (min–max) | ratio op/nginx | goal | "
             "verdict |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        scale = 1000.0 if r.unit == "ms" else 1.0
        lines.append(f"| {r.what} | {r.unit} | {fmt(r.a, scale)} | {fmt(r.b, scale)} | **{r.ratio:.2f}×** "
                     f"({r.better} is better) | {r.goal} | {r.verdict} |")
    return "\n".join(lines)


def plot(seek: dict[str, dict[str, list[float]]], info: dict[str, dict]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    names = list(seek)
    hours = [info[n]["duration"] / 3600 for n in names]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    labels = {"origin_proxy": "origin_proxy (warm cache)", "nginx": "nginx (parses the moov every request)"}
    for server, style in (("origin_proxy", "o-"), ("nginx", "s--")):
        med = [statistics.median(seek[n][server]) * 1000 for n in names]
        lo = [m - min(seek[n][server]) * 1000 for m, n in zip(med, names)]
        hi = [max(seek[n][server]) * 1000 - m for m, n in zip(med, names)]
        ax.errorbar(hours, med, yerr=[lo, hi], fmt=style, capsize=3, label=f"{labels[server]}: median, min–max")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(hours)
    ax.set_xticklabels([n.removeprefix("movie_") for n in names])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel("movie length")
    ax.set_ylabel("?start= TTFB, Range 0-65535 (ms)")
    ax.set_title("Seek latency against movie length")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
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


# ---------------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[2])
    parser.add_argument("--quick", action="store_true", help="10 min and 1 h movies only, fewer rounds")
    parser.add_argument("--long", action="store_true", help="also generate and measure the 8 h movie")
    parser.add_argument("--profile", action="store_true", help="py-spy the warm ?start= path of the longest movie")
    parser.add_argument("--starts", type=int, default=25, help="random ?start= values per TTFB measurement")
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--rerender", action="store_true",
                        help="rewrite the report and plot from bench/media/last_run.json without measuring")
    args = parser.parse_args(argv)
    if args.rerender:
        last = json.loads((MEDIA / "last_run.json").read_text())
        plot(last["seek"], last["info"])
        write_report(args.out, last["command"], last["info"], [Row(**r) for r in last["rows"]], last["seek"],
                     last["profile"], args, last.get("date"), last.get("machine"))
        return 0

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
    duration = info[main_movie]["duration"]
    rng = random.Random(SEED)
    rounds = 2 if args.quick else 3
    rows: list[Row] = []
    seek: dict[str, dict[str, list[float]]] = {}

    with tempfile.TemporaryDirectory(prefix="bench-") as tmpname:
        tmp = Path(tmpname)
        ng = start_nginx(tmp)
        op = start_origin_proxy(tmp, "origin_proxy")
        cold = start_origin_proxy(tmp, "origin_proxy_cold", cold=True)
        try:
            log("cold ?start= TTFB")
            r = interleaved_ttfb(cold, ng, main_movie, duration, args.starts, False, rng)
            rows.append(Row(f"`?start=` TTFB, cold (op cache off), {main_movie}, {args.starts} starts", "ms",
                            r["origin_proxy_cold"], r["nginx"], goal="≤ 1.5×", target=1.5))

            log("warm ?start= TTFB against movie length")
            for name in movies:
                # the same seed for every movie: the starts fall at the same fractions of each movie's length,
                # so the lengths differ and the share of the tables after the start does not
                r = interleaved_ttfb(op, ng, name, info[name]["duration"], args.starts, True,
                                     random.Random(SEED + 1))
                seek[name] = r
                rows.append(Row(f"`?start=` TTFB, warm, {name}, {args.starts} starts", "ms", r["origin_proxy"],
                                r["nginx"], goal="≤ 0.5×" if name == main_movie else "log growth",
                                target=0.5 if name == main_movie else None))

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
            mbps: dict[str, list[float]] = {"origin_proxy": [], "nginx": []}
            curl_mbps(op, f"/vod/{BULK}")  # page cache
            for i in range(2 * rounds):
                for server in ((op, ng) if i % 2 == 0 else (ng, op)):
                    mbps[server.name].append(curl_mbps(server, f"/vod/{BULK}"))
            rows.append(Row(f"whole body, {BULK} (512 MiB, page cache), file:// rule vs nginx static, curl",
                            "MB/s", mbps["origin_proxy"], mbps["nginx"], better="higher", goal="≥ 0.8×", target=0.8))

            prof = ["Not run (pass `--profile`)."]
            if args.profile:
                log("profiling")
                prof = profile(op, main_movie, duration, 20, tmp)
        finally:
            for s in (op, cold, ng):
                s.stop()

    (MEDIA / "last_run.json").write_text(json.dumps({
        "command": command, "info": info, "rows": [r.__dict__ for r in rows], "seek": seek, "profile": prof,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine()}))
    plot(seek, info)
    write_report(args.out, command, info, rows, seek, prof, args)
    log(f"wrote {args.out} and {PLOT}")
    for r in rows:
        log(f"{r.what}: ratio {r.ratio:.2f}")
    return 0


def write_report(out: Path, command: str, info: dict[str, dict], rows: list[Row],
                 seek: dict[str, dict[str, list[float]]], prof: list[str], args: argparse.Namespace,
                 date: str | None = None, machine_lines: list[str] | None = None) -> None:
    media = ["| file | duration | video samples | audio samples | B-frames | moov | file size | generated in |",
             "|---|---|---|---|---|---|---|---|"]
    for name, i in info.items():
        gen = f"{i['generated_in_s']:.0f} s" if i["generated_in_s"] else "(existing)"
        media.append(f"| {name}.mp4 | {i['duration']:.0f} s | {i['video_samples']} | {i['audio_samples']} | "
                     f"{'yes' if i['b_frames'] else 'no'} | {i['moov'] / 1e6:.2f} MB | {i['size'] / 1e6:.1f} MB | "
                     f"{gen} |")
    seek_lines = ["| movie | origin_proxy warm (ms) | nginx (ms) | ratio |", "|---|---|---|---|"]
    for name, r in seek.items():
        a, b = statistics.median(r["origin_proxy"]), statistics.median(r["nginx"])
        seek_lines.append(f"| {name} | {a * 1000:.2f} | {b * 1000:.2f} | {a / b:.2f}× |")
    template = (BENCH / "report_template.md").read_text()
    out.write_text(template.format(
        command=command, machine="\n".join(machine_lines or machine()), media="\n".join(media), table=table(rows),
        seek="\n".join(seek_lines), profile="\n".join(prof),
        date=date or time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        plot=PLOT.relative_to(ROOT).as_posix()))


if __name__ == "__main__":
    sys.exit(main())
