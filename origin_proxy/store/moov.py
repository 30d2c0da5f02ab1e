"""Async glue between a Source and the sans-I/O MP4 parser: find the moov, read only it, parse it (store/).

Reads: one head read (`head_bytes`, usually ftyp + moov of a faststart file, or ftyp + the mdat
header), then for each top-level box whose header lies past what we hold, one read at that offset
(`head_bytes` again, so a small moov at the end arrives whole with its header); a moov not held whole
is then read once, exactly, from its offset (no joining of what we hold with the rest: that copied a
large moov twice). A moov-at-end file therefore costs 2-3 reads, never the mdat.
Parsing a large moov is CPU work; it runs in the default executor above PARSE_IN_EXECUTOR_BYTES (256 KiB). For a local
file the reads and the parse are one executor job (the walk is a sans-I/O generator, `_find_moov`, driven by
blocking reads there and by awaited reads for HTTP sources).

Split in two so the raw moov can be shared between nodes (store/redis_cache.py): `load_moov_bytes` does the reads and
returns a MoovBlob, `movie_file_from_blob` parses one; `load_movie_file` is the two in a row.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator

from ..errors import FragmentedMedia, MalformedBox, MalformedMedia, UnsupportedMedia
from ..isobmff.header import BoxSpan, NeedBytes, scan_top_level
from ..isobmff.movie import MovieFile, parse_moov
from .limits import MediaLimits, MoovBlob
from .source import Source

__all__ = ["MediaLimits", "MoovBlob", "load_moov_bytes", "load_movie_file", "movie_file_from_blob"]

MAX_TOP_LEVEL_BOXES = 1024
# Measured (bench/cold_parse.py with the server's malloc thresholds): the parse costs ~1.5 ms plus ~0.6-1.2 ms per
# moov MB (2.1 ms for movie_10m's 0.46 MB, 3.6 ms for movie_360p_2h's 5.4 MB), a hop to the default executor
# ~0.05-0.1 ms on an idle machine (0.3-0.9 ms of wall time on a loaded one). Below 256 KiB the parse is mostly its
# fixed part and the hop is not worth its share; above it the loop is not blocked for the parse (a 5.4 MB moov
# inline: ~3.5 ms of every other request's latency, for a cold TTFB within the noise of the executor's).
PARSE_IN_EXECUTOR_BYTES = 256 << 10


async def load_movie_file(source: Source, limits: MediaLimits) -> MovieFile:
    """Read the top-level boxes, then only the moov, and parse it (ISO/IEC 14496-12 §4.2, §8.1).

    A source with blocking reads (LocalSource.read_blocking) has its reads and the parse done in one job of the
    default executor: one thread hop per cold load instead of one per read plus one for the parse (each hop is
    0.05-0.1 ms idle, up to ~1 ms of wall time on a loaded machine). Other sources read on the loop (their reads
    are network I/O) and parse as movie_file_from_blob does.

    Returns:
        MovieFile; immutable, numpy columns read-only; `nbytes` approximates its memory cost.
    Raises:
        MalformedMedia (502), UnsupportedMedia / FragmentedMedia (501/415), and whatever
        source.read raises (NotFound, UpstreamError, UpstreamTimeout, SourceChanged).
    """
    read_blocking = getattr(source, "read_blocking", None)
    if read_blocking is None:
        return await movie_file_from_blob(await load_moov_bytes(source, limits), limits)

    def load() -> MovieFile:
        finder = _find_moov(source.size_bytes, limits, source.identity)
        try:
            wanted = next(finder)
            while True:
                wanted = finder.send(read_blocking(*wanted))
        except StopIteration as done:
            return _parse_blob(done.value, limits)

    return await asyncio.get_running_loop().run_in_executor(None, load)


def _parse_blob(blob: MoovBlob, limits: MediaLimits) -> MovieFile:
    if len(blob.moov) > limits.max_moov_bytes:
        raise UnsupportedMedia(f"moov of {len(blob.moov)} bytes is over the limit of {limits.max_moov_bytes}")
    movie = parse_moov(blob.moov, blob.file_size, limits.max_samples, limits.max_tracks)
    return MovieFile(movie, blob.ftyp, blob.file_size, blob.moov_offset, len(blob.moov), blob.moov_before_mdat)


async def movie_file_from_blob(blob: MoovBlob, limits: MediaLimits) -> MovieFile:
    """Parse a MoovBlob (in the default executor when the moov is over PARSE_IN_EXECUTOR_BYTES).

    Raises:
        MalformedMedia (502), UnsupportedMedia / FragmentedMedia (501/415).
    """
    if len(blob.moov) > PARSE_IN_EXECUTOR_BYTES:
        return await asyncio.get_running_loop().run_in_executor(None, _parse_blob, blob, limits)
    return _parse_blob(blob, limits)


async def load_moov_bytes(source: Source, limits: MediaLimits) -> MoovBlob:
    """Find the moov by walking the top-level boxes and read it, without parsing it (§4.2, §8.1).

    Raises:
        MalformedMedia (502): not an MP4 file (the first box header is impossible), no moov, or the file ends
            inside it.
        UnsupportedMedia / FragmentedMedia (501/415): moov over max_moov_bytes, moof before moov.
        Whatever source.read raises (NotFound, UpstreamError, UpstreamTimeout, SourceChanged).
    """
    finder = _find_moov(source.size_bytes, limits, source.identity)
    try:
        wanted = next(finder)
        while True:
            wanted = finder.send(await source.read(*wanted))
    except StopIteration as done:
        return done.value


def _find_moov(file_size: int, limits: MediaLimits, identity: str) -> Generator[tuple[int, int], bytes, MoovBlob]:
    """The walk of load_moov_bytes, sans I/O: yields each read it needs as (offset, size) and is sent the bytes
    (fewer only at end of file); returns the MoovBlob. Raises as load_moov_bytes."""
    data_offset, data = 0, (yield 0, min(limits.head_bytes, file_size))
    offset = 0
    ftyp = b""
    seen_mdat = False
    for _ in range(MAX_TOP_LEVEL_BOXES):
        if offset >= file_size:
            raise MalformedBox("/", "no moov box in the file")
        try:
            step = scan_top_level(data, data_offset, offset, file_size)
        except MalformedBox as exc:
            if offset == 0:  # the very first box makes no sense: this is no ISO BMFF / QuickTime file at all
                reason = str(exc.args[0]).removeprefix("malformed MP4: ")
                raise MalformedMedia(f"not an MP4 file (it does not start with a box: {reason})",
                                     identity=identity) from exc
            raise
        if isinstance(step, NeedBytes):
            data_offset, data = offset, (yield offset, min(limits.head_bytes, file_size - offset))
            continue
        span: BoxSpan = step
        if span.fourcc == b"moov":
            if span.size > limits.max_moov_bytes:
                raise UnsupportedMedia(
                    f"moov of {span.size} bytes is over the limit of {limits.max_moov_bytes}", identity=identity
                )
            rel = span.offset - data_offset
            if rel >= 0 and rel + span.size <= len(data):  # held whole: one slice
                moov = data[rel : rel + span.size]
            else:  # one read of exactly the moov (re-reading the little we hold beats joining two copies)
                moov = yield span.offset, span.size
            if len(moov) != span.size:
                raise MalformedBox("moov", f"file ends inside the moov ({len(moov)} of {span.size} bytes)")
            return MoovBlob(bytes(ftyp), moov if isinstance(moov, bytes) else bytes(moov), file_size, span.offset,
                            not seen_mdat)
        if span.fourcc == b"ftyp" and not ftyp and span.size <= 4096:
            rel = span.offset - data_offset
            ftyp = data[rel : rel + span.size]
            if len(ftyp) < span.size:
                ftyp = yield span.offset, span.size
        elif span.fourcc == b"mdat":
            seen_mdat = True
        elif span.fourcc == b"moof":
            raise FragmentedMedia("fragmented MP4 (moof before moov) is not supported for this request")
        offset = span.end
    raise UnsupportedMedia(f"no moov in the first {MAX_TOP_LEVEL_BOXES} top-level boxes")
