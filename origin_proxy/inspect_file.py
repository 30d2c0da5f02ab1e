"""`origin-proxy inspect FILE_OR_URL`: what an operator wants to know about one MP4 before serving it.

Reads the file the way the edge does (a LocalSource, or an UpstreamSource with Range GETs for http(s) URLs; only
the top-level box headers and the moov are read), parses the moov with the same parser, and reports file-level
facts (moov position, faststart, fragmented) and per track: codec 4CC and RFC 6381 string (isobmff/codecs.py),
timing, sample and sync sample counts, GOP statistics, the edit list and the sample entry's picture/sound facts.
`inspect_report` returns plain data (the `--json` output); `format_report` renders it for a terminal.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import numpy as np

from .errors import FragmentedMedia, OriginError
from .isobmff.codecs import describe_sample_entry
from .isobmff.header import iter_boxes
from .isobmff.movie import Track
from .isobmff.sample_window import sync_samples
from .store.moov import MediaLimits, MoovBlob, load_moov_bytes, movie_file_from_blob


async def _load_blob(target: str, limits: MediaLimits) -> MoovBlob:
    if target.startswith(("http://", "https://")):
        import aiohttp

        from .store.source.upstream import UpstreamSource, client_timeout

        async with aiohttp.ClientSession(timeout=client_timeout(10.0, 30.0), auto_decompress=False) as session:
            async with await UpstreamSource.open(session, target) as source:
                return await load_moov_bytes(source, limits)
    from .store.source.local import LocalSource

    path = os.path.abspath(target)
    async with await LocalSource.open(path, os.path.dirname(os.path.realpath(path)) or "/") as source:
        return await load_moov_bytes(source, limits)


def _has_mvex(moov: bytes) -> bool:
    for span in iter_boxes(moov, 0, len(moov), ""):
        if span.fourcc == b"moov":
            return any(child.fourcc == b"mvex" for child in iter_boxes(moov, span.payload_offset, span.end, "moov"))
    return False


def _track_report(track: Track, movie_timescale: int) -> dict[str, Any]:
    table = track.table
    timescale = table.timescale
    entry = track.sample_entry
    info = describe_sample_entry(entry or b"", track.handler_type)
    duration_ticks = table.media_duration_ticks
    sync = sync_samples(table, 0, table.sample_count)
    sync_times = table.dts_at(sync)
    gop_s = None
    if len(sync_times) >= 2:
        gaps = np.diff(sync_times) / timescale
        gop_s = {"min": round(float(gaps.min()), 6), "avg": round(float(gaps.mean()), 6),
                 "max": round(float(gaps.max()), 6)}
    report: dict[str, Any] = {
        "track_id": track.track_id,
        "handler": track.handler_type.decode("latin-1"),
        "codec": info.fourcc.decode("latin-1"),
        "codec_string": info.codec_string,
        "timescale": timescale,
        "duration_s": round(duration_ticks / timescale, 6),
        "sample_count": table.sample_count,
        "sync_sample_count": int(len(sync)),
        "gop_s": gop_s,
        "edit_list": [{"segment_duration_s": round(edit.segment_duration / movie_timescale, 6),
                       "media_time": edit.media_time} for edit in track.edits],
        "language": track.language,
    }
    if info.width is not None:
        report["width"], report["height"] = info.width, info.height
    if info.sample_rate_hz is not None:
        report["sample_rate_hz"], report["channel_count"] = info.sample_rate_hz, info.channel_count
    return report


async def inspect_report(target: str, limits: MediaLimits | None = None) -> dict[str, Any]:
    """The report for a local path or an http(s) URL, as JSON-ready data.

    Raises:
        OriginError: NotFound, MalformedMedia, UnsupportedMedia, UpstreamError ... (message is one line).
    """
    limits = limits or MediaLimits()
    blob = await _load_blob(target, limits)
    report: dict[str, Any] = {
        "file": target,
        "file_size": blob.file_size,
        "moov_offset": blob.moov_offset,
        "moov_size": len(blob.moov),
        "moov_position": "head" if blob.moov_before_mdat else "tail",
        "faststart": blob.moov_before_mdat,
        "fragmented": _has_mvex(blob.moov),
    }
    if report["fragmented"]:
        report["tracks"] = []  # a fragmented file's samples live in moofs; the moov describes none
        return report
    try:
        movie_file = await movie_file_from_blob(blob, limits)
    except FragmentedMedia:
        report["fragmented"], report["tracks"] = True, []
        return report
    movie = movie_file.movie
    report["movie_timescale"] = movie.timescale
    report["movie_duration_s"] = round(movie.duration / movie.timescale, 6)
    report["tracks"] = [_track_report(track, movie.timescale) for track in movie.tracks]
    return report


def format_report(report: dict[str, Any]) -> str:
    """Human-readable lines for a report from inspect_report."""
    yes_no = {True: "yes", False: "no"}
    lines = [
        f"file:        {report['file']}",
        f"size:        {report['file_size']} bytes",
        f"moov:        {report['moov_size']} bytes at offset {report['moov_offset']} ({report['moov_position']})",
        f"faststart:   {yes_no[report['faststart']]}",
        f"fragmented:  {yes_no[report['fragmented']]}",
    ]
    if "movie_timescale" in report:
        lines.append(f"movie:       timescale {report['movie_timescale']}, duration {report['movie_duration_s']} s")
    for track in report["tracks"]:
        lines.append(f"track {track['track_id']}: {track['handler']} {track['codec']} ({track['codec_string']}), "
                     f"language {track['language']}")
        if "width" in track:
            lines.append(f"  picture:   {track['width']}x{track['height']}")
        if "sample_rate_hz" in track:
            lines.append(f"  sound:     {track['sample_rate_hz']} Hz, {track['channel_count']} channels")
        lines.append(f"  timing:    timescale {track['timescale']}, duration {track['duration_s']} s")
        lines.append(f"  samples:   {track['sample_count']}, sync {track['sync_sample_count']}")
        gop = track["gop_s"]
        if gop is not None:
            lines.append(f"  gop:       min {gop['min']} s, avg {gop['avg']} s, max {gop['max']} s")
        edits = ", ".join(f"{edit['segment_duration_s']} s @ {edit['media_time']}" for edit in track["edit_list"])
        lines.append(f"  edit list: {edits or 'none'}")
    return "\n".join(lines)


def run_inspect(target: str, as_json: bool) -> int:
    """CLI body: print the report; on an error print one line to stderr and return 1."""
    import asyncio

    try:
        report = asyncio.run(inspect_report(target))
    except OriginError as exc:
        print(f"origin-proxy inspect: {target}: {exc.message}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2) if as_json else format_report(report))
    return 0
