"""Cached metadata after packaging, and what packaging a movie costs, in process, per movie in bench/media.

    python3 -m bench.packaged_memory [--runs N] [--movies movie_2h,movie_360p_2h] [--files a.mp4,b.mp4]

For each movie: parse the moov (as store/moov.py does), then package it the way the edge does for a player that
asks for everything: package_movie (the segment timelines), the HLS master and every media playlist, the MPD, the
Smooth client manifest, and for every track the init segment plus its first, middle and last CMAF segment and its
first, middle and last Smooth fragment. Columns (median of N runs, each on a fresh parse):

- `cached/moov`: MovieFile.nbytes (what the L1 metadata cache counts for the movie) over the moov size, after all
  of the above; `?start=` alone keeps the same tables, so the goal (≤ 3×, issue 13) must hold here too;
- `columns`: per-sample columns left on the sample tables (dts_ticks, duration_ticks, ...), which it counts;
- `package ms`: package_movie alone (segmenting every track), and `all ms`: everything above.

With `--edge`, the same movies are also asked through an in-process edge (aiohttp test server, a file rule on the
media folder): master.m3u8, every media playlist with its init and first segment, manifest.mpd and the Smooth
Manifest with its first fragment of each StreamIndex; then `L1 total/moov` is everything the metadata cache counts
(the MovieFile, the Packaging, the Smooth presentation, the rendered manifests) over the moov size.

Not a test: numbers for BENCHMARKS.md. Run it in two trees (cwd) to compare commits.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import struct
import time
from fractions import Fraction
from pathlib import Path

from origin_proxy.isobmff.movie import MovieFile, parse_moov
from origin_proxy.package.cmaf import cmaf_fragment, cmaf_header
from origin_proxy.package.manifests import master_playlist, media_playlist, mpd
from origin_proxy.package.smooth import client_manifest, smooth_fragment, smooth_presentation
from origin_proxy.package.tracks import package_movie

MEDIA = Path(__file__).resolve().parent / "media"
MOVIES = ("movie_10m", "movie_1h", "movie_2h", "movie_360p_2h", "movie_co64_2h")
MAX_SAMPLES = 100_000_000
COLUMNS = ("dts_ticks", "duration_ticks", "cts_offset_ticks", "is_sync", "_sync_all")


def read_moov(path: Path) -> tuple[bytes, int, int, bytes]:
    """(moov box, its offset, file size, ftyp box): top-level box headers read one by one (§4.2), then the moov."""
    size = path.stat().st_size
    ftyp, offset = b"", 0
    with path.open("rb") as f:
        while offset + 8 <= size:
            f.seek(offset)
            header = f.read(16)
            box_size, fourcc = struct.unpack_from(">I4s", header)
            if box_size == 1:
                box_size = struct.unpack_from(">Q", header, 8)[0]
            elif box_size == 0:
                box_size = size - offset
            if fourcc in (b"ftyp", b"moov"):
                f.seek(offset)
                data = f.read(box_size)
                if fourcc == b"moov":
                    return data, offset, size, ftyp
                ftyp = data
            offset += max(box_size, 8)
    raise SystemExit(f"{path}: no moov")


def _three(count: int) -> list[int]:
    return sorted({0, count // 2, count - 1}) if count else []


def package_everything(movie_file: MovieFile) -> float:
    """Everything a player of each protocol may ask of the movie (see the module docstring); returns the ms
    package_movie alone took."""
    t0 = time.perf_counter()
    packaging = package_movie(movie_file.movie, Fraction(4))
    package_ms = (time.perf_counter() - t0) * 1e3
    hls, _ = packaging.carried_by("hls")
    master_playlist(hls)
    for track in hls:
        media_playlist(track)
    dash, _ = packaging.carried_by("dash")
    mpd(packaging, dash)
    for track in packaging.tracks:
        cmaf_header(track.timeline.track)
        for index in _three(track.segment_count):
            cmaf_fragment(track.timeline, index)
    try:
        smooth = smooth_presentation(packaging)
    except Exception:  # noqa: BLE001  (no track Smooth carries: HLS/DASH only)
        return package_ms
    client_manifest(smooth.streams)
    for stream in smooth.streams:
        for level in stream.levels:
            for index in _three(len(stream.starts)):
                smooth_fragment(stream, level, index)
    return package_ms


def measure(path: Path, runs: int) -> dict:
    moov, moov_offset, file_size, ftyp = read_moov(path)
    package_ms, all_ms = [], []
    for _ in range(runs):
        movie = parse_moov(moov, file_size, MAX_SAMPLES)
        movie_file = MovieFile(movie, ftyp, file_size, moov_offset, len(moov), moov_offset < 64 * 1024)
        start_nbytes = movie_file.nbytes
        t0 = time.perf_counter()
        package_ms.append(package_everything(movie_file))
        all_ms.append((time.perf_counter() - t0) * 1e3)
    columns = sum(1 for t in movie.tracks for c in COLUMNS if c in t.table.__dict__)
    return {"movie": path.stem, "moov_mb": len(moov) / 1e6, "samples": sum(t.table.sample_count for t in movie.tracks),
            "start_ratio": start_nbytes / len(moov), "ratio": movie_file.nbytes / len(moov), "columns": columns,
            "package_ms": statistics.median(package_ms), "all_ms": statistics.median(all_ms)}


async def _edge_total(path: Path) -> tuple[int, int]:
    """(L1 metadata cache bytes, MovieFile.nbytes) after a player's worth of requests through an in-process edge."""
    import xml.etree.ElementTree as ET

    from aiohttp.test_utils import TestClient, TestServer

    from origin_proxy.config import AppConfig, ServiceConfig, parse_remap
    from origin_proxy.server.app import make_app
    from origin_proxy.server.state import EDGE_STATE

    config = AppConfig(service=ServiceConfig.model_validate({"log_level": "ERROR", "cache": {"max_bytes": 8 << 30}}),
                       remap=parse_remap({"remap": [{"from": "/m/", "to": "file://" + os.fspath(path.parent) + "/"}]},
                                         Path.cwd()))
    base = f"/m/{path.name}"
    async with TestClient(TestServer(make_app(config))) as client:
        async def get(url: str) -> bytes:
            resp = await client.get(url)
            body = await resp.read()
            if resp.status != 200:
                raise SystemExit(f"{url}: {resp.status}")
            return body

        master = (await get(f"{base}/master.m3u8")).decode()
        for uri in re.findall(r'URI="([^"]+)"', master) + [l for l in master.splitlines() if l and l[0] != "#"]:
            playlist = (await get(f"{base}/{uri}")).decode()
            folder = uri.rsplit("/", 1)[0]
            await get(f"{base}/{folder}/" + re.search(r'EXT-X-MAP:URI="([^"]+)"', playlist).group(1))
            await get(f"{base}/{folder}/" + next(l for l in playlist.splitlines() if l.endswith(".m4s")))
        await get(f"{base}/manifest.mpd")
        for stream in ET.fromstring(await get(f"{base}/Manifest")).iter("StreamIndex"):
            level, chunk = stream.find("QualityLevel"), stream.find("c")
            await get(f"{base}/" + stream.get("Url").replace("{bitrate}", level.get("Bitrate"))
                      .replace("{start time}", chunk.get("t", "0")))
        cache = client.app[EDGE_STATE].cache
        movie = next(v for v in (cache.get_now(k) for k in cache.keys()) if isinstance(v, MovieFile))
        return cache.current_bytes, movie.nbytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--movies", default=",".join(MOVIES))
    parser.add_argument("--media", type=Path, default=MEDIA, help="where the movies are (default bench/media)")
    parser.add_argument("--files", default="", help="other MP4 paths, comma-separated")
    parser.add_argument("--edge", action="store_true", help="also the L1 cache's total through an in-process edge")
    args = parser.parse_args()
    paths = [args.media / f"{name}.mp4" for name in args.movies.split(",") if name]
    paths += [Path(p) for p in args.files.split(",") if p]
    print("| movie | moov MB | samples | cached/moov parsed | cached/moov packaged | columns left | package_movie ms "
          "| everything ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for path in paths:
        if not path.exists():
            print(f"| {path.stem} | (missing: python3 -m bench.seek_media) |")
            continue
        r = measure(path, args.runs)
        print(f"| {r['movie']} | {r['moov_mb']:.2f} | {r['samples']} | {r['start_ratio']:.2f} | {r['ratio']:.2f} "
              f"| {r['columns']} | {r['package_ms']:.1f} | {r['all_ms']:.1f} |", flush=True)
    if args.edge:
        print("\n| movie | moov MB | MovieFile/moov (edge) | L1 total/moov (edge) |\n|---|---:|---:|---:|")
        for path in paths:
            if path.exists():
                total, movie_bytes = asyncio.run(_edge_total(path))
                moov_bytes = len(read_moov(path)[0])
                print(f"| {path.stem} | {moov_bytes / 1e6:.2f} | {movie_bytes / moov_bytes:.2f} "
                      f"| {total / moov_bytes:.2f} |", flush=True)


if __name__ == "__main__":
    main()
