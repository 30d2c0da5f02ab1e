"""Async glue between a Source and the sans-I/O MP4 parser: find the moov, read only it, parse it.

Reads: one head read (`head_bytes`, usually ftyp + moov of a faststart file, or ftyp + the mdat
header), then for each top-level box whose header lies past what we hold, one read at that offset
(`head_bytes` again, so a moov at the end usually arrives whole with its header), then the rest of
the moov if it is larger. A moov-at-end file therefore costs 2-3 reads, never the mdat.
Parsing a large moov is CPU work; the caller may run `parse_moov` in an executor (we do above 1 MiB).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from .errors import FragmentedMedia, MalformedBox, UnsupportedMedia
from .isobmff.header import BoxSpan, NeedBytes, scan_top_level
from .isobmff.movie import MovieFile, parse_moov
from .source import Source

MAX_TOP_LEVEL_BOXES = 1024
PARSE_IN_EXECUTOR_BYTES = 1 << 20


@dataclass(frozen=True)
class MediaLimits:
    """Configured limits on what we agree to parse.

    max_moov_bytes: a larger moov raises UnsupportedMedia (501).
    max_samples: more samples in one track raises UnsupportedMedia (501).
    max_tracks: more trak boxes in the moov raises UnsupportedMedia (501).
    head_bytes: size of the first read of a file, and of each read at a top-level box past it.
    """

    max_moov_bytes: int = 64 * 1024 * 1024
    max_samples: int = 20_000_000
    head_bytes: int = 64 * 1024
    max_tracks: int = 256


async def load_movie_file(source: Source, limits: MediaLimits) -> MovieFile:
    """Read the top-level boxes, then only the moov, and parse it (ISO/IEC 14496-12 §4.2, §8.1).

    Returns:
        MovieFile; immutable, numpy columns read-only; `nbytes` approximates its memory cost.
    Raises:
        MalformedMedia (502), UnsupportedMedia / FragmentedMedia (501/415), and whatever
        source.read raises (NotFound, UpstreamError, UpstreamTimeout, SourceChanged).
    """
    file_size = source.size_bytes
    data_offset, data = 0, await source.read(0, min(limits.head_bytes, file_size))
    offset = 0
    ftyp = b""
    seen_mdat = False
    for _ in range(MAX_TOP_LEVEL_BOXES):
        if offset >= file_size:
            raise MalformedBox("/", "no moov box in the file")
        step = scan_top_level(data, data_offset, offset, file_size)
        if isinstance(step, NeedBytes):
            data_offset, data = offset, await source.read(offset, min(limits.head_bytes, file_size - offset))
            continue
        span: BoxSpan = step
        if span.fourcc == b"moov":
            if span.size > limits.max_moov_bytes:
                raise UnsupportedMedia(
                    f"moov of {span.size} bytes is over the limit of {limits.max_moov_bytes}", identity=source.identity
                )
            rel = span.offset - data_offset
            moov = data[rel : rel + span.size]
            if len(moov) < span.size:
                moov = moov + await source.read(span.offset + len(moov), span.size - len(moov))
            if len(moov) != span.size:
                raise MalformedBox("moov", f"file ends inside the moov ({len(moov)} of {span.size} bytes)")
            if span.size > PARSE_IN_EXECUTOR_BYTES:
                movie = await asyncio.get_running_loop().run_in_executor(
                    None, parse_moov, moov, file_size, limits.max_samples, limits.max_tracks
                )
            else:
                movie = parse_moov(moov, file_size, limits.max_samples, limits.max_tracks)
            return MovieFile(movie, ftyp, file_size, span.offset, span.size, not seen_mdat)
        if span.fourcc == b"ftyp" and not ftyp and span.size <= 4096:
            rel = span.offset - data_offset
            ftyp = data[rel : rel + span.size]
            if len(ftyp) < span.size:
                ftyp = await source.read(span.offset, span.size)
        elif span.fourcc == b"mdat":
            seen_mdat = True
        elif span.fourcc == b"moof":
            raise FragmentedMedia("fragmented MP4 (moof before moov) is not supported for this request")
        offset = span.end
    raise UnsupportedMedia(f"no moov in the first {MAX_TOP_LEVEL_BOXES} top-level boxes")
