"""An HTTP(S) upstream object read with Range requests (RFC 9110 §14), as a Source.

Open = one `GET` with `Range: bytes=0-0`: the Content-Range gives the complete length, the ETag (strong only) or
Last-Modified + length gives the validator. With an UpstreamVersions cache, what an open learned is reused for a
few seconds instead of asking again (objects with a strong ETag or a Last-Modified only: those that every later
read can guard). Every later read is a Range GET carrying that ETag (or Last-Modified
date) in `If-Range` and in `If-Match` (or `If-Unmodified-Since`), so a changed object answers 200 (the whole new
representation) or 412 instead of 206; we never splice two versions: 200, 412 or 416 raise SourceChanged, and so
does a 206 naming another ETag (or Last-Modified) than the opened one (an upstream that ignores conditionals).
Bodies are read in bounded chunks, each the bytes aiohttp's reader had (no re-buffering copy). Many small ranges (a CMAF fragment's sample runs) are read by `read_ranges`
with a few Range GETs in flight at once, each guarded as above.

Error mapping: 404/410 -> NotFound; refused, reset, 5xx, a wrong Content-Range, a short body -> UpstreamError (502);
a connect or read timeout -> UpstreamTimeout (504). Uses aiohttp's client only, with one shared ClientSession
(server/app.py owns it) whose ClientTimeout has no total, a connect and a sock_read limit.
Requests (by status), body bytes and failures are reported to `UPSTREAM_OBSERVER` (no-op by default; the edge
installs its Prometheus counters, server/observe.py), so this module imports no metrics library.
"""

from __future__ import annotations

import asyncio
import email.utils
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing, asynccontextmanager, contextmanager

import aiohttp
from cachetools import TTLCache
from yarl import URL

from ...errors import NotFound, SourceChanged, UpstreamError, UpstreamTimeout

# Range GETs one read_ranges call keeps in flight: enough to hide most round trips of a fragment's ~100 small
# ranges, few enough that one request does not take over the shared pool (connections_per_host, default 32).
MAX_RANGES_IN_FLIGHT = 8

class UpstreamObserver:
    """What upstream reads report: `request(status)` per response, `body_bytes(n)` per chunk read, `error(kind)`
    per failure ("timeout", "connection", "status_5xx"). This base class ignores everything."""

    def request(self, status: int) -> None:
        pass

    def body_bytes(self, count: int) -> None:
        pass

    def error(self, kind: str) -> None:
        pass


#: The observer every UpstreamSource reports to; replaced with `set_upstream_observer`.
UPSTREAM_OBSERVER: UpstreamObserver = UpstreamObserver()


def set_upstream_observer(observer: UpstreamObserver) -> None:
    global UPSTREAM_OBSERVER
    UPSTREAM_OBSERVER = observer


_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-(\d+)|\*)/(\d+)\s*$", re.IGNORECASE)


def client_timeout(connect_timeout_s: float, read_timeout_s: float) -> aiohttp.ClientTimeout:
    """No total limit (bodies may stream for hours), bounded connect and per-read silence."""
    return aiohttp.ClientTimeout(total=None, connect=connect_timeout_s, sock_connect=connect_timeout_s,
                                 sock_read=read_timeout_s)


def _parse_content_range(value: str | None) -> tuple[int | None, int | None, int] | None:
    """(first, last, complete_length) from `bytes a-b/N` or (None, None, N) from `bytes */N`; None if unusable."""
    match = _CONTENT_RANGE.match(value or "")
    if not match:
        return None
    first, last, complete = match.groups()
    if first is None:
        return None, None, int(complete)
    return int(first), int(last), int(complete)


