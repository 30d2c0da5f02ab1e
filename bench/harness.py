"""What every bench measurement shares: paths, the servers (nginx, origin_proxy) as subprocesses, one keep-alive
HTTP client, wrk, and the process accounting (RSS and CPU time through psutil)."""
from __future__ import annotations

import http.client
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
MEDIA = BENCH / "media"
SEED = 4
# The directory whose origin_proxy package the bench runs (`--op-tree`): this checkout by default. `python -m`
# puts the working directory first on sys.path, ahead of an editable install of this checkout.
OP_TREE = {"path": ROOT}
RANGE = {"Range": "bytes=0-65535"}


def log(*args: object) -> None:
    print(time.strftime("%H:%M:%S"), *args, file=sys.stderr, flush=True)


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

    def serving(self) -> list[psutil.Process]:
        """The processes that serve requests: nginx's workers (not its master), origin_proxy's one process."""
        root = psutil.Process(self.proc.pid)
        children = root.children(recursive=True)
        return children if self.name.startswith("nginx") and children else [root]

    def rss_bytes(self) -> int:
        """Resident set size of the serving processes, summed."""
        return sum(p.memory_info().rss for p in self.serving())

    def cpu_s(self) -> float:
        """User + system CPU seconds the serving processes have used so far (every thread included)."""
        total = 0.0
        for p in self.serving():
            t = p.cpu_times()
            total += t.user + t.system
        return total


def start_nginx(tmp: Path, name: str = "nginx", upstream_port: int | None = None) -> Server:
    """nginx with one worker: /vod/ is bench/media/ with the mp4 module (static for anything without ?start=);
    with `upstream_port`, /up/ is proxy_pass to that server's /vod/ (keep-alive, buffers like origin_proxy's
    256 KiB chunks, no temporary files)."""
    port = free_port()
    home = tmp / name
    for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (home / d).mkdir(parents=True, exist_ok=True)
    proxy = ""
    if upstream_port is not None:
        proxy = f"""
    upstream bench_upstream {{ server 127.0.0.1:{upstream_port}; keepalive 64; }}"""
    proxy_location = ""
    if upstream_port is not None:
        proxy_location = """
        location /up/ {
            proxy_pass http://bench_upstream/vod/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering on;
            proxy_buffer_size 64k;
            proxy_buffers 4 256k;
            proxy_busy_buffers_size 256k;
            proxy_max_temp_file_size 0;
        }"""
    conf = home / "nginx.conf"
    conf.write_text(f"""
worker_processes 1;
worker_rlimit_nofile 8192;
daemon off;
master_process on;
pid {home}/nginx.pid;
error_log {home}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    types {{ video/mp4 mp4; }}
    default_type application/octet-stream;
    client_body_temp_path {home}/client_body;
    proxy_temp_path {home}/proxy;
    fastcgi_temp_path {home}/fastcgi;
    uwsgi_temp_path {home}/uwsgi;
    scgi_temp_path {home}/scgi;{proxy}
    server {{
        listen 127.0.0.1:{port} backlog=1024;
        location /vod/ {{
            alias {MEDIA}/;
            mp4;
            mp4_start_key_frame on;
            mp4_buffer_size 1m;
            mp4_max_buffer_size 64m;
        }}{proxy_location}
    }}
}}
""")
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(home)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_port(port, proc)
    return Server(name, port, proc)


def start_origin_proxy(tmp: Path, name: str, cold: bool = False, upstream_port: int | None = None,
                       cache_bytes: int | None = None, extra_config: str = "") -> Server:
    """origin_proxy with one process: /vod/ is file://bench/media/; with `upstream_port`, /up/ is the HTTP
    upstream http://127.0.0.1:<upstream_port>/vod/ (read with Range GETs)."""
    port = free_port()
    remap = tmp / f"{name}-remap.yaml"
    rules = f"remap:\n  - from: /vod/\n    to: file://{MEDIA}/\n"
    if upstream_port is not None:
        rules += f"  - from: /up/\n    to: http://127.0.0.1:{upstream_port}/vod/\n"
    remap.write_text(rules)
    config = tmp / f"{name}.yaml"
    # cold: a metadata cache of 1 byte cannot hold any movie (cachetools refuses the value), so every
    # ?start= request reads and parses the moov again, as after a restart or an eviction.
    cache = ""
    if cold:
        cache = "cache:\n  max_bytes: 1\n"
    elif cache_bytes is not None:
        cache = f"cache:\n  max_bytes: {cache_bytes}\n  metadata_ttl_s: 3600\n"
    config.write_text(f'access_log: "off"\nworkers: 1\nlog_level: WARNING\n{cache}{extra_config}')
    proc = subprocess.Popen([sys.executable, "-m", "origin_proxy", "serve", "--config", str(config),
                             "--remap", str(remap), "--host", "127.0.0.1", "--port", str(port)], cwd=OP_TREE["path"],
                            stdout=subprocess.DEVNULL, stderr=open(tmp / f"{name}.log", "wb"))
    wait_port(port, proc)
    return Server(name, port, proc)


# ---------------------------------------------------------------------------------------------------- clients
@dataclass
class Timed:
    status: int
    ttfb_s: float  # request sent -> status line and headers parsed
    total_s: float  # request sent -> last body byte read
    body: bytes = field(repr=False)


