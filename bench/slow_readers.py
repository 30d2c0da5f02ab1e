"""Slow readers (issue 15): what one reader of a long clip costs the server while it reads at a phone's pace.

    python3 -m bench.slow_readers [--file-readers 300] [--http-readers 60] [--segment-readers 100] [--hold 20]

The load of the issue, scaled to a 2-core machine: readers with a 16 KiB SO_RCVBUF open `movie_2h.mp4?start=100`
over 5 s (a 2 h movie, ~490k samples, a ~5 MB clip head), and once all have their headers each reads 4 KB/s for
`--hold` seconds. One run, side by side:

- origin_proxy, file rule; origin_proxy, HTTP rule (its upstream: a bare aiohttp static server, another process);
- nginx with its mp4 module, one worker (skipped with a message when nginx is not installed);
- the floor: a bare aiohttp handler writing one shared head of the same size in 64 KiB slices, then `sendfile`;
- origin_proxy serving slow readers of one HLS segment and of one Smooth fragment of a `.ism` set;
- a burst of 1,000 distinct first clips (each one head build; clients take the first KiB and leave) with head
  builds in threads and on the loop, for /healthz.

Per case: RSS per reader ((peak - baseline) / N, serving processes), CPU milliseconds per reader for the burst
(until every reader had its headers), `/healthz` probes missed (1 s timeout, one a second) during the burst and
during the hold, and after the readers left: open fds and upstream connections of the server. Media is generated
into bench/media/ once (ffmpeg). Results: a Markdown table on stdout, JSON in bench/media/slow_readers.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from .harness import MEDIA, OP_TREE, ROOT, Server, free_port, log, start_nginx, start_origin_proxy, wait_port

MOVIE = "movie_2h"
CLIP = f"{MOVIE}.mp4?start=100"
RECV_BUFFER = 16 * 1024
READ_BYTES = 4096  # per reader and second
OPEN_OVER_S = 5.0
SLICE = 64 * 1024


# ---------------------------------------------------------------------------------------------------- media
def ensure_movie() -> Path:
    """bench/media/movie_2h.mp4 as bench/__main__.py makes it (160x90, 25 fps + 44.1 kHz AAC: ~490k samples)."""
    path = MEDIA / f"{MOVIE}.mp4"
    if not path.exists():
        from .__main__ import ffmpeg_movie
        log(f"generating {path.name} with ffmpeg (a few minutes, once)")
        ffmpeg_movie(path, 7200)
    return path


def ensure_ism_set() -> Path:
    folder = MEDIA / "ism_set"
    if not (folder / "set.ism").exists():
        sys.path.insert(0, str(ROOT / "tests"))
        from ism_sets import make_ism_set
        folder.mkdir(parents=True, exist_ok=True)
        log("generating a .ism set with ffmpeg")
        make_ism_set(folder, 60.0)
    return folder / "set.ism"


def moov_bytes(path: Path) -> int:
    from .__main__ import moov_size
    return moov_size(path)


# ---------------------------------------------------------------------------------------------------- servers
def start_upstream(root: Path) -> Server:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bench.slow_readers", "--serve-upstream", str(port), str(root)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc)
    return Server("upstream", port, proc)


def start_floor(movie: Path, head_bytes: int) -> Server:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bench.slow_readers", "--serve-floor", str(port), str(movie),
                             str(head_bytes)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc)
    return Server("floor", port, proc, prefix="/")


def serve_upstream(port: int, root: str) -> None:
    from aiohttp import web
    app = web.Application()
    app.router.add_static("/vod/", root)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def serve_floor(port: int, movie: str, head_bytes: int) -> None:
    """The floor: one shared head of `head_bytes` (zeros), written in 64 KiB slices with drain, then the movie's
    bytes after it by sendfile. No parsing, no planning: what the HTTP stack itself costs per reader."""
    from aiohttp import web
    head = memoryview(bytes(head_bytes))
    size = os.path.getsize(movie)

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def answer(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
        response.content_length = head_bytes + size
        await response.prepare(request)
        request.transport.set_write_buffer_limits(high=SLICE)
        for pos in range(0, head_bytes, SLICE):
            await response.write(head[pos:pos + SLICE])
            await request.writer.drain()
        with open(movie, "rb") as file:
            await asyncio.get_running_loop().sendfile(request.transport, file, 0, size)
        return response

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/{tail:.*}", answer)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


# ---------------------------------------------------------------------------------------------------- readers
@dataclass
class Load:
    headers: int = 0
    received: int = 0
    errors: list[str] = field(default_factory=list)


async def _reader(port: int, path: str, load: Load, go: asyncio.Event, stop: asyncio.Event,
                  first_kib_only: bool = False) -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_BUFFER)
    sock.setblocking(False)
    writer = None
    try:
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=RECV_BUFFER)
        ranged = "Range: bytes=0-1023\r\n" if first_kib_only else ""
        writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n{ranged}\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 120)
        if not head.startswith(b"HTTP/1.1 206" if first_kib_only else b"HTTP/1.1 200"):
            raise RuntimeError(head.split(b"\r\n", 1)[0].decode())
        load.headers += 1
        if first_kib_only:  # a player probing the clip (a browser's first Range request): done
            load.received += len(await reader.readexactly(1024))
            return
        await go.wait()
        while not stop.is_set():
            data = await reader.read(READ_BYTES)
            if not data:
                raise RuntimeError("closed by the server")
            load.received += len(data)
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except asyncio.TimeoutError:
                pass
    except Exception as exc:  # noqa: BLE001 - counted and reported
        load.errors.append(repr(exc))
    finally:
        if writer is not None:
            writer.transport.abort()
        else:
            sock.close()


async def _probe(port: int, phase: list[str], misses: dict[str, int], sent: dict[str, int],
                 stop: asyncio.Event) -> None:
    while not stop.is_set():
        name = phase[0]
        sent[name] = sent.get(name, 0) + 1
        started = time.monotonic()
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1.0)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            line = await asyncio.wait_for(reader.readline(), max(0.01, 1.0 - (time.monotonic() - started)))
            writer.transport.abort()
            if not line.startswith(b"HTTP/1.1 "):  # any answer counts (nginx has no /healthz: 404 in time)
                raise RuntimeError(line)
        except Exception:  # noqa: BLE001 - a miss
            misses[name] = misses.get(name, 0) + 1
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))


def _warm(port: int, path: str) -> None:
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", path, headers={"Range": "bytes=0-1023"})
    conn.getresponse().read()
    conn.close()


def _upstream_connections(server: Server, upstream_port: int | None) -> int:
    if upstream_port is None:
        return 0
    count = 0
    for proc in server.serving():
        for conn in proc.net_connections(kind="tcp"):
            if conn.raddr and conn.raddr.port == upstream_port and conn.status == psutil.CONN_ESTABLISHED:
                count += 1
    return count


def _fds(server: Server) -> int:
    return sum(p.num_fds() for p in server.serving())


async def _run_case(server: Server, paths: list[str], hold_s: float, upstream_port: int | None = None,
                    first_kib_only: bool = False) -> dict:
    """Open one reader per path over OPEN_OVER_S, wait until all had their headers (the burst), let them read
    for hold_s, then close them and look at what the server still holds."""
    count = len(paths)
    load, go, stop, probe_stop = Load(), asyncio.Event(), asyncio.Event(), asyncio.Event()
    phase = ["burst"]
    misses: dict[str, int] = {}
    sent: dict[str, int] = {}
    # Warm: one Range request of the first path, so the metadata and the head are cached and the baseline holds
    # them; what follows is what each further reader costs.
    warm = paths[0].split("?")[0] + "?start=99.5" if first_kib_only else paths[0]  # distinct: not a measured clip
    await asyncio.get_running_loop().run_in_executor(None, _warm, server.port, warm)
    await asyncio.sleep(1.0)
    baseline, fds_before = server.rss_bytes(), _fds(server)
    peak = baseline
    cpu_before = server.cpu_s()
    prober = asyncio.create_task(_probe(server.port, phase, misses, sent, probe_stop))
    tasks = []
    started = time.monotonic()
    for i, path in enumerate(paths):
        tasks.append(asyncio.create_task(_reader(server.port, path, load, go, stop, first_kib_only)))
        await asyncio.sleep(max(0.0, started + OPEN_OVER_S * (i + 1) / count - time.monotonic()))
    while load.headers + len(load.errors) < count and time.monotonic() - started < 180:
        peak = max(peak, server.rss_bytes())
        await asyncio.sleep(0.1)
    burst_s = time.monotonic() - started
    burst_cpu = server.cpu_s() - cpu_before
    phase[0] = "hold"
    go.set()
    hold_end = time.monotonic() + hold_s
    while time.monotonic() < hold_end:
        peak = max(peak, server.rss_bytes())
        await asyncio.sleep(0.25)
    stop.set()
    probe_stop.set()
    await asyncio.gather(*tasks, prober)
    await asyncio.sleep(2.0)
    return {"readers": count, "with_headers": load.headers, "errors": len(load.errors),
            "first_error": load.errors[0] if load.errors else "", "received_bytes": load.received,
            "baseline_rss": baseline, "peak_rss": peak, "rss_per_reader_kib": (peak - baseline) / count / 1024,
            "burst_s": burst_s, "burst_cpu_ms_per_reader": burst_cpu * 1000 / count,
            "healthz_missed_burst": misses.get("burst", 0), "healthz_sent_burst": sent.get("burst", 0),
            "healthz_missed_hold": misses.get("hold", 0), "healthz_sent_hold": sent.get("hold", 0),
            "fds_before": fds_before, "fds_after": _fds(server),
            "upstream_connections_after": _upstream_connections(server, upstream_port)}


def run_case(label: str, start, paths: list[str], hold_s: float, upstream_port: int | None = None,
             first_kib_only: bool = False) -> dict:
    log(f"{label}: {len(paths)} readers")
    server = start()
    try:
        result = asyncio.run(_run_case(server, paths, hold_s, upstream_port, first_kib_only))
    finally:
        server.stop()
    log(f"  {result['rss_per_reader_kib']:.0f} KiB/reader, {result['burst_cpu_ms_per_reader']:.2f} ms CPU/reader, "
        f"healthz missed {result['healthz_missed_burst']}/{result['healthz_sent_burst']} burst "
        f"{result['healthz_missed_hold']}/{result['healthz_sent_hold']} hold, errors {result['errors']} "
        f"{result['first_error']}")
    return {"label": label} | result


# ---------------------------------------------------------------------------------------------------- .ism urls
def _get(port: int, path: str) -> bytes:
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path)
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    if resp.status != 200:
        raise RuntimeError(f"{path}: {resp.status}")
    return body


def ism_urls(port: int, base: str) -> tuple[str, str]:
    """(an HLS segment URL of the highest video bitrate, a Smooth video fragment URL), from the manifests."""
    master = _get(port, base + "/master.m3u8").decode()
    variants = [line for line in master.splitlines() if line and not line.startswith("#")]
    playlist_uri = variants[-1]
    playlist = _get(port, f"{base}/{playlist_uri}").decode()
    segments = [line for line in playlist.splitlines() if line and not line.startswith("#")]
    folder = playlist_uri.rsplit("/", 1)[0]
    segment = f"{base}/{folder}/{segments[len(segments) // 2]}"
    manifest = ET.fromstring(_get(port, base + "/Manifest"))
    video = next(s for s in manifest.iter("StreamIndex") if s.get("Type") == "video")
    bitrate = max(int(q.get("Bitrate")) for q in video.iter("QualityLevel"))
    t = 0
    chunks = list(video.iter("c"))
    for c in chunks[: len(chunks) // 2]:
        t = int(c.get("t", t)) + int(c.get("d"))
    url = video.get("Url").replace("{bitrate}", str(bitrate)).replace("{Bitrate}", str(bitrate))
    url = re.sub(r"\{start[ _]time\}", str(t), url, flags=re.IGNORECASE)
    return segment, f"{base}/{url}"


# ---------------------------------------------------------------------------------------------------- report
def table(results: list[dict]) -> str:
    lines = ["| case | readers | RSS per reader KiB | burst CPU ms/reader | /healthz missed burst | missed hold | "
             "errors | fds before → after | upstream conns after |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['label']} | {r['readers']} | {r['rss_per_reader_kib']:.0f} | "
                     f"{r['burst_cpu_ms_per_reader']:.2f} | {r['healthz_missed_burst']}/{r['healthz_sent_burst']} | "
                     f"{r['healthz_missed_hold']}/{r['healthz_sent_hold']} | {r['errors']} | "
                     f"{r['fds_before']} → {r['fds_after']} | {r['upstream_connections_after']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m bench.slow_readers")
    parser.add_argument("--file-readers", type=int, default=300)
    parser.add_argument("--http-readers", type=int, default=60)
    parser.add_argument("--segment-readers", type=int, default=100)
    parser.add_argument("--distinct-clips", type=int, default=1000)
    parser.add_argument("--hold", type=float, default=20.0)
    parser.add_argument("--op-tree", type=Path, help="run the origin_proxy of another checkout (e.g. a git worktree "
                        "of an older commit) for a before/after comparison")
    parser.add_argument("--clips-only", action="store_true", help="only the origin_proxy file and HTTP rule cases")
    parser.add_argument("--serve-upstream", nargs=2, metavar=("PORT", "ROOT"))
    parser.add_argument("--serve-floor", nargs=3, metavar=("PORT", "MOVIE", "HEAD_BYTES"))
    args = parser.parse_args(argv)
    if args.serve_upstream:
        serve_upstream(int(args.serve_upstream[0]), args.serve_upstream[1])
        return 0
    if args.serve_floor:
        serve_floor(int(args.serve_floor[0]), args.serve_floor[1], int(args.serve_floor[2]))
        return 0

    if args.op_tree:
        OP_TREE["path"] = args.op_tree.resolve()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))  # the servers inherit it
    out = MEDIA / ("slow_readers_other_tree.json" if args.op_tree else "slow_readers.json")
    movie = ensure_movie()
    ism = ensure_ism_set()
    head = moov_bytes(movie)
    log(f"{movie.name}: moov {head / 1e6:.2f} MB")
    tmp = Path(tempfile.mkdtemp(prefix="slow-readers-"))
    upstream = start_upstream(MEDIA)
    results = []
    many = "upstream:\n  connections_per_host: 2000\n"
    try:
        def op(name: str, extra: str = "") -> Server:
            return start_origin_proxy(tmp, name, upstream_port=upstream.port, extra_config=many + extra)

        file_paths = [f"/vod/{CLIP}"] * args.file_readers
        results.append(run_case("origin_proxy, file rule", lambda: op("op_file"), file_paths, args.hold))
        results.append(run_case("origin_proxy, HTTP rule", lambda: op("op_http"), [f"/up/{CLIP}"] * args.http_readers,
                                args.hold, upstream.port))
        if args.clips_only:
            return _finish(results, movie, head, out)
        if shutil.which("nginx"):
            results.append(run_case("nginx mp4 module, one worker", lambda: start_nginx(tmp, "nginx_slow"),
                                    file_paths, args.hold))
        else:
            log("nginx is not installed: its row is skipped (apt-get install nginx)")
        results.append(run_case("floor: bare aiohttp, shared head + sendfile",
                                lambda: start_floor(movie, head), [f"/{CLIP}"] * args.file_readers, args.hold))

        probe = op("op_probe")
        try:
            base = f"/vod/{ism.parent.name}/{ism.name}"
            segment, fragment = ism_urls(probe.port, base)
        finally:
            probe.stop()
        results.append(run_case("origin_proxy, HLS segment of a .ism set", lambda: op("op_seg"),
                                [segment] * args.segment_readers, args.hold))
        results.append(run_case("origin_proxy, Smooth fragment of a .ism set", lambda: op("op_frag"),
                                [fragment] * args.segment_readers, args.hold))
        # A burst of first requests for new clips, each one head build: every client asks for the first KiB
        # (a player's first Range request) and leaves; what matters is whether /healthz keeps answering.
        distinct = [f"/vod/{MOVIE}.mp4?start={100 + 7 * i}" for i in range(args.distinct_clips)]
        for threads in (2, 0):
            results.append(run_case(f"origin_proxy, {args.distinct_clips} distinct clips (first KiB), "
                                    f"build_threads={threads}",
                                    lambda t=threads: op(f"op_distinct{t}", f"cache:\n  build_threads: {t}\n"),
                                    distinct, 3.0, first_kib_only=True))
    finally:
        upstream.stop()
    return _finish(results, movie, head, out)


def _finish(results: list[dict], movie: Path, head: int, out: Path) -> int:
    out.write_text(json.dumps({"movie": str(movie), "moov_bytes": head, "results": results}, indent=1))
    print(table(results))
    by = {r["label"]: r for r in results}
    floor = next((r for r in results if r["label"].startswith("floor")), None)
    if floor is None:
        return 0
    ng = by.get("nginx mp4 module, one worker")
    print()
    op_file, op_http = by["origin_proxy, file rule"], by["origin_proxy, HTTP rule"]
    cpu_ratio = op_file["burst_cpu_ms_per_reader"] / max(1e-9, floor["burst_cpu_ms_per_reader"])
    summary = (f"file rule {op_file['rss_per_reader_kib']:.0f} KiB/reader (goal <= 160), HTTP rule "
               f"{op_http['rss_per_reader_kib']:.0f} KiB/reader (goal <= 320); burst CPU file rule / floor = "
               f"{cpu_ratio:.2f} (goal <= 1.5)")
    if ng:
        summary += f"; nginx / origin_proxy RSS per reader = " \
                   f"{ng['rss_per_reader_kib'] / max(1e-9, op_file['rss_per_reader_kib']):.1f}x (goal >= 30)"
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
