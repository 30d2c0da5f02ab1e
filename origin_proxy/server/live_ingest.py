"""Ingest glue for publishing points (DESIGN.md §6, issue 11): the thin async side of live/ingest.py.

`POST|PUT BASE/Streams(ID)` (Smooth ingest long POST, CMAF ingest long POST per track, or per-segment POST/PUT of
the header then each segment) and the seed's `POST BASE/NAME.ism?stream_id=ID`. The token is checked before a byte
of the body is read; the body is parsed as it arrives. A rejected body is answered at once with its status and the
connection closed: 403 token, 404 unknown point/bad name, 412 fragment before a header, 415 codec, 400 anything
else malformed (DASH-IF Live Media Ingest §6.x status rules).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time

from aiohttp import StreamReader, web

from ..errors import Forbidden, IngestError, NotFound, OriginError
from ..live.ingest import NEED_DATA, EndOfStream, Fragment, Header, IngestParser
from ..live.point import PublishingPoint
from ..remap import SourceRef
from .errors import status_for
from .live_points import get_point

log = logging.getLogger("origin_proxy.live")

# An encoder that sends nothing for this long is gone (a dead encoder must not hold its stream or a wait forever).
INGEST_IDLE_TIMEOUT_S = 30.0
_STREAMS = re.compile(r"Streams\(([A-Za-z0-9_.\-]+)\)")


def stream_id_of(request: web.Request, name: str, rest: str) -> str:
    match = _STREAMS.fullmatch(rest)
    if match:
        return match.group(1)
    if rest == name.removesuffix(".isml") + ".ism":
        stream_id = request.query.get("stream_id", "")
        if re.fullmatch(r"[A-Za-z0-9_.\-]+", stream_id):
            return stream_id
    raise NotFound(f"not an ingest URL: {rest!r} (POST to Streams(ID))")


def _salvage(content: StreamReader) -> bytes:
    """The body bytes aiohttp still buffers after the connection was lost. Its readers raise the loss at once,
    even with data buffered (a fast encoder may send its whole body and close before we read it); the private
    `_read_nowait` drains the buffer without that check (aiohttp 3.x)."""
    read = getattr(content, "_read_nowait", None)
    try:
        return read(-1) if read is not None else b""
    except Exception:  # noqa: BLE001 - a changed aiohttp internal: nothing to salvage
        return b""


def _check_token(request: web.Request, expected: str | None) -> None:
    given = request.headers.get("Authorization", "")
    if expected is None or not given.startswith("Bearer "):
        raise Forbidden("ingest needs Authorization: Bearer <token>")
    if not hmac.compare_digest(given[7:].strip().encode(), expected.encode()):
        raise Forbidden("wrong ingest token")


async def ingest(request: web.Request, ref: SourceRef, name: str, stream_id: str) -> web.StreamResponse:
    settings = ref.rule.live
    connected = False
    point: PublishingPoint | None = None
    try:
        _check_token(request, settings.ingest_token)
        point = get_point(request.app, ref, name, settings.create_on_ingest)
        stream = point.streams.get(stream_id)
        parser = IngestParser(header=stream.header if stream is not None else None)
        lost = False

        def drain() -> None:
            nonlocal connected
            while (event := parser.next_event()) is not NEED_DATA:
                if isinstance(event, Header):
                    point.on_header(stream_id, event)
                    connected = True
                elif isinstance(event, Fragment):
                    if not connected:  # per-segment ingest: a segment after a header sent earlier
                        point.on_header(stream_id, parser.header)
                        connected = True
                    point.on_fragment(stream_id, event, time.time())
                elif isinstance(event, EndOfStream):
                    point.on_end(stream_id, event)

        try:
            while True:
                async with asyncio.timeout(INGEST_IDLE_TIMEOUT_S):  # no task per read, unlike wait_for
                    chunk = await request.content.readany()
                if not chunk:
                    break
                parser.feed(chunk)
                drain()
        except TimeoutError:
            lost = True
            log.warning("%s %s: no body byte for %.0f s after %d bytes; the connection is closed and a partial "
                        "fragment dropped", request.method, request.path, INGEST_IDLE_TIMEOUT_S, parser.bytes_seen)
            if request.transport is not None:
                request.transport.close()
        except (Exception, asyncio.CancelledError) as exc:
            # The connection was lost (a CancelledError when the server cancels handlers on disconnect, as
            # aiohttp's test server does), or aiohttp's payload parser failed (a chunked body cut off).
            if isinstance(exc, OriginError):
                raise
            rest = _salvage(request.content)  # what arrived before the loss is still whole ingest
            if rest:
                parser.feed(rest)
                drain()
            lost = not request.content.is_eof()  # the whole body had arrived: only our answer is lost
            if lost and parser.finished:  # ffmpeg may close right after its mfra, without waiting for our answer
                log.debug("%s %s: encoder closed after the end of its stream", request.method, request.path)
            elif lost:
                log.info("%s %s: encoder connection lost after %d bytes (%r); a partial fragment is dropped",
                         request.method, request.path, parser.bytes_seen, exc)
            if isinstance(exc, asyncio.CancelledError):
                if not lost:
                    parser.feed(b"")
                    drain()
                raise
        if not lost:
            parser.feed(b"")
            drain()
        return web.Response(status=200, text="ok\n")
    except OriginError as exc:
        status = status_for(exc)
        log.warning("%s %s -> %d %s: %s", request.method, request.path, status, type(exc).__name__, exc.message)
        response = web.Response(status=status, text=exc.message.splitlines()[0] + "\n",
                                headers={"Connection": "close"})
        response.force_close()
        if isinstance(exc, IngestError) and request.transport is not None:
            request.transport.pause_reading()
        return response
    finally:
        if connected and point is not None:
            point.disconnect(stream_id)
