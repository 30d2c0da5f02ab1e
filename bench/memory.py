"""Memory: origin_proxy's RSS per cached movie (100 hard links to one 2 h movie, each its own cache key), and RSS
under 500 concurrent slow readers of a large body (origin_proxy and nginx, local file and HTTP upstream).

RSS comes from psutil (the serving processes: origin_proxy's one process, nginx's worker). The slow readers are
one asyncio client in this process: 500 sockets with a small receive buffer, each reading 4 KiB a second.
"""
from __future__ import annotations

import asyncio
import os
import random
import re
import socket
import statistics
from collections.abc import Callable

from .harness import MEDIA, Client, Row, Server, log

LINKS = MEDIA / "links"
READ_BYTES = 4096  # per reader and second
RECV_BUFFER = 16384  # SO_RCVBUF of each slow reader, so that TCP back-pressure reaches the server quickly


def make_links(movie: str, count: int) -> list[str]:
    """`count` hard links to bench/media/<movie>.mp4 under bench/media/links/, names m000.mp4 ... Returns their
    paths under /vod/. Hard links keep one inode (one page cache) but each path is its own cache key: the key is
    (identity, validator), and a local file's identity is its path (origin_proxy/store/source/local.py)."""
    LINKS.mkdir(exist_ok=True)
    target = MEDIA / f"{movie}.mp4"
    paths = []
    for i in range(count):
        link = LINKS / f"m{i:03d}.mp4"
        if not (link.exists() and os.path.samefile(link, target)):
            link.unlink(missing_ok=True)
            os.link(target, link)
        paths.append(f"/vod/links/{link.name}")
    return paths


def l1_cache_bytes(client: Client) -> int:
    text = client.get("/metrics").body.decode()
    match = re.search(r"^origin_proxy_l1_cache_bytes(?:\{[^}]*\})? ([0-9.e+]+)$", text, re.M)
    return int(float(match.group(1))) if match else -1


def cache_rss(op: Server, movie: str, moov_bytes: int, count: int, duration_s: float) -> tuple[list[Row], dict]:
    """Load `count` distinct copies of `movie` into the cache of `op` (a fresh instance whose cache holds them
    all): first with `?start=` (the parsed moov only), then with master.m3u8 (adds the packaging and the rendered
    master). The `?start=` is 100 s before the end, so the clip it builds is small. RSS per movie is the slope
    between the first movie and the last, so one-time costs (lazy imports, the first buffers) are left out."""
    paths = make_links(movie, count)
    client = Client(op.port)
    start = f"?start={max(0.0, duration_s - 100):.0f}"
    client.get("/healthz")
    rss = {"start": op.rss_bytes()}
    client.get(paths[0] + start, {"Range": "bytes=0-0"})
    rss["one"] = op.rss_bytes()
    for path in paths[1:]:
        client.get(path + start, {"Range": "bytes=0-0"})
    rss["all"] = op.rss_bytes()
    cache_after_moov = l1_cache_bytes(client)
    for path in paths:
        client.get(f"{path}/master.m3u8")
    rss["all_packaged"] = op.rss_bytes()
    cache_after_packaging = l1_cache_bytes(client)
    client.close()
    per_movie = (rss["all"] - rss["one"]) / (count - 1)
    per_movie_packaged = (rss["all_packaged"] - rss["one"]) / (count - 1)
    moov_mb = moov_bytes / 1e6
    facts = {"count": count, "rss": rss, "cache_bytes": cache_after_moov,
             "cache_bytes_packaged": cache_after_packaging, "moov_bytes": moov_bytes}
    rows = [
        Row(f"RSS per cached {movie} ({count} hard links, loaded by `?start=`), slope from movie 1 to {count}",
            "MB", [per_movie / 1e6], [moov_mb], ref="moov size", goal="≤ 3× moov", target=3.0),
        Row(f"cache's own accounting per movie (`origin_proxy_l1_cache_bytes` / {count})", "MB",
            [cache_after_moov / count / 1e6], [moov_mb], ref="moov size", goal="≤ 3× moov", target=3.0),
        Row("RSS per movie after master.m3u8 of each too (adds the segment timelines and the rendered master)",
            "MB", [per_movie_packaged / 1e6], [moov_mb], ref="moov size", goal="—"),
        Row("cache's own accounting per movie after master.m3u8 of each", "MB",
            [cache_after_packaging / count / 1e6], [moov_mb], ref="moov size", goal="—"),
    ]
    return rows, facts


