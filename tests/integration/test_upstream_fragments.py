"""A CMAF fragment of an interleaved file through an HTTP rule: one Range GET per run of contiguous samples.

mp4/bbb_prog_10s.mp4 interleaves video and audio one frame at a time, so its 4 s video segment 2 is ~100 small
source ranges. Through /up/ the segment must be:
- byte-identical to the same segment through the file: rule (also for a Range of it);
- made of exactly its bytes upstream: the requested ranges do not overlap, each lies inside one video packet of the
  source as ffprobe places it (pos, size), so no byte between two samples is read, and they add up to the mdat
  payload;
- fetched with requests that overlap, counted by the upstream (no timing), and never more at once than the pool's
  connections_per_host.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

import mediatools as mt
from conftest import MEDIA_ROOT, make_config, media
from origin_proxy.server.app import make_app
from origin_proxy.store.source.upstream import UpstreamSource
from test_http_ranges import parse_multipart

BBB = "mp4/bbb_prog_10s.mp4"
SEGMENT = f"{BBB}/cmaf1/v1/2.m4s"


class CountingUpstream:
    """Static files of ../shared/media under /media/, counting the Range GETs in flight.

    The first body request after `hold_first()` is held until a second one arrives (or 1 s passes, below the edge's
    read timeout here), so that requests the edge keeps in flight together are seen together whatever the
    scheduling; a one-at-a-time edge shows 1. The request for `stall_range`, when set, waits for `release`; if its
    connection is closed meanwhile, the range is appended to `cancelled`.
    """

    def __init__(self) -> None:
        self.ranges: list[tuple[int, int]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._overlap = asyncio.Event()
        self._hold = False
        self.stall_range: tuple[int, int] | None = None
        self.stalled = asyncio.Event()
        self.cancelled: list[tuple[int, int]] = []
        self.release = asyncio.Event()
        self.url = ""

    def hold_first(self) -> None:
        self.ranges.clear()
        self.max_in_flight = 0
        self._overlap.clear()
        self._hold = True

    def app(self) -> web.Application:
        @web.middleware
        async def count(request: web.Request, handler):
            first, _, last = (request.headers.get("Range") or "bytes=0-0").removeprefix("bytes=").partition("-")
            self.ranges.append((int(first), int(last)))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            if self.in_flight >= 2:
                self._overlap.set()
            try:
                if self._hold and (int(first), int(last)) != (0, 0):  # not the open's probe: it comes alone
                    self._hold = False
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._overlap.wait(), timeout=1)
                if (int(first), int(last)) == self.stall_range:
                    self.stalled.set()
                    try:
                        await self.release.wait()
                    except asyncio.CancelledError:  # the edge closed the connection (aiohttp_server cancels)
                        self.cancelled.append(self.stall_range)
                        raise
                    print("DBG released", self.stall_range, flush=True)
                r = await handler(request)
                print("DBG handled", (int(first), int(last)), r, flush=True) if (int(first), int(last)) == self.stall_range else None
                return r
            finally:
                self.in_flight -= 1

        app = web.Application(middlewares=[count])
        app.router.add_static("/media/", MEDIA_ROOT)
        return app


@pytest.fixture
async def counting(aiohttp_server, edge_client):
    async def start(connections_per_host: int):
        upstream = CountingUpstream()
        server = await aiohttp_server(upstream.app())
        upstream.url = f"http://127.0.0.1:{server.port}"
        client = await edge_client(
            [{"from": "/up/", "to": upstream.url + "/media/"},
             {"from": "/files/", "to": "file://" + os.fspath(MEDIA_ROOT) + "/"}],
            upstream={"connect_timeout_s": 1.0, "read_timeout_s": 2.0, "connections_per_host": connections_per_host})
        return upstream, client

    return start


def _video_packet_spans() -> list[tuple[int, int]]:
    """(first, last) file byte of every video packet of the source, per ffprobe."""
    return sorted((p.pos, p.pos + p.size - 1) for p in mt.ffprobe_packets(media(BBB), "v:0"))


def _mdat_payload_bytes(body: bytes) -> int:
    offset = 0
    while offset + 8 <= len(body):
        size = int.from_bytes(body[offset : offset + 4], "big")
        if body[offset + 4 : offset + 8] == b"mdat":
            return size - 8
        offset += size
    raise AssertionError("no mdat in the segment")


@pytest.mark.parametrize("connections_per_host", [8, 2])
async def test_segment_of_many_ranges_is_exact_and_fetched_concurrently(counting, connections_per_host):
    upstream, client = await counting(connections_per_host)
    async with asyncio.timeout(30):
        warm = await client.get(f"/up/{BBB}/cmaf1/v1/1.m4s")  # metadata and timelines cached from here on
        assert warm.status == 200 and await warm.read()
        upstream.hold_first()
        resp = await client.get("/up/" + SEGMENT)
        body = await resp.read()
        local = await client.get("/files/" + SEGMENT)
        assert resp.status == 200 and body == await local.read()

    media_ranges = sorted(r for r in upstream.ranges if r != (0, 0))  # (0, 0): the open's probe
    assert len(media_ranges) >= 50
    assert all(a[1] < b[0] for a, b in zip(media_ranges, media_ranges[1:])), "a byte was asked for twice"
    assert sum(last - first + 1 for first, last in media_ranges) == _mdat_payload_bytes(body)
    spans = _video_packet_spans()
    for first, last in media_ranges:  # no byte between samples (the other track's) is read
        assert any(p_first <= first and last <= p_last for p_first, p_last in spans), (first, last)

    assert 2 <= upstream.max_in_flight <= connections_per_host


@pytest.mark.parametrize("byte_range", ["bytes=1000-5999", "bytes=-3000", "bytes=0-99, 2000-2999"])
async def test_ranges_of_a_segment_match_the_file_rule(counting, byte_range):
    _, client = await counting(8)
    async with asyncio.timeout(30):
        remote = await client.get("/up/" + SEGMENT, headers={"Range": byte_range})
        local = await client.get("/files/" + SEGMENT, headers={"Range": byte_range})
        assert remote.status == local.status == 206
        remote_body, local_body = await remote.read(), await local.read()
        if "," in byte_range:  # multipart/byteranges: the boundaries differ, the parts must not
            remote_parts = parse_multipart(remote_body, remote.headers["Content-Type"])
            assert len(remote_parts) == 2
            assert remote_parts == parse_multipart(local_body, local.headers["Content-Type"])
        else:
            assert remote.headers["Content-Range"] == local.headers["Content-Range"]
            assert remote_body == local_body


async def test_cancelled_read_ranges_gives_its_connections_back(aiohttp_server):
    """A reader cancelled with Range GETs in flight (its client went away, the handler was cancelled) closes them:
    with a pool of 2 connections, both stalled, the next read still gets connections."""
    data = media(BBB).read_bytes()
    stalled, release = [], asyncio.Event()

    async def handle(request: web.Request) -> web.StreamResponse:
        first, _, last = request.headers["Range"].removeprefix("bytes=").partition("-")
        first, last = int(first), int(last)
        if first >= 1000:  # the first read's ranges: never answered while it runs
            stalled.append(first)
            await release.wait()
        return web.Response(status=206, body=data[first : last + 1],
                            headers={"Content-Range": f"bytes {first}-{last}/{len(data)}", "ETag": '"v1"'})

    app = web.Application()
    app.router.add_get("/m", handle)
    server = await aiohttp_server(app)
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=2)
    async with aiohttp.ClientSession(connector=connector) as session:
        source = await UpstreamSource.open(session, f"http://127.0.0.1:{server.port}/m")
        reader = asyncio.create_task(source.read_ranges([(1000 + 100 * k, 50) for k in range(10)]))
        async with asyncio.timeout(10):
            while len(stalled) < 2:
                await asyncio.sleep(0.01)
        reader.cancel()
        await asyncio.wait([reader], timeout=5)  # a hang guard, not a timing check
        try:
            assert reader.cancelled(), "the cancelled reader is still waiting for its requests"
            assert len(stalled) == 2  # never more in flight than the pool holds
            second = await asyncio.wait_for(source.read_ranges([(0, 10), (500, 20)]), timeout=5)
            assert second == data[0:10] + data[500:520]
        finally:
            release.set()


@pytest.fixture(scope="module")
def mixed_movie(tmp_path_factory) -> Path:
    """8 s of 1280x720 at crf 4 + AAC, interleaved frame by frame: a few key frames of 64 KiB or more (streamed
    ranges), the other samples smaller (gathered runs)."""
    path = mt.make_test_movie(tmp_path_factory.mktemp("mixed") / "mixed.mp4", 8, size="1280x720",
                              extra_args=["-crf", "4"])
    sizes = [p.size for p in mt.ffprobe_packets(path, "v:0")]
    assert any(size >= 65536 for size in sizes) and sum(size < 65536 for size in sizes) > 100
    return path


async def test_segments_mixing_large_and_small_ranges_match_the_file_rule(start_upstream, edge_client, mixed_movie):
    """Segments that start with a streamed key frame and go on with runs of small ranges (after the headers)."""
    upstream = await start_upstream(mixed_movie.parent)
    client = await edge_client([{"from": "/up/", "to": upstream.url + "/media/", "segment_duration_s": 2},
                                {"from": "/files/", "to": f"file://{mixed_movie.parent}/", "segment_duration_s": 2}])
    async with asyncio.timeout(60):
        master = await (await client.get("/files/mixed.mp4/master.m3u8")).text()
        tracks = sorted(set(re.findall(r"cmaf1/(\w+)/playlist\.m3u8", master)))
        assert len(tracks) == 2
        for track in tracks:
            number = 1
            while True:
                local = await client.get(f"/files/mixed.mp4/cmaf1/{track}/{number}.m4s")
                if local.status == 404:
                    break
                upstream.reset_counters()
                remote = await client.get(f"/up/mixed.mp4/cmaf1/{track}/{number}.m4s")
                body = await remote.read()
                assert (remote.status, body) == (200, await local.read()), (track, number)
                if number > 1:  # metadata cached: the samples are read, plus the open's byte unless the
                    # object's version was learned less than upstream.version_ttl_s ago
                    assert upstream.bytes_sent - _mdat_payload_bytes(body) in (0, 1)
                number += 1
            assert number > 3


@pytest.mark.parametrize("handler_cancellation", [False, True], ids=["served-default", "handler-cancellation"])
async def test_client_leaving_while_a_run_is_fetched(aiohttp_server, caplog, handler_cancellation):
    """The client hangs up while the edge still waits for one of a segment's ranges, before any header went out.
    With aiohttp's default (`origin_proxy serve`), the handler runs on: once the range arrives, writing the headers
    fails, and that is a lost client (one INFO line), not an error. With handler cancellation (aiohttp's test
    server), the edge's upstream request is cancelled, which the upstream sees. Either way the pool (2 connections
    here) is whole afterwards."""
    caplog.set_level(logging.INFO, logger="origin_proxy.server")
    upstream = CountingUpstream()
    upstream.url = f"http://127.0.0.1:{(await aiohttp_server(upstream.app())).port}"
    config = make_config([{"from": "/up/", "to": upstream.url + "/media/"},
                          {"from": "/files/", "to": "file://" + os.fspath(MEDIA_ROOT) + "/"}],
                         upstream={"connect_timeout_s": 1.0, "read_timeout_s": 5.0, "connections_per_host": 2})
    runner = web.AppRunner(make_app(config), handler_cancellation=handler_cancellation)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        async with aiohttp.ClientSession() as client, asyncio.timeout(30):
            async def get(path: str) -> bytes:
                async with client.get(f"http://127.0.0.1:{port}{path}") as resp:
                    assert resp.status == 200
                    return await resp.read()

            oracle = await get("/files/" + SEGMENT)
            assert await get("/up/" + SEGMENT) == oracle
            media_ranges = sorted(r for r in upstream.ranges if r != (0, 0))
            upstream.stall_range = media_ranges[len(media_ranges) // 2]
            caplog.clear()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"GET /up/{SEGMENT} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            await writer.drain()
            await upstream.stalled.wait()
            writer.close()
            await writer.wait_closed()
            if handler_cancellation:
                while upstream.stall_range not in upstream.cancelled:
                    await asyncio.sleep(0.02)  # until the edge has closed its request for the stalled range
            upstream.release.set()
            while not any(r.name == "origin_proxy.server" for r in caplog.records) and not handler_cancellation:
                await asyncio.sleep(0.02)  # until the edge's handler has ended
            if not handler_cancellation:
                assert any("client connection lost" in r.getMessage() for r in caplog.records)
            assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
            upstream.stall_range = None
            assert await get("/up/" + SEGMENT) == oracle
    finally:
        upstream.release.set()
        await runner.cleanup()