class Client:
    """One keep-alive HTTP/1.1 connection; ttfb() is the time from sending the request to the parsed status line
    and headers (the body, at most 64 KiB here, is read afterwards and not timed)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def get(self, path: str, headers: dict[str, str] | None = None) -> Timed:
        """GET `path`; raises RuntimeError unless the answer is 200 or 206."""
        for attempt in (0, 1):
            try:
                started = time.perf_counter()
                self.conn.request("GET", path, headers=headers or {})
                response = self.conn.getresponse()
                ttfb = time.perf_counter() - started
                body = response.read()
                total = time.perf_counter() - started
                if response.status not in (200, 206):
                    raise RuntimeError(f"{self.port} {path}: HTTP {response.status}")
                return Timed(response.status, ttfb, total, body)
            except (http.client.RemoteDisconnected, ConnectionError, BrokenPipeError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                if attempt:
                    raise
        raise AssertionError

    def ttfb(self, path: str, headers: dict[str, str] | None = None) -> float:
        return self.get(path, headers).ttfb_s

    def close(self) -> None:
        self.conn.close()


def wrk_rps(server: Server, script: Path, seconds: int, connections: int = 16) -> float:
    out = subprocess.run(["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "-s", str(script),
                          f"http://127.0.0.1:{server.port}/"], check=True, capture_output=True, text=True).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk against {server.name}: non-2xx answers\n{out}")
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    raise RuntimeError(out)


def curl_bytes_s(server: Server, path: str) -> tuple[float, int]:
    """(curl's speed_download in bytes/s, bytes received) of one whole GET to /dev/null; raises unless 200."""
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{speed_download} %{http_code} %{size_download}",
                          f"http://127.0.0.1:{server.port}{path}"], check=True, capture_output=True,
                         text=True).stdout.split()
    if out[1] != "200":
        raise RuntimeError(f"{server.name} {path}: HTTP {out[1]}")
    return float(out[0]), int(out[2])


def curl_mbps(server: Server, path: str) -> float:
    return curl_bytes_s(server, path)[0] / 1e6


# ---------------------------------------------------------------------------------------------------- report rows
@dataclass
class Row:
    """One measurement: origin_proxy's values (`a`) against a reference's (`b`, named by `ref`).

    `target` is the issue-4 goal: on the ratio a/b by default, on origin_proxy's median itself when `absolute`.
    `verdict_text` replaces the computed verdict (goals that are judged from more than one number)."""

    what: str
    unit: str
    a: list[float]  # origin_proxy
    b: list[float]  # the reference (nginx unless `ref` says otherwise); empty when there is none
    better: str = "lower"  # lower | higher
    goal: str = ""
    target: float | None = None
    ref: str = "nginx"
    absolute: bool = False
    verdict_text: str = ""

    @property
    def verdict(self) -> str:
        if self.verdict_text:
            return self.verdict_text
        if self.target is None:
            return "see plot" if self.goal == "log growth" else "—"
        value = statistics.median(self.a) if self.absolute else self.ratio
        if value is None:
            return "—"
        met = value <= self.target if self.better == "lower" else value >= self.target
        return "met" if met else "**missed**"

    @property
    def ratio(self) -> float | None:
        if not self.b or not self.a or statistics.median(self.b) == 0:
            return None
        return statistics.median(self.a) / statistics.median(self.b)


def fmt(values: list[float], scale: float = 1.0) -> str:
    if not values:
        return "—"
    med = statistics.median(values) * scale
    digits = 2 if abs(med) < 100 else 0
    if len(values) == 1:
        return f"{med:.{digits}f}"
    lo, hi = min(values) * scale, max(values) * scale
    return f"{med:.{digits}f} ({lo:.{digits}f}–{hi:.{digits}f})"


def table(rows: list[Row]) -> str:
    """The main table: origin_proxy against nginx."""
    lines = ["| measurement | unit | origin_proxy median (min–max) | nginx median (min–max) | ratio op/nginx "
             "| goal | verdict |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        scale = 1000.0 if r.unit == "ms" else 1.0
        lines.append(f"| {r.what} | {r.unit} | {fmt(r.a, scale)} | {fmt(r.b, scale)} | **{r.ratio:.2f}×** "
                     f"({r.better} is better) | {r.goal} | {r.verdict} |")
    return "\n".join(lines)


def ref_table(rows: list[Row]) -> str:
    """A section's table, where each row names its own reference (nginx, ffmpeg, the moov size, or none)."""
    if not rows:
        return "Not run in this run (see `--parts`)."
    lines = ["| measurement | unit | origin_proxy median (min–max) | reference: median (min–max) | ratio op/ref | "
             "goal | verdict |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        scale = 1000.0 if r.unit == "ms" else 1.0
        ref = f"{r.ref}: {fmt(r.b, scale)}" if r.b else "—"
        ratio = f"**{r.ratio:.2f}×** ({r.better} is better)" if r.ratio is not None else "—"
        lines.append(f"| {r.what} | {r.unit} | {fmt(r.a, scale)} | {ref} | {ratio} | {r.goal or '—'} | "
                     f"{r.verdict} |")
    return "\n".join(lines)
