"""The one place where OriginErrors become HTTP statuses (STYLE.md §2.6).

The status is looked up along the exception's MRO, so a subclass inherits its parent's status unless listed.
Reasoning behind the table: who is at fault depends on where the bytes came from. Media we fetched from our
upstream that contradicts itself is the upstream's fault, so 502 (nginx-vod answers 404 there; a 404 would let a
CDN cache a "missing" file that is really broken). Valid media we do not handle is 501, and fragmented input for a
progressive-only feature is 415, as is a file with no track a packaging protocol can carry (the
media type of the source is the problem, not the request). A validator change between the metadata and the body reads is 502: the client
may retry and will get the new version.

Every OriginError gives one WARNING line and a one-line text/plain body; anything else is a bug: one ERROR line with
the traceback and a 500. When the response was already started (headers sent), nothing can be said to the client
any more: the connection is aborted so it sees a short body, never a finished one.
"""

from __future__ import annotations

import logging

from aiohttp import web

from ..errors import (
    BadRequest,
    Conflict,
    Forbidden,
    FragmentedMedia,
    IngestError,
    IngestOutOfOrder,
    MalformedIngest,
    MalformedMedia,
    MethodNotAllowed,
    NotFound,
    OriginError,
    RangeNotSatisfiable,
    SourceChanged,
    UnpackageableMedia,
    UnsupportedIngest,
    UnsupportedMedia,
    UpstreamError,
    UpstreamTimeout,
    VersionGone,
)

log = logging.getLogger("origin_proxy.server")

STATUS_BY_ERROR: dict[type[OriginError], int] = {
    BadRequest: 400,
    RangeNotSatisfiable: 416,
    Forbidden: 403,
    NotFound: 404,
    MalformedMedia: 502,
    UnsupportedMedia: 501,
    FragmentedMedia: 415,
    UnpackageableMedia: 415,
    UpstreamError: 502,
    SourceChanged: 502,
    VersionGone: 410,
    UpstreamTimeout: 504,
    MethodNotAllowed: 405,
    Conflict: 409,
    IngestError: 400,
    MalformedIngest: 400,
    IngestOutOfOrder: 412,
    UnsupportedIngest: 415,
}

# The StreamResponse a handler has prepare()d, so the middleware knows headers are gone.
STARTED_RESPONSE = web.RequestKey("started_response", web.StreamResponse)


def status_for(exc: OriginError) -> int:
    """HTTP status of an OriginError: the entry of its nearest listed class (500 if none)."""
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except OriginError as exc:
        status = status_for(exc)
        started = _abort_if_started(request)
        log.warning("%s %s -> %s %s: %s %s", request.method, request.path_qs, _outcome(started, status),
                    type(exc).__name__, exc.message, exc.context or "")
        if started is not None:
            return started
        headers = {}
        if isinstance(exc, RangeNotSatisfiable):
            headers["Content-Range"] = f"bytes */{exc.complete_length}"
        elif isinstance(exc, MethodNotAllowed):
            headers["Allow"] = ", ".join(exc.allowed)
        elif isinstance(exc, VersionGone):
            headers["Cache-Control"] = "no-store"
        return web.Response(status=status, text=exc.message.splitlines()[0] + "\n", headers=headers)
    except Exception:
        started = _abort_if_started(request)
        log.exception("%s %s -> %s", request.method, request.path_qs, _outcome(started, 500))
        return started if started is not None else web.Response(status=500, text="internal error\n")


def _abort_if_started(request: web.Request) -> web.StreamResponse | None:
    """The response whose headers are already sent, after dropping the connection (so the client sees a short
    body, never a finished one); None when nothing was sent yet."""
    started = request.get(STARTED_RESPONSE)
    if started is not None and request.transport is not None:
        request.transport.abort()
    return started


def _outcome(started: web.StreamResponse | None, status: int) -> str:
    return f"aborted after {started.status} headers" if started is not None else str(status)
