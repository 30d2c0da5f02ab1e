"""Cold `?start=` in process: what a seek costs when the metadata is not cached, per movie in bench/media.

    python3 -m bench.cold_parse [--runs N] [--movies movie_2h,movie_360p_2h] [--default-malloc]

Run in the serving process's conditions: the glibc malloc thresholds a server sets at start (`service.malloc`,
origin_proxy/server/malloc.py) are applied first, since they halve the parse of a large moov; `--default-malloc`
leaves the C library's defaults, to show what they are worth. Columns (milliseconds, median of N runs, each on a fresh parse): `parse_moov`; then `select` + `write_clip` + the
bytes of the head's first 64 KiB (what `Range: bytes=0-65535` needs); their sum; the sum per MB of moov. Reading the
moov from the file is left out (store/moov.py; page cache), and so is HTTP. Not a test: numbers for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import random
import statistics
import struct
import time
from fractions import Fraction
from pathlib import Path

from origin_proxy.config import MallocSettings
from origin_proxy.isobmff.edits import movie_duration_s
from origin_proxy.isobmff.movie import MovieFile, parse_moov
from origin_proxy.plan import LazyBytes
from origin_proxy.rewrite.moov_writer import write_clip
from origin_proxy.rewrite.params import ClipRequest
from origin_proxy.rewrite.select import select
from origin_proxy.server.malloc import apply_malloc_settings

MEDIA = Path(__file__).resolve().parent / "media"
MOVIES = ("movie_10m", "movie_1h", "movie_2h", "movie_8h", "movie_360p_2h", "movie_co64_2h")
HEAD_BYTES = 65536
MAX_SAMPLES = 100_000_000


def read_moov(path: Path) -> tuple[bytes, int, int, bytes]:
    """(moov box, its offset, file size, ftyp box) by walking the top-level boxes (§4.2)."""
    size = path.stat().st_size
    ftyp = b""
    with path.open("rb") as f:
        offset = 0
        while offset < size:
            f.seek(offset)
            header = f.read(16)
            box_size, fourcc = struct.unpack(">I4s", header[:8])
            if box_size == 1:
                box_size = struct.unpack(">Q", header[8:16])[0]
            elif box_size == 0:
                box_size = size - offset
            if fourcc == b"ftyp":
                f.seek(offset)
                ftyp = f.read(box_size)
            if fourcc == b"moov":
                f.seek(offset)
                return f.read(box_size), offset, size, ftyp
            offset += box_size
    raise SystemExit(f"{path}: no moov")


def head_prefix(parts, limit: int = HEAD_BYTES) -> int:
    """Make the bytes of the head's first `limit` bytes, as a response would; returns how many were made."""
    made = 0
    for part in parts:
        if made >= limit:
            break
        data = bytes(part) if isinstance(part, LazyBytes) else part
        made += min(len(data), limit - made)
    return made


def measure(name: str, runs: int, rng: random.Random) -> dict:
    moov, moov_offset, file_size, ftyp = read_moov(MEDIA / f"{name}.mp4")
    parse_ms, clip_ms = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        movie = parse_moov(moov, file_size, MAX_SAMPLES)
        t1 = time.perf_counter()
        movie_file = MovieFile(movie, ftyp, file_size, moov_offset, len(moov), moov_offset < 64 * 1024)
        duration_s = movie_duration_s(movie)
        start_s = Fraction(rng.randrange(int(duration_s * 1000))) / 1000
        t2 = time.perf_counter()
        parts, _ = write_clip(movie_file, select(movie, ClipRequest(start_s, None, "exact")))
        head_prefix(parts)
        t3 = time.perf_counter()
        parse_ms.append((t1 - t0) * 1e3)
        clip_ms.append((t3 - t2) * 1e3)
    parse, clip = statistics.median(parse_ms), statistics.median(clip_ms)
    samples = sum(t.table.sample_count for t in movie.tracks)
    return {"movie": name, "moov_mb": len(moov) / 1e6, "samples": samples, "parse_ms": parse, "clip_ms": clip,
            "total_ms": parse + clip, "ms_per_moov_mb": (parse + clip) / (len(moov) / 1e6),
            "nbytes_ratio": movie_file.nbytes / len(moov)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--movies", default=",".join(MOVIES))
    parser.add_argument("--default-malloc", action="store_true",
                        help="keep glibc's default malloc thresholds instead of the server's (service.malloc)")
    args = parser.parse_args()
    applied = {} if args.default_malloc else apply_malloc_settings(MallocSettings())
    print(f"malloc thresholds: {applied or 'C library defaults'}")
    rng = random.Random(13)
    print(f"| movie | moov MB | samples | parse_moov ms | select+write_clip+64 KiB ms | cold total ms | ms per moov MB "
          f"| cached/moov |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.movies.split(","):
        if not (MEDIA / f"{name}.mp4").exists():
            print(f"| {name} | (missing: python3 -m bench.seek_media) |")
            continue
        r = measure(name, args.runs, rng)
        print(f"| {r['movie']} | {r['moov_mb']:.2f} | {r['samples']} | {r['parse_ms']:.2f} | {r['clip_ms']:.2f} "
              f"| {r['total_ms']:.2f} | {r['ms_per_moov_mb']:.2f} | {r['nbytes_ratio']:.2f} |")


if __name__ == "__main__":
    main()