# ---------------------------------------------------------------------------------------------------- slow readers
async def _slow_reader(port: int, path: str, stop: asyncio.Event, got: list[int], index: int) -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_BUFFER)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=RECV_BUFFER)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
    try:
        status = await reader.readline()
        if b" 200 " not in status:
            raise RuntimeError(f"slow reader {index}: {status!r}")
        while not stop.is_set():
            data = await reader.read(READ_BYTES)
            if not data:
                raise RuntimeError(f"slow reader {index}: the server closed the connection")
            got[index] += len(data)
            try:
                await asyncio.wait_for(stop.wait(), 1.0 + random.uniform(-0.1, 0.1))
            except asyncio.TimeoutError:
                pass
    finally:
        writer.transport.abort()


async def _slow_readers(server: Server, path: str, count: int, settle_s: float, hold_s: float) -> dict:
    stop = asyncio.Event()
    got = [0] * count
    before = server.rss_bytes()
    tasks = []
    for i in range(count):
        tasks.append(asyncio.create_task(_slow_reader(server.port, path, stop, got, i)))
        if i % 50 == 49:
            await asyncio.sleep(0.05)
    await asyncio.sleep(settle_s)
    failed = [t for t in tasks if t.done() and t.exception() is not None]
    first = server.rss_bytes()
    await asyncio.sleep(hold_s)
    second = server.rss_bytes()
    reading = sum(1 for n in got if n > 0)
    stop.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    return {"before": before, "first": first, "second": second, "reading": reading,
            "errors": len(errors) or len(failed), "error": repr(errors[0]) if errors else "",
            "received": sum(got)}


def slow_readers(cases: list[tuple[str, Callable[[], Server], str]], count: int, rounds: int, settle_s: float,
                 hold_s: float) -> dict[str, list[dict]]:
    """`cases`: (label, a function that starts the server, path). Each round runs every case once, the order
    reversed every other round, each on a server process of its own: neither allocator keeps a high-water mark
    from the case before (freed memory mostly stays in the process). One small request warms the fresh server
    (lazy imports, the upstream session) before the RSS "before" is taken; then RSS is taken `settle_s` after the
    last reader connected, and `hold_s` later."""
    runs: dict[str, list[dict]] = {label: [] for label, _, _ in cases}
    for i in range(rounds):
        for label, start, path in (cases if i % 2 == 0 else cases[::-1]):
            log(f"  {count} slow readers: {label}")
            server = start()
            try:
                client = Client(server.port)
                client.get(path, {"Range": "bytes=0-1023"})
                client.close()
                run = asyncio.run(_slow_readers(server, path, count, settle_s, hold_s))
            finally:
                server.stop()
            log(f"    RSS {run['before'] / 1e6:.1f} -> {run['first'] / 1e6:.1f} -> {run['second'] / 1e6:.1f} MB, "
                f"{run['reading']} reading, {run['errors']} errors {run['error']}")
            runs[label].append(run)
    return runs


DRIFT_MB = 5.0  # RSS growth over the hold that still counts as flat (allocator noise, one buffer more or less)


def slow_reader_rows(runs: dict[str, list[dict]], count: int, hold_s: float) -> list[Row]:
    """Rows pairing each origin_proxy case with the nginx case after it in `runs` (op file, nginx file, op
    upstream, nginx proxy_pass). Bounded means: every reader got bytes, none failed, and the RSS did not grow by
    more than DRIFT_MB while the readers kept reading."""
    labels = list(runs)
    rows = []
    for op_label, ng_label in zip(labels[0::2], labels[1::2]):
        a, b = runs[op_label], runs[ng_label]

        def per_conn(r: dict) -> float:
            return (r["second"] - r["before"]) / count / 1e3

        def drift(r: dict) -> float:
            return (r["second"] - r["first"]) / 1e6

        broken = sum(r["errors"] + count - r["reading"] for r in a)
        if broken:
            verdict = f"**missed**: {broken} readers failed or got nothing"
        else:
            verdict = "met" if max(drift(r) for r in a) < DRIFT_MB else "**missed** (RSS grew)"
        rows.append(Row(f"RSS per connection, {count} readers at {READ_BYTES // 1024} KiB/s: {op_label} vs "
                        f"{ng_label}; (RSS with readers − RSS before) / {count}", "kB", [per_conn(r) for r in a],
                        [per_conn(r) for r in b], goal="bounded", verdict_text=verdict))
        rows.append(Row(f"RSS growth over {hold_s:.0f} s while the {count} readers kept reading: {op_label} "
                        f"(nginx: {statistics.median(drift(r) for r in b):.2f} MB)", "MB", [drift(r) for r in a],
                        [], ref="", goal=f"< {DRIFT_MB:.0f} MB", target=DRIFT_MB, absolute=True))
        rows.append(Row(f"RSS with {count} slow readers: {op_label} vs {ng_label}", "MB",
                        [r["second"] / 1e6 for r in a], [r["second"] / 1e6 for r in b]))
    return rows
