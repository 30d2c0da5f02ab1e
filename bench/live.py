"""python -m bench.live [--encoders 1,4,16] [--seconds 5]: what one origin_proxy process does as a live origin
(issue 11, publishing points). Prints Markdown rows for BENCHMARKS.md ("Live ingest").

1. Ingest throughput: N parallel encoders (N = 1, 4, 16), each replaying a real ffmpeg Smooth ingest capture (made
   once in bench/media/: 60 s of 640x360 H.264 at 1 Mbit/s + AAC, `-f ismv -movflags isml+frag_keyframe`) as one
   chunked long POST, as fast as the server reads it, each into its own publishing point (archive on, no fsync).
   Fragments/s and MB/s accepted by the one server process, from the first byte sent to the last 200.
2. Live manifest requests/s: wrk (1 thread, 16 connections) on the HLS master, an HLS media playlist, the MPD and
   the Smooth Manifest of a point that is still live (the capture pushed without its final mfra).
3. Listing latency: one encoder sends the capture fragment by fragment (one moof+mdat pair, then a pause); after the
   last byte of each video fragment is written, a client polls the live HLS media playlist until it lists that
   fragment: the time from the last byte written to the first playlist that lists it (median, p99). It includes
   the loopback round trips and one poll (~1 ms) of resolution.
The client runs in this process and the server in another one, on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .harness import Server, free_port, wait_port

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT / "bench" / "media"
CAPTURE = MEDIA / "live_ingest_60s.ismv"
TOKEN = "bench"


def make_capture() -> Path:
    if not CAPTURE.exists():
        MEDIA.mkdir(parents=True, exist_ok=True)
        tmp = CAPTURE.with_suffix(".tmp")
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
                        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "60", "-pix_fmt",
                        "yuv420p", "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-keyint_min", "50",
                        "-sc_threshold", "0", "-b:v", "1000k", "-c:a", "aac", "-b:a", "64k", "-f", "ismv",
                        "-movflags", "isml+frag_keyframe", str(tmp)], check=True)
        tmp.rename(CAPTURE)
    return CAPTURE


def split(data: bytes) -> tuple[bytes, list[tuple[bytes, bool]], bytes]:
    """(header, [(moof+mdat, is_video)], mfra) of a Smooth ingest capture (track 1 is video in ffmpeg's ismv)."""
    pos, header, fragments, moof = 0, b"", [], b""
    tail = b""
    while pos < len(data):
        size, fourcc = struct.unpack_from(">I4s", data, pos)
        raw = data[pos : pos + size]
        pos += size
        if fourcc == b"moof":
            moof = raw
        elif fourcc == b"mdat":
            track_id = struct.unpack_from(">I", moof, moof.index(b"tfhd") + 8)[0]
            fragments.append((moof + raw, track_id == 1))
        elif fourcc == b"mfra":
            tail = raw
        else:
            header += raw
    return header, fragments, tail


def start_server(tmp: Path) -> Server:
    port = free_port()
    remap = tmp / "remap.yaml"
    remap.write_text(f"remap:\n  - from: /live/\n    live:\n      storage: {tmp / 'live'}\n"
                     f"      ingest_token: {TOKEN}\n      dvr_window_s: 30\n")
    config = tmp / "service.yaml"
    config.write_text('access_log: "off"\nworkers: 1\nlog_level: WARNING\n')
    proc = subprocess.Popen([sys.executable, "-m", "origin_proxy", "serve", "--config", str(config), "--remap",
                             str(remap), "--host", "127.0.0.1", "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=open(tmp / "server.log", "wb"))
    wait_port(port, proc)
    return Server("origin_proxy", port, proc)


async def open_post(port: int, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write((f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n").encode())
    return reader, writer


def chunk(body: bytes) -> bytes:
    return b"%x\r\n" % len(body) + body + b"\r\n"


async def finish_post(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
    writer.write(b"0\r\n\r\n")
    await writer.drain()
    status = int((await asyncio.wait_for(reader.readline(), 60)).split()[1])
    writer.close()
    return status


async def push_whole(port: int, path: str, pieces: list[bytes]) -> None:
    reader, writer = await open_post(port, path)
    for piece in pieces:
        writer.write(chunk(piece))
        await writer.drain()
    status = await finish_post(reader, writer)
    if status != 200:
        raise RuntimeError(f"{path}: HTTP {status}")


async def ingest_throughput(port: int, capture: bytes, encoders: int, run: int) -> tuple[float, float]:
    """(fragments/s, MB/s) accepted from `encoders` parallel replays of the capture."""
    header, fragments, mfra = split(capture)
    pieces = [header] + [f for f, _ in fragments] + [mfra]
    started = time.perf_counter()
    await asyncio.gather(*(push_whole(port, f"/live/r{run}e{i}.isml/Streams(s1)", pieces) for i in range(encoders)))
    elapsed = time.perf_counter() - started
    return encoders * len(fragments) / elapsed, encoders * len(capture) / elapsed / 1e6


def wrk(port: int, path: str, seconds: int) -> float:
    out = subprocess.run(["wrk", "-t", "1", "-c", "16", "-d", f"{seconds}s", f"http://127.0.0.1:{port}{path}"],
                         check=True, capture_output=True, text=True).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk {path}: non-2xx answers\n{out}")
    return next(float(line.split()[1]) for line in out.splitlines() if line.startswith("Requests/sec:"))


async def get(port: int, path: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    return data.split(b"\r\n\r\n", 1)[1]


async def listing_latency(port: int, capture: bytes) -> list[float]:
    """Seconds from each video fragment's last byte written to the first HLS playlist listing it."""
    header, fragments, _ = split(capture)
    base = "/live/latency.isml"
    reader, writer = await open_post(port, base + "/Streams(s1)")
    writer.write(chunk(header))
    playlist = None
    latencies = []
    video_sent = 0
    for body, is_video in fragments:
        writer.write(chunk(body))
        await writer.drain()
        sent = time.perf_counter()
        if not is_video:
            continue
        video_sent += 1
        while time.perf_counter() - sent < 5.0:
            if playlist is None:
                master = (await get(port, base + "/master.m3u8")).decode()
                uris = [u for u in master.splitlines() if u.endswith(".m3u8") and "video" in u]
                if not uris:
                    continue
                playlist = base + "/" + uris[0]
            text = (await get(port, playlist)).decode()
            numbers = [int(n) for n in re.findall(r"^(\d+)\.m4s$", text, re.M)]
            if numbers and max(numbers) >= video_sent:  # fragment numbers count from 1
                latencies.append(time.perf_counter() - sent)
                break
        else:
            latencies.append(float("inf"))  # not listed within 5 s
        await asyncio.sleep(0.02)
    writer.close()
    return latencies


async def manifests_live(port: int, capture: bytes) -> dict[str, str]:
    """Push the capture without its mfra (the point stays live) and return the manifest paths to measure."""
    header, fragments, _ = split(capture)
    reader, writer = await open_post(port, "/live/manifests.isml/Streams(s1)")
    for piece in [header] + [f for f, _ in fragments]:
        writer.write(chunk(piece))
        await writer.drain()
    await asyncio.sleep(0.5)
    master = (await get(port, "/live/manifests.isml/master.m3u8")).decode()
    media = next(u for u in master.splitlines() if u.endswith(".m3u8") and "video" in u)
    manifests_live.writer = writer  # kept open: the point stays live
    return {"HLS master": "/live/manifests.isml/master.m3u8", "HLS media playlist": f"/live/manifests.isml/{media}",
            "DASH MPD": "/live/manifests.isml/manifest.mpd", "Smooth Manifest": "/live/manifests.isml/Manifest"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.live", description=__doc__.splitlines()[0])
    parser.add_argument("--encoders", default="1,4,16")
    parser.add_argument("--rounds", type=int, default=3, help="throughput runs per N (median reported)")
    parser.add_argument("--seconds", type=int, default=5, help="wrk duration per manifest")
    args = parser.parse_args(argv)
    capture = make_capture().read_bytes()
    _, fragments, _ = split(capture)
    with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp_name:
        server = start_server(Path(tmp_name))
        try:
            rows = [f"Capture: {len(capture) / 1e6:.1f} MB, {len(fragments)} fragments (video and audio moofs), "
                    "60 s of 640x360 H.264 1 Mbit/s + AAC 64 kbit/s; one server process, archive on, fsync off.",
                    "", "| encoders | fragments/s (median, min-max) | MB/s (median) | x real time |",
                    "|---:|---:|---:|---:|"]
            run = 0
            for n in (int(x) for x in args.encoders.split(",")):
                results = []
                for _ in range(args.rounds):
                    run += 1
                    results.append(asyncio.run(ingest_throughput(server.port, capture, n, run)))
                fps = sorted(r[0] for r in results)
                mbps = statistics.median(r[1] for r in results)
                realtime = mbps * 1e6 / (len(capture) / 60)
                rows.append(f"| {n} | {statistics.median(fps):.0f} ({fps[0]:.0f}-{fps[-1]:.0f}) | {mbps:.1f} | "
                            f"{realtime:.0f} |")

            async def manifests() -> dict[str, str]:
                return await manifests_live(server.port, capture)

            loop = asyncio.new_event_loop()
            paths = loop.run_until_complete(manifests())
            rows += ["", "| live manifest (DVR window 30 s: 15 video + 15 audio fragments listed) | requests/s (wrk -c 16) |",
                     "|---|---:|"]
            for label, path in paths.items():
                rows.append(f"| {label} | {wrk(server.port, path, args.seconds):.0f} |")
            manifests_live.writer.close()
            loop.close()
            latencies = sorted(asyncio.run(listing_latency(server.port, capture)))
            p99 = latencies[min(len(latencies) - 1, int(round(0.99 * (len(latencies) - 1))))]
            rows += ["", f"Listing latency, last byte of a video fragment written -> first HLS media playlist listing "
                     f"it ({len(latencies)} fragments): median {statistics.median(latencies) * 1e3:.1f} ms, "
                     f"p99 {p99 * 1e3:.1f} ms, max {latencies[-1] * 1e3:.1f} ms."]
        finally:
            server.stop()
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
