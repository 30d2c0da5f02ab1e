"""Serving a Plan (DESIGN.md §2): the machinery every media response shares (server/media.py, server/packaging.py).
Metadata loading (the cached MovieFile) is store/metadata.py; this module only streams.

Flow: open the source -> the handler's plan builder (a Plan, an ETag variant, a Cache-Control) -> conditionals
(RFC 9110 §13) -> ranges (§14) -> status and every length settled -> prepare() -> stream the parts.

A SourceChanged before the headers go out (the upstream object changed between our reads) reopens the source and
settles again, once. To make that window cover the first body bytes too, the first upstream bytes are fetched
before prepare(): the first chunk of a large range, or the whole first run of small ranges. After prepare() any
failure aborts the connection (server/errors.py).
Body bytes go through the one writer (server/body.py): consecutive generated parts as one stream of zero-copy
slices (a slice across two parts joined) with a drain between them (the heads of clips and segments are shared,
from the head cache, store/heads.py); a SourceRange of
SMALL_RANGE_BYTES or more with `loop.sendfile` (local) or streamed in chunks of at most 64 KiB (upstream, each
chunk dropped once written; a slow client stops the upstream read through aiohttp's bounded read-ahead). A
prefetched chunk is released as soon as it is written.
Consecutive smaller ranges (a fragment's sample runs, interleaved with other tracks' samples in the file) are
gathered in runs of at most SMALL_RUN_BYTES and written at once: read with exact preads in one thread hop (local),
or with a few Range GETs in flight at a time (upstream, `UpstreamSource.read_ranges`), never reading the gaps.
A run is written only when all of it arrived, so a failure inside it never leaves a part of it in the body.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass

from aiohttp import web

from ..errors import SourceChanged
from ..plan import Part, Plan, SourceRange, materialize, part_size
from ..remap import SourceRef
from ..store.source import Source
from ..store.source.local import LocalSource
from .body import BodyWriter, note_connection_lost
from .errors import STARTED_RESPONSE
from .http_semantics import http_date, if_range_allows, multipart_body, not_modified, parse_range, strong_etag
from .state import EDGE_STATE, EdgeState

log = logging.getLogger("origin_proxy.server")

# Upstream chunk: aiohttp raises a response's read-ahead to twice the size one read asks for
# (StreamReader.set_read_chunk_size), so this also bounds what a stalled reader's upstream response buffers.
# 32 KiB: ~256 KiB per slow HTTP-rule reader; one fast stream still moves ~450 MB/s on loopback (256 KiB: ~650).
CHUNK_BYTES = 32 * 1024
PREFETCH_BYTES = 64 * 1024  # the first upstream bytes read before the headers go out (a fault there is a clean 502)
SMALL_RANGE_BYTES = 64 * 1024  # ranges below this are gathered into runs rather than sendfile'd or streamed
SMALL_RUN_BYTES = 4 * 1024 * 1024  # at most this much (plus one small range) held in memory per run


class _HeadersWithBody(web.StreamResponse):
    """A StreamResponse whose status line and headers leave in the same write as the first body bytes (one send
    and one segment instead of two, as aiohttp's own `Response` does); `BodyWriter.sendfile` flushes them before a
    sendfile, and `write_eof` sends them for a response without a body."""

    _send_headers_immediately = False  # aiohttp >= 3.12; older versions send them at prepare() as before


@dataclass(frozen=True)
class Planned:
    """What a handler's plan builder returns for one opened source.

    Attributes:
        plan: the body.
        etag_variant: what, besides the source version, the body depends on ('' for the file as is; the clip
            query; the packaging resource and format token).
        cache_control: the Cache-Control header value.
    """

    plan: Plan
    etag_variant: str
    cache_control: str


PlanBuilder = Callable[[Source], Awaitable[Planned]]


@dataclass
class _Prefetched:
    """Body bytes read before the headers went out: they cover body[start:stop]."""

    start: int
    stop: int
    first: bytes | None  # the first chunk of one large range, or a whole run of small ranges; None once written
    rest: AsyncIterator[bytes] | None  # the large range's remaining chunks; None when `first` is all of it


@dataclass
class _Settled:
    """A response whose status and headers are final, and what its body is made of."""

    response: web.StreamResponse
    body: list[Part] | None  # None: no body (HEAD)
    source: Source
    prefetched: _Prefetched | None = None


async def serve_plan(request: web.Request, state: EdgeState, ref: SourceRef, build: PlanBuilder) -> web.StreamResponse:
    """Answer GET/HEAD of `ref` with the Plan `build(source)` makes: ETag, Last-Modified, 304, Range (one or many),
    HEAD without a body. Raises OriginErrors before the headers go out (mapped by server/errors.py)."""
    for attempt in (1, 2):
        stack = AsyncExitStack()
        try:
            settled = await _settle(request, state, ref, build, stack)
            break
        except SourceChanged as exc:
            await stack.aclose()
            state.forget_upstream_versions()  # the reopen must ask the upstream, not reuse what it learned
            if attempt == 2:
                raise
            log.info("%s changed while being read (%s); reopening", ref.identity, exc.message)
        except BaseException:
            await stack.aclose()
            raise
    async with stack:
        if isinstance(settled.response, web.Response):  # 304: complete already
            return settled.response
        request[STARTED_RESPONSE] = settled.response
        try:
            # prepare() is inside: the client may leave while the first bytes are prefetched (a whole run of a
            # fragment's ranges), and writing the headers then fails the same way as writing the body.
            await settled.response.prepare(request)
            if settled.body is not None:
                await _write_body(request, settled)
        except ConnectionError as exc:  # the client went away; nothing to answer
            note_connection_lost(request)
            log.info("%s %s: client connection lost: %r", request.method, request.path_qs, exc)
            return settled.response
        await settled.response.write_eof()
        return settled.response


async def _settle(request: web.Request, state: EdgeState, ref: SourceRef, build: PlanBuilder,
                  stack: AsyncExitStack) -> _Settled:
    source = await state.open_source(ref)
    stack.push_async_callback(source.aclose)
    planned = await build(source)
    plan = planned.plan

    etag = strong_etag(source.identity, source.validator, planned.etag_variant)
    headers = {"ETag": etag, "Cache-Control": planned.cache_control, "Accept-Ranges": "bytes"}
    if source.last_modified is not None:
        headers["Last-Modified"] = http_date(source.last_modified)
    if not_modified(request.headers, etag, source.last_modified):
        return _Settled(web.Response(status=304, headers=headers), None, source)

    ranges = None
    if if_range_allows(request.headers, etag, source.last_modified):
        ranges = parse_range(request.headers.get("Range"), plan.total_bytes)  # may raise 416
    if ranges is None:
        status, body, body_type = 200, list(plan.parts), plan.content_type
    elif len(ranges) == 1:
        first, last = ranges[0]
        status, body, body_type = 206, plan.slice(first, last), plan.content_type
        headers["Content-Range"] = f"bytes {first}-{last}/{plan.total_bytes}"
    else:
        multipart = multipart_body(plan, ranges, secrets.token_hex(12))
        status, body, body_type = 206, list(multipart.parts), multipart.content_type

    response = _HeadersWithBody(status=status, headers=headers)
    response.content_type = body_type
    response.content_length = sum(part_size(p) for p in body)
    if request.method == "HEAD":
        return _Settled(response, None, source)
    settled = _Settled(response, body, source)
    if not isinstance(source, LocalSource):
        settled.prefetched = await _prefetch_first_range(body, source, stack)
    return settled


async def _prefetch_first_range(body: list[Part], source: Source, stack: AsyncExitStack) -> _Prefetched | None:
    """Read the first upstream bytes of the body (the first chunk of a large range, or all of a first run of small
    ranges), so that a changed or failing upstream is known while a clean error status (or a reopen) is still
    possible."""
    for index, part in enumerate(body):
        if isinstance(part, SourceRange):
            if part.size < SMALL_RANGE_BYTES:
                run, stop = _small_run(body, index)
                return _Prefetched(index, stop, await source.read_ranges(run), None)
            chunks = source.stream(part.offset, part.size, CHUNK_BYTES, PREFETCH_BYTES)
            stack.push_async_callback(chunks.aclose)
            return _Prefetched(index, index + 1, await anext(chunks), chunks)
    return None


def _small_run(body: list[Part], start: int) -> tuple[list[tuple[int, int]], int]:
    """The consecutive SourceRanges below SMALL_RANGE_BYTES from body[start] on, as (offset, size) pairs, until
    SMALL_RUN_BYTES are reached; and the body index after them. body[start] must be such a range."""
    run: list[tuple[int, int]] = []
    run_bytes, index = 0, start
    while (index < len(body) and isinstance(part := body[index], SourceRange) and part.size < SMALL_RANGE_BYTES
           and run_bytes < SMALL_RUN_BYTES):
        run.append((part.offset, part.size))
        run_bytes += part.size
        index += 1
    return run, index


async def _write_body(request: web.Request, settled: _Settled) -> None:
    response, source, body, prefetched = settled.response, settled.source, settled.body, settled.prefetched
    settled.prefetched = None
    writer = BodyWriter(request, response, request.app[EDGE_STATE].config.service.write_slice_bytes)
    index = 0
    while index < len(body):
        part = body[index]
        if prefetched is not None and index == prefetched.start:
            first, prefetched.first = prefetched.first, None
            await writer.write_chunk(first)
            del first  # released now, not when the body ends
            if prefetched.rest is not None:
                async for chunk in prefetched.rest:
                    await writer.write_chunk(chunk)
                    del chunk
            index = prefetched.stop
        elif not isinstance(part, SourceRange):
            stop = index + 1
            while stop < len(body) and not isinstance(body[stop], SourceRange):
                stop += 1
            await writer.write_buffers(materialize(body[i]) for i in range(index, stop))
            index = stop
        elif part.size < SMALL_RANGE_BYTES:
            run, index = _small_run(body, index)
            await writer.write_chunk(await source.read_ranges(run))
        elif isinstance(source, LocalSource):
            await writer.sendfile(source.file, part.offset, part.size)
            index += 1
        else:
            async for chunk in source.stream(part.offset, part.size, CHUNK_BYTES):
                await writer.write_chunk(chunk)
                del chunk
            index += 1