class UpstreamVersions:
    """What recent opens learned, per URL: (length, ETag, Last-Modified), for `ttl_s` seconds.

    Reusing it is safe: every body read still carries the validator in If-Match/If-Range, so an object replaced
    within the TTL answers 412/200 and raises SourceChanged, and the edge then forgets everything here and
    reopens (server/respond.py). What it costs: a response made only from cached metadata (a manifest, a HEAD)
    can describe the previous version for up to `ttl_s` after a replacement. Bounded to `max_entries` URLs.
    """

    def __init__(self, ttl_s: float, max_entries: int = 10_000) -> None:
        self._entries: TTLCache = TTLCache(maxsize=max_entries, ttl=ttl_s)

    def get(self, url: str) -> tuple[int, str | None, str | None] | None:
        return self._entries.get(url)

    def put(self, url: str, size_bytes: int, etag: str | None, last_modified_text: str | None) -> None:
        if etag or last_modified_text:  # without a validator, later reads could not notice a replacement
            self._entries[url] = (size_bytes, etag, last_modified_text)

    def clear(self) -> None:
        self._entries.clear()


class UpstreamSource:
    """An opened upstream object. Build with `await UpstreamSource.open(session, url)`."""

    def __init__(self, session: aiohttp.ClientSession, url: str, size_bytes: int, etag: str | None,
                 last_modified_text: str | None) -> None:
        self.identity = url
        self.size_bytes = size_bytes
        self._session = session
        self._url = URL(url, encoded=True)  # remap.py already quoted it; never re-normalise
        self._etag = etag
        self._last_modified_text = last_modified_text
        parsed = email.utils.parsedate_to_datetime(last_modified_text) if last_modified_text else None
        self.last_modified: float | None = parsed.timestamp() if parsed else None
        if etag:
            self.validator = etag
        else:
            self.validator = f"{int(self.last_modified * 1e9) if self.last_modified else 0}-{size_bytes}"

    @classmethod
    async def open(cls, session: aiohttp.ClientSession, url: str,
                   versions: UpstreamVersions | None = None) -> UpstreamSource:
        """Learn the object's length and validator with one `Range: bytes=0-0` GET, or from `versions` when a
        recent open of the same URL learned them.

        Raises:
            NotFound: 404 / 410.
            UpstreamError: any other answer than 206 (or 200/416 for an empty object), a bad Content-Range.
            UpstreamTimeout: connect or read timeout.
        """
        if versions is not None and (known := versions.get(url)) is not None:
            return cls(session, url, *known)
        async with _request(session, URL(url, encoded=True), {"Range": "bytes=0-0"}, url) as resp:
            etag = resp.headers.get("ETag")
            if etag and not etag.startswith('"'):  # weak ETags cannot guard byte ranges (RFC 9110 §13.1.5)
                etag = None
            last_modified = resp.headers.get("Last-Modified")
            if resp.status in (206, 416):
                parsed = _parse_content_range(resp.headers.get("Content-Range"))
                if parsed is None or (resp.status == 206 and parsed[:2] != (0, 0)):
                    raise UpstreamError("upstream sent a bad Content-Range", url=url,
                                        content_range=resp.headers.get("Content-Range"))
                size_bytes = parsed[2]
                with _client_errors(url):  # read the 1-byte body: lets the connection be reused
                    await resp.content.read(65536)
            elif resp.status == 200 and resp.content_length == 0:
                size_bytes = 0
            elif resp.status == 200:
                raise UpstreamError("upstream ignores Range requests", url=url)
            else:
                raise UpstreamError(f"upstream answered {resp.status}", url=url, status=resp.status)
        if versions is not None:
            versions.put(url, size_bytes, etag, last_modified)
        return cls(session, url, size_bytes, etag, last_modified)

    def _same_version(self, headers) -> bool:
        """False when a 206 names another version than the one opened: a different ETag, or (without one) a
        different Last-Modified. Headers that are absent prove nothing either way."""
        if self._etag:
            etag = headers.get("ETag")
            return etag is None or etag == self._etag
        last_modified = headers.get("Last-Modified")
        return last_modified is None or self._last_modified_text is None or last_modified == self._last_modified_text

    async def aclose(self) -> None:
        """Nothing to release: connections go back to the shared session's pool."""

    async def __aenter__(self) -> UpstreamSource:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def read(self, offset: int, size: int) -> bytes:
        """Exactly `size` bytes at `offset` (fewer only at end of object). Raises as `stream`."""
        # aclosing: a cancelled read releases its response now, not when the generator is garbage collected.
        async with aclosing(self.stream(offset, size, chunk_bytes=max(size, 1))) as chunks:
            return b"".join([chunk async for chunk in chunks])

    async def read_ranges(self, ranges: list[tuple[int, int]], max_in_flight: int = MAX_RANGES_IN_FLIGHT) -> bytes:
        """The bytes of several (offset, size) ranges, concatenated in list order: one Range GET per range (each
        with the If-Range and If-Match guards of `stream`), at most `max_in_flight` at a time (and never more than
        the pool's `limit_per_host`). Meant for small ranges (a fragment's sample runs): the caller bounds the
        total, which is held in memory.

        Why concurrent single-range GETs and not one multi-range GET (RFC 9110 §14.6, multipart/byteranges):
        S3 and many origins and CDNs ignore or refuse a multi-range request (200 with the whole object, 416, or
        only the first range), so a fallback to single ranges would be needed anyway; and parsing multipart
        bodies of an untrusted upstream is more to get wrong. Concurrent GETs ask for exactly the same bytes,
        keep every per-range check, and turn N sequential round trips into about N / max_in_flight.

        Nothing is returned unless every range arrived whole from the opened version; on the first failure the
        other requests are cancelled. A caller that is cancelled cancels them too.

        Raises:
            SourceChanged, NotFound, UpstreamError, UpstreamTimeout: as `stream`, for the failed range with the
                lowest index among those that failed; UpstreamError too when a range lies past the object's end.
        """
        pieces: list[bytes] = [b""] * len(ranges)
        failures: list[tuple[int, BaseException]] = []
        pending = iter(range(len(ranges)))

        async def fetch() -> None:
            for index in pending:  # a shared iterator: each worker takes the next range not yet taken
                offset, size = ranges[index]
                try:
                    data = await self.read(offset, size)
                    if len(data) != size:
                        raise UpstreamError("upstream object ends before a planned range", url=self.identity,
                                            offset=offset + len(data), size_bytes=self.size_bytes)
                except (SourceChanged, NotFound, UpstreamError) as exc:  # UpstreamTimeout is an UpstreamError
                    failures.append((index, exc))
                    raise
                pieces[index] = data

        pool_limit = getattr(self._session.connector, "limit_per_host", 0) or max_in_flight
        workers = [asyncio.ensure_future(fetch()) for _ in range(max(1, min(max_in_flight, pool_limit, len(ranges))))]
        try:
            await asyncio.wait(workers, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for worker in workers:
                worker.cancel()
            # Retrieves every outcome (no "exception never retrieved"); connections go back to the pool.
            outcomes = await asyncio.gather(*workers, return_exceptions=True)
        if failures:
            raise min(failures, key=lambda failure: failure[0])[1]
        for outcome in outcomes:  # anything else a worker raised (not ours to name): let the middleware log it
            if isinstance(outcome, BaseException) and not isinstance(outcome, asyncio.CancelledError):
                raise outcome
        return b"".join(pieces)

    async def stream(self, offset: int, size: int, chunk_bytes: int = 262144,
                     first_chunk_bytes: int | None = None) -> AsyncIterator[bytes]:
        """offset..offset+size-1 (clipped to the object) in chunks of at most chunk_bytes (as they arrive); the
        first chunk gathers up to `first_chunk_bytes` (several reads of at most chunk_bytes, joined once), so a
        caller can read a wider first window without raising aiohttp's read-ahead for the rest of the body.

        Raises:
            SourceChanged: the upstream's validator no longer matches (200 instead of 206, 412, 416).
            NotFound: 404 / 410.
            UpstreamError: 5xx, a Content-Range other than asked, a body shorter than announced, a reset.
            UpstreamTimeout: no byte for read_timeout_s.
        """
        size = max(0, min(size, self.size_bytes - offset))
        if size == 0:
            return
        last = offset + size - 1
        headers = {"Range": f"bytes={offset}-{last}"}
        # Both guards: If-Range turns a mismatch into a 200, If-Match / If-Unmodified-Since into a 412;
        # upstreams differ in which they honour (aiohttp's static files ignore an ETag in If-Range).
        if self._etag:
            headers["If-Range"] = headers["If-Match"] = self._etag
        elif self._last_modified_text:
            headers["If-Range"] = headers["If-Unmodified-Since"] = self._last_modified_text
        url = str(self._url)
        async with _request(self._session, self._url, headers, url) as resp:
            if resp.status in (200, 412, 416):
                raise SourceChanged("upstream object changed while being served", url=url, status=resp.status)
            if resp.status != 206:
                raise UpstreamError(f"upstream answered {resp.status}", url=url, status=resp.status)
            if _parse_content_range(resp.headers.get("Content-Range")) != (offset, last, self.size_bytes):
                raise SourceChanged("upstream sent another range or length than asked", url=url,
                                    content_range=resp.headers.get("Content-Range"))
            if not self._same_version(resp.headers):  # an upstream that ignored If-Match and If-Range
                raise SourceChanged("upstream object changed while being served", url=url,
                                    etag=resp.headers.get("ETag"), last_modified=resp.headers.get("Last-Modified"))
            # Each chunk is what aiohttp's reader holds (up to chunk_bytes), yielded as is: no second copy. The
            # reader buffers at most about twice the session's read_bufsize, then stops reading the socket, so a
            # consumer that stops taking chunks stops the upstream transfer (TCP flow control).
            remaining = size
            if first_chunk_bytes and first_chunk_bytes > chunk_bytes:
                first: list[bytes] = []
                wanted = min(first_chunk_bytes, remaining)
                while wanted:
                    data = await self._read(resp, min(chunk_bytes, wanted), remaining, url)
                    first.append(data)
                    wanted -= len(data)
                    remaining -= len(data)
                    del data
                yield b"".join(first)
                del first
            while remaining:
                data = await self._read(resp, min(chunk_bytes, remaining), remaining, url)
                remaining -= len(data)
                yield data
                del data

    @staticmethod
    async def _read(resp: aiohttp.ClientResponse, count: int, remaining: int, url: str) -> bytes:
        with _client_errors(url):
            data = await resp.content.read(count)
        if not data:
            raise UpstreamError("upstream body ended early", url=url, missing_bytes=remaining)
        UPSTREAM_OBSERVER.body_bytes(len(data))
        return data


@contextmanager
def _client_errors(url: str) -> Iterator[None]:
    """Turn aiohttp client failures into our error tree (timeouts first: they are ClientErrors too)."""
    try:
        yield
    except (asyncio.TimeoutError, aiohttp.ServerTimeoutError):
        UPSTREAM_OBSERVER.error("timeout")
        raise UpstreamTimeout("upstream timed out", url=url) from None
    except aiohttp.ClientError as exc:
        UPSTREAM_OBSERVER.error("connection")
        raise UpstreamError("upstream connection failed", url=url, error=repr(exc)) from None


@asynccontextmanager
async def _request(session: aiohttp.ClientSession, url: URL, headers: dict[str, str], url_text: str):
    """A GET whose response is released on exit; status 404/410 -> NotFound, >= 500 -> UpstreamError."""
    headers = {"Accept-Encoding": "identity", **headers}
    with _client_errors(url_text):
        resp = await session.get(url, headers=headers, allow_redirects=False, auto_decompress=False)
    UPSTREAM_OBSERVER.request(resp.status)
    try:
        if resp.status in (404, 410):
            raise NotFound("not found upstream", url=url_text, status=resp.status)
        if resp.status >= 500:
            UPSTREAM_OBSERVER.error("status_5xx")
            raise UpstreamError(f"upstream answered {resp.status}", url=url_text, status=resp.status)
        yield resp
    finally:
        resp.release()
