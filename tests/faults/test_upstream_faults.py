"""An upstream that misbehaves on command, behind the edge: errors, stalls, resets, ignored or wrong ranges, an
object replaced between the metadata read and the body read, and a slow trickle.

The rule: a failure known before the response headers go out is a 502/504 with a one-line text body; a failure
after them aborts the connection (the client sees a payload error or a disconnect), never a clean short body.
Clips come from mp4/bbb_prog_10s.mp4 (moov at the end: the moov read is an upstream request of its own) and
mp4/sample.mp4; their media verdicts come from ffprobe/ffmpeg (tests/mediatools.py).
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

import mediatools as mt
from conftest import MEDIA_ROOT, media

BBB = "mp4/bbb_prog_10s.mp4"
SAMPLE = "mp4/sample.mp4"
CASE_TIMEOUT_S = 20
# The edge reads the first 256 KiB chunk of the body before it sends headers (server/media.py); a fault placed
# past this many bytes is therefore only seen after the headers are out.
CUT = 256 * 1024 + 64 * 1024

Predicate = Callable[[int, int], bool]
OPEN: Predicate = lambda first, last: (first, last) == (0, 0)  # the edge's `Range: bytes=0-0` probe
BODY: Predicate = lambda first, last: (first, last) != (0, 0)
BIG: Predicate = lambda first, last: last - first + 1 > CUT  # only the long body read, after the metadata


class FaultyUpstream:
    """An HTTP server over in-memory files that answers Range GETs correctly until told to misbehave.

    `fault` names the misbehaviour, applied to the requests for which `when(first, last)` holds; `honour_conditionals`
    False makes it ignore If-Match/If-Range (as some origins do); `replace(name, data, etag)` swaps an object.
    """

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = dict(files)
        self.etags = {name: f'"v1-{name}"' for name in files}
        self.fault: str | None = None
        self.when: Predicate = lambda first, last: True
        self.honour_conditionals = True
        self.before: Callable[[int, int], None] | None = None  # called with each request's range before answering
        self.cut = CUT  # where stall_body / reset_body / short_body stop sending
        self.requests: list[str | None] = []
        self.release = asyncio.Event()
        self.url = ""

    def replace(self, name: str, data: bytes, etag: str) -> None:
        self.files[name] = data
        self.etags[name] = etag

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/m/{name:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.headers.get("Range"))
        name = request.match_info["name"]
        first, last = _range(request.headers.get("Range"))
        if self.before is not None:
            self.before(first, last)
        if name not in self.files:
            return web.Response(status=404, text="no such object\n")
        fault = self.fault if self.when(first, last) else None
        if fault in ("500", "404"):
            return web.Response(status=int(fault), text="upstream says no\n")
        if fault == "stall_headers":
            await self._stall()
        data, etag = self.files[name], self.etags[name]
        if self.honour_conditionals and request.headers.get("If-Match", etag) != etag:
            return web.Response(status=412, text="precondition failed\n")
        if fault == "full_200" or request.headers.get("Range") is None:
            return web.Response(body=data, headers={"ETag": etag}, content_type="video/mp4")
        last = min(last, len(data) - 1)
        body = data[first : last + 1]
        content_range = {
            "wrong_offsets": f"bytes {first + 1}-{last + 1}/{len(data)}",
            "wrong_total": f"bytes {first}-{last}/{len(data) + 1000}",
        }.get(fault, f"bytes {first}-{last}/{len(data)}")
        response = web.StreamResponse(status=206, headers={"ETag": etag, "Content-Range": content_range})
        response.content_type = "video/mp4"
        response.content_length = len(body)
        await response.prepare(request)
        if fault in ("stall_body", "reset_body", "short_body"):
            await response.write(body[: self.cut])
            if fault == "stall_body":
                await self._stall()
            elif fault == "reset_body":
                await asyncio.sleep(0.2)  # let the bytes written so far reach the edge: an RST discards unsent ones
                sock = request.transport.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with RST
                request.transport.abort()
            else:
                request.transport.close()  # a clean FIN, the announced length never reached
            return response
        if fault == "slow":
            for offset in range(0, len(body), 8192):
                await response.write(body[offset : offset + 8192])
                await asyncio.sleep(0.005)  # far below the edge's read timeout, but many of them
        else:
            await response.write(body)
        await response.write_eof()
        return response

    async def _stall(self) -> None:
        try:
            await asyncio.wait_for(self.release.wait(), timeout=5)
        except TimeoutError:
            pass


def _range(header: str | None) -> tuple[int, int]:
    if header is None:
        return 0, 2**62
    first, _, last = header.removeprefix("bytes=").partition("-")
    return int(first), int(last)


@pytest.fixture
async def faulty(aiohttp_server, edge_client):
    """(upstream, client): /f/ -> the faulty upstream (bbb and sample), /files/ -> ../shared/media as the oracle."""
    upstream = FaultyUpstream({BBB: media(BBB).read_bytes(), SAMPLE: media(SAMPLE).read_bytes()})
    server = await aiohttp_server(upstream.app())
    upstream.url = f"http://127.0.0.1:{server.port}"
    client = await edge_client([{"from": "/f/", "to": upstream.url + "/m/"},
                                {"from": "/files/", "to": f"file://{MEDIA_ROOT}/"}])
    yield upstream, client
    upstream.release.set()


async def _outcome(client, target: str, headers: dict[str, str] | None = None):
    """(status, headers, body, aborted): aborted when reading the body failed with a connection/payload error."""
    resp = await client.get(target, headers=headers)
    try:
        body = await resp.read()
    except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, aiohttp.ClientConnectionError):
        return resp.status, resp.headers, None, True
    return resp.status, resp.headers, body, False


async def _expect_error(client, target: str, status: int, text: bytes) -> None:
    got, headers, body, aborted = await _outcome(client, target)
    assert not aborted
    assert (got, body) == (status, text), (target, got, body)
    assert headers["Content-Type"].startswith("text/plain")


async def _expect_aborted(client, target: str) -> None:
    status, headers, body, aborted = await _outcome(client, target)
    assert status == 200 and int(headers["Content-Length"]) > CUT
    assert aborted, f"{target}: the body ended cleanly ({len(body)} of {headers['Content-Length']} bytes)"


async def _oracle(client, target: str) -> bytes:
    """The same file or clip through the file: rule."""
    resp = await client.get("/files/" + target)
    assert resp.status == 200
    return await resp.read()


TARGETS = [BBB, SAMPLE, BBB + "?start=2.5", SAMPLE + "?start=0.5&end=2"]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize(("fault", "when", "status", "text"), [
    ("500", OPEN, 502, b"upstream answered 500\n"),
    ("500", BODY, 502, b"upstream answered 500\n"),
    ("404", OPEN, 404, b"not found upstream\n"),
    ("stall_headers", OPEN, 504, b"upstream timed out\n"),
    ("stall_headers", BODY, 504, b"upstream timed out\n"),
    ("full_200", OPEN, 502, b"upstream ignores Range requests\n"),
    ("full_200", BODY, 502, b"upstream object changed while being served\n"),
    ("wrong_offsets", OPEN, 502, b"upstream sent a bad Content-Range\n"),
    ("wrong_offsets", BODY, 502, b"upstream sent another range or length than asked\n"),
    ("wrong_total", BODY, 502, b"upstream sent another range or length than asked\n"),
], ids=lambda value: value if isinstance(value, str) and not value.startswith("upstream") else None)
async def test_fault_before_headers_is_a_one_line_5xx(faulty, target, fault, when, status, text):
    upstream, client = faulty
    upstream.fault, upstream.when = fault, when
    async with asyncio.timeout(CASE_TIMEOUT_S):
        await _expect_error(client, "/f/" + target, status, text)
        upstream.fault = None  # the edge recovers as soon as the upstream does
        status, _, body, aborted = await _outcome(client, "/f/" + target)
        assert (status, aborted) == (200, False)
        assert body == await _oracle(client, target)


@pytest.mark.parametrize("target", [BBB, BBB + "?start=1"])
@pytest.mark.parametrize("fault", ["stall_body", "reset_body", "short_body"])
async def test_fault_after_headers_aborts_the_connection(faulty, target, fault):
    upstream, client = faulty
    upstream.fault, upstream.when = fault, BIG
    async with asyncio.timeout(CASE_TIMEOUT_S):
        await _expect_aborted(client, "/f/" + target)
        upstream.fault = None
        status, _, body, aborted = await _outcome(client, "/f/" + target)
        assert (status, aborted) == (200, False) and body == await _oracle(client, target)


@pytest.mark.parametrize(("target", "headers"), [(SAMPLE, None), (BBB + "?start=1", None),
                                                  (BBB, {"Range": "bytes=1000-99999"})])
@pytest.mark.parametrize("fault", ["reset_body", "short_body"])
async def test_fault_within_the_first_chunk_is_502_before_headers(faulty, fault, target, headers):
    """The upstream breaks off 50 KB into the body read: still inside the first chunk, which the edge reads before
    it sends headers, so the client gets a clean one-line 502 instead of an abort."""
    upstream, client = faulty
    upstream.fault, upstream.when, upstream.cut = fault, lambda first, last: last - first + 1 > 60_000, 50_000
    async with asyncio.timeout(CASE_TIMEOUT_S):
        status, _, body, aborted = await _outcome(client, "/f/" + target, headers=headers)
        assert not aborted
        assert status == 502
        assert body in (b"upstream connection failed\n", b"upstream body ended early\n")


async def test_slow_upstream_fast_client_gets_every_byte(faulty, tmp_path):
    upstream, client = faulty
    upstream.fault, upstream.when = "slow", BODY
    async with asyncio.timeout(CASE_TIMEOUT_S):
        for target in (BBB, BBB + "?start=2.5&end=8"):
            status, _, body, aborted = await _outcome(client, "/f/" + target)
            assert (status, aborted) == (200, False)
            assert body == await _oracle(client, target)
        out = tmp_path / "slow.mp4"
        out.write_bytes(body)
        assert mt.decode_errors(out) == ""


def _padded(path: Path, size: int) -> bytes:
    """The MP4 at `path` followed by a top-level `free` box, so that it is exactly `size` bytes long."""
    data = path.read_bytes()
    pad = size - len(data)
    assert pad >= 8
    return data + pad.to_bytes(4, "big") + b"free" + bytes(pad - 8)


@pytest.mark.parametrize("honour_conditionals", [True, False], ids=["conditional-upstream", "careless-upstream"])
async def test_object_replaced_between_moov_and_body_is_never_spliced(faulty, tmp_path, honour_conditionals):
    """The upstream swaps bbb for another movie of the very same size (sample.mp4 padded with a `free` box) just
    before the edge reads the clip's body, after it read and cached the old moov. A careless upstream ignores
    If-Match/If-Range and answers 206 with the new ETag. The edge must serve the new movie (or a 502), and the
    next request must be a correct clip of the new movie."""
    upstream, client = faulty
    upstream.honour_conditionals = honour_conditionals
    new = _padded(media(SAMPLE), len(upstream.files[BBB]))
    new_path = tmp_path / "new.mp4"
    new_path.write_bytes(new)

    moov_offset = next(offset for name, offset, _ in mt.top_level_boxes(media(BBB)) if name == "moov")

    def swap_before_the_body_read(first: int, last: int) -> None:
        # after the probes (0-0), the head read (from 0) and the moov read (at moov_offset): the mdat slice
        if 0 < first < moov_offset and upstream.etags[BBB] != '"v2"':
            upstream.replace(BBB, new, '"v2"')

    query = "?start=0.2&end=0.9"  # sample.mp4 lasts 1.024 s
    target = BBB + query
    async with asyncio.timeout(CASE_TIMEOUT_S):
        upstream.before = swap_before_the_body_read
        status, _, body, aborted = await _outcome(client, "/f/" + target)
        assert not aborted
        assert status in (200, 502), status
        if status == 200:
            assert body == await _clip_of(tmp_path, query)
        status, _, body, aborted = await _outcome(client, "/f/" + target)
        assert (status, aborted) == (200, False)
        assert body == await _clip_of(tmp_path, query)
        out = tmp_path / "after.mp4"
        out.write_bytes(body)
        assert mt.decode_errors(out) == ""
        assert mt.duration_s(out) == pytest.approx(0.7, abs=0.15)
        assert upstream.etags[BBB] == '"v2"'  # the swap did happen during the first request


async def _clip_of(tmp_path: Path, query: str) -> bytes:
    """The clip of tmp_path/new.mp4 through a file: rule of a second edge app over tmp_path."""
    from aiohttp.test_utils import TestClient, TestServer

    from conftest import make_config
    from origin_proxy.server.app import make_app

    app = make_app(make_config([{"from": "/t/", "to": f"file://{tmp_path}/"}]))
    async with TestClient(TestServer(app)) as other:
        resp = await other.get("/t/new.mp4" + query)
        assert resp.status == 200
        return await resp.read()


SEGMENT = BBB + "/cmaf1/v1/2.m4s"  # ~100 ranges of one video frame each (bbb interleaves audio frame by frame)


@pytest.mark.parametrize(("fault", "status", "texts"), [
    ("500", 502, {b"upstream answered 500\n"}),
    ("full_200", 502, {b"upstream object changed while being served\n"}),
    ("wrong_offsets", 502, {b"upstream sent another range or length than asked\n"}),
    ("short_body", 502, {b"upstream body ended early\n", b"upstream connection failed\n"}),
    ("stall_headers", 504, {b"upstream timed out\n"}),
])
async def test_fault_in_a_middle_range_of_a_fragment_is_a_clean_5xx(faulty, fault, status, texts):
    """One of a fragment's many sample ranges fails while the others succeed (some already read, some in flight):
    the client gets a one-line 5xx, none of the fetched bytes; once the upstream recovers, the same segment."""
    upstream, client = faulty
    async with asyncio.timeout(CASE_TIMEOUT_S):
        oracle = await _oracle(client, SEGMENT)
        got, _, body, aborted = await _outcome(client, "/f/" + SEGMENT)  # also caches the metadata
        assert (got, aborted) == (200, False) and body == oracle
        upstream.requests.clear()
        assert (await _outcome(client, "/f/" + SEGMENT))[2] == oracle
        ranges = sorted(_range(header) for header in upstream.requests if header != "bytes=0-0")
        assert len(ranges) >= 50
        middle = ranges[len(ranges) // 2]
        upstream.fault, upstream.when = fault, lambda first, last: (first, last) == middle
        upstream.cut = (middle[1] - middle[0] + 1) // 2
        got, headers, body, aborted = await _outcome(client, "/f/" + SEGMENT)
        assert not aborted
        assert got == status and body in texts, (got, body)
        assert headers["Content-Type"].startswith("text/plain")
        upstream.fault = None
        got, _, body, aborted = await _outcome(client, "/f/" + SEGMENT)
        assert (got, aborted) == (200, False) and body == oracle
