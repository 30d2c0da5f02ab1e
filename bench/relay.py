"""python -m bench.relay [--viewers 10,100,1000] [--hold-s 10]: the live relay's fan-out cost (issue 12).

1. Viewers per process: `origin-proxy relay FEED --loop` (one process) relays a 4 Mbit/s H.264+Opus feed (made
   once with ffmpeg in bench/media/); a separate client process holds N loopback viewers reading as fast as they
   can. For each N, after the viewers joined, the server's CPU % (psutil, over `--hold-s`) and RSS, and what the
   viewers got: the median and 5th percentile of their receive rates as a fraction of the feed's bitrate, plus
   the feed's dropped GOPs and lag disconnects from its status JSON.
2. low_latency: cluster-to-viewer latency, in one process: the time from a cluster being read from the feed to
   the last byte of it arriving at each of 10 / 100 loopback viewers (aiohttp server and raw-socket clients on
   one event loop, so it includes the loop's own turn-around).
Prints Markdown rows for BENCHMARKS.md. Needs psutil.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT / "bench" / "media"
FEED = MEDIA / "relay_4mbit.mkv"


def make_feed() -> Path:
    if not FEED.exists():
        MEDIA.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25",
                        "-f", "lavfi", "-i", "sine=frequency=440", "-t", "20", "-c:v", "libx264", "-preset",
                        "ultrafast", "-g", "50", "-b:v", "3900k", "-maxrate", "3900k", "-bufsize", "2000k",
                        "-c:a", "libopus", "-b:a", "96k", "-f", "matroska", "-live", "1", str(FEED)], check=True)
    return FEED


class _Count(asyncio.Protocol):
    def __init__(self, counts: list[int], index: int) -> None:
        self.counts, self.index = counts, index

    def connection_made(self, transport) -> None:
        transport.write(b"GET /relay/bench.mkv HTTP/1.1\r\nHost: x\r\n\r\n")

    def data_received(self, data: bytes) -> None:
        self.counts[self.index] += len(data)


def _client(port: int, viewers: int, hold_s: float, queue) -> None:
    async def run() -> None:
        loop = asyncio.get_running_loop()
        counts = [0] * viewers
        transports = []
        for index in range(viewers):
            transport, _ = await loop.create_connection(lambda i=index: _Count(counts, i), "127.0.0.1", port)
            transports.append(transport)
            if index % 50 == 49:
                await asyncio.sleep(0.01)
        await asyncio.sleep(2.0)  # past the backlog burst
        before = list(counts)
        queue.put("measuring")
        await asyncio.sleep(hold_s)
        queue.put([(after - start) * 8 / hold_s for start, after in zip(before, counts)])
        for transport in transports:
            transport.close()

    asyncio.run(run())


def fanout(viewer_counts: list[int], hold_s: float) -> list[str]:
    feed = make_feed()
    server = subprocess.Popen([sys.executable, "-m", "origin_proxy", "relay", str(feed), "--loop", "--port", "0",
                               "--name", "bench", "--backlog-gops", "1"], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL)
    url = server.stdout.readline().decode().split()[-1]
    port = int(url.split(":")[2].split("/")[0])
    process = psutil.Process(server.pid)
    rows = []
    try:
        time.sleep(6)  # the feed's bitrate settles over a few GOPs
        for viewers in viewer_counts:
            queue = multiprocessing.Queue()
            client = multiprocessing.Process(target=_client, args=(port, viewers, hold_s, queue))
            client.start()
            assert queue.get(timeout=120) == "measuring"
            cpu0, wall0 = process.cpu_times(), time.monotonic()
            rss_peak = 0
            while time.monotonic() - wall0 < hold_s:
                rss_peak = max(rss_peak, process.memory_info().rss)
                time.sleep(0.5)
            cpu1, wall1 = process.cpu_times(), time.monotonic()
            rates = queue.get(timeout=120)
            client.join(30)
            status = json.loads(urllib.request.urlopen(url + "/status").read())
            feed_bps = status["bitrate_bps"] or 4e6
            cpu_pct = 100 * ((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)) / (wall1 - wall0)
            ratios = sorted(rate / feed_bps for rate in rates)
            rows.append(f"| {viewers} | {feed_bps / 1e6:.2f} | {cpu_pct:.0f} | {rss_peak / 2**20:.0f} | "
                        f"{statistics.median(ratios):.2f} | {ratios[len(ratios) // 20]:.2f} | "
                        f"{max(status['viewer_lag_s'] or [0]):.1f} | {status['dropped_gops']} | {status['lag_disconnects']} |")
            print(rows[-1], flush=True)
            time.sleep(2)
    finally:
        server.terminate()
        server.wait(10)
    return rows


class _Dechunk:
    """Counts the body bytes of a chunked HTTP/1.1 response (Transfer-Encoding framing removed)."""

    def __init__(self) -> None:
        self.buf = b""
        self.body = 0
        self.left = 0  # body bytes left in the current chunk, then its CRLF

    def feed(self, data: bytes) -> int:
        self.buf += data
        while self.buf:
            if self.left:
                take = min(self.left, len(self.buf))
                self.body += take
                self.left -= take
                self.buf = self.buf[take:]
                continue
            line_end = self.buf.find(b"\r\n", 2 if self.buf.startswith(b"\r\n") else 0)
            if line_end < 0:
                break
            line = self.buf[:line_end].strip()
            self.buf = self.buf[line_end + 2:]
            if line:
                self.left = int(line.split(b";")[0], 16)
        return self.body


async def _latency(viewers: int, seconds: float) -> tuple[float, float, float]:
    from aiohttp import web

    from origin_proxy.relay.hub import Feed
    from origin_proxy.server.app import make_app
    from origin_proxy.server.relay import RELAY_HUB
    from origin_proxy.server.relay_cli import feed_file, relay_config

    config = relay_config("127.0.0.1", 0, 1, True)
    app = make_app(config)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    from origin_proxy.server.relay import policy_of

    feed: Feed = app[RELAY_HUB].feed("/relay/", "bench", policy_of(config.remap.remap[0].relay), create=True)
    arrivals: list[tuple[float, int]] = []  # (time read, length) of each cluster, in order
    original = feed._on_cluster

    def on_cluster(out) -> None:
        arrivals.append((time.perf_counter(), len(out.data)))
        original(out)

    feed._on_cluster = on_cluster
    source = asyncio.create_task(feed_file(feed, make_feed(), True))
    while not feed.gops:
        await asyncio.sleep(0.05)
    latencies: list[float] = []

    async def viewer() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /relay/bench.mkv HTTP/1.1\r\nHost: x\r\n\r\n")
        await reader.readuntil(b"\r\n\r\n")
        joined = len(arrivals)
        await asyncio.sleep(0.5)  # let the header and backlog arrive first
        body = _Dechunk()
        expected, index = None, joined
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            data = await reader.read(1 << 16)
            now = time.perf_counter()
            received = body.feed(data)
            if expected is None:  # the first live cluster starts after the header and backlog received so far
                if len(arrivals) > joined and received:
                    expected, index = received, len(arrivals)
                continue
            while index < len(arrivals) and received >= expected + arrivals[index][1]:
                expected += arrivals[index][1]
                latencies.append(now - arrivals[index][0])
                index += 1
        writer.close()

    await asyncio.gather(*(viewer() for _ in range(viewers)))
    source.cancel()
    await runner.cleanup()
    latencies.sort()
    return (statistics.median(latencies) * 1000, latencies[int(len(latencies) * 0.95)] * 1000,
            latencies[-1] * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.relay")
    parser.add_argument("--viewers", default="10,100,1000")
    parser.add_argument("--hold-s", type=float, default=20.0)
    parser.add_argument("--latency-s", type=float, default=10.0)
    args = parser.parse_args()
    print("| viewers | feed Mbit/s | server CPU % | server RSS MiB | median viewer rate / feed | 5th pct | "
          "max viewer lag s | dropped GOPs (cumulative) | lag disconnects |")
    print("|---|---|---|---|---|---|---|---|---|")
    fanout([int(n) for n in args.viewers.split(",")], args.hold_s)
    print()
    print("| low_latency viewers | cluster-to-viewer p50 ms | p95 ms | max ms |")
    print("|---|---|---|---|")
    for viewers in (10, 100):
        p50, p95, top = asyncio.run(_latency(viewers, args.latency_s))
        print(f"| {viewers} | {p50:.1f} | {p95:.1f} | {top:.1f} |", flush=True)


if __name__ == "__main__":
    main()
