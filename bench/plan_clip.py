"""Warm `?start=` in process: `plan_clip` (select + write_clip) on a parsed, cached movie, per movie in bench/media.

    python3 -m bench.plan_clip [--runs N] [--movies movie_2h,movie_360p_2h] [--profile movie_360p_2h]

The moov is parsed once; each run plans a clip from a distinct random start (whole milliseconds, mode exact) and
makes the head's first 64 KiB, as `Range: bytes=0-65535` needs. Columns: median and p90 of the runs, milliseconds.
`--profile NAME` prints the top cProfile entries for that movie instead. Not a test: numbers for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import statistics
import time
from fractions import Fraction

from origin_proxy.isobmff.edits import movie_duration_s
from origin_proxy.isobmff.movie import MovieFile, parse_moov
from origin_proxy.rewrite.clip import plan_clip
from origin_proxy.plan import SourceRange
from origin_proxy.rewrite.params import ClipRequest

from .cold_parse import MAX_SAMPLES, MEDIA, MOVIES, head_prefix, read_moov


def load(name: str) -> MovieFile:
    moov, moov_offset, file_size, ftyp = read_moov(MEDIA / f"{name}.mp4")
    movie = parse_moov(moov, file_size, MAX_SAMPLES)
    return MovieFile(movie, ftyp, file_size, moov_offset, len(moov), moov_offset < 64 * 1024)


def requests(movie_file: MovieFile, runs: int, rng: random.Random) -> list[ClipRequest]:
    duration_ms = int(movie_duration_s(movie_file.movie) * 1000)
    starts = rng.sample(range(1, duration_ms), min(runs, duration_ms - 1))
    return [ClipRequest(Fraction(ms, 1000), None, "exact") for ms in starts]


def one(movie_file: MovieFile, request: ClipRequest) -> None:
    head_prefix([p for p in plan_clip(movie_file, request).parts if not isinstance(p, SourceRange)])


def measure(name: str, runs: int, rng: random.Random) -> tuple[float, float]:
    movie_file = load(name)
    todo = requests(movie_file, runs, rng)
    for request in todo[:50]:  # warm the per-movie caches, as the first request of a cached movie does
        one(movie_file, request)
    times = []
    for request in todo:
        t0 = time.perf_counter()
        one(movie_file, request)
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.9)]


def profile(name: str, runs: int, rng: random.Random) -> None:
    movie_file = load(name)
    todo = requests(movie_file, runs, rng)
    for request in todo[:50]:
        one(movie_file, request)
    profiler = cProfile.Profile()
    profiler.enable()
    for request in todo:
        one(movie_file, request)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--movies", default=",".join(MOVIES))
    parser.add_argument("--profile", default=None)
    args = parser.parse_args()
    rng = random.Random(13)
    if args.profile:
        profile(args.profile, args.runs, rng)
        return
    print("| movie | plan_clip + 64 KiB median ms | p90 ms |")
    print("|---|---:|---:|")
    for name in args.movies.split(","):
        if not (MEDIA / f"{name}.mp4").exists():
            print(f"| {name} | (missing: python3 -m bench.seek_media) | |")
            continue
        median, p90 = measure(name, args.runs, rng)
        print(f"| {name} | {median:.3f} | {p90:.3f} |")


if __name__ == "__main__":
    main()
