"""The one body writer (server/body.py, issue 15): generated heads go out in slices with a drain between them and
the same bytes as in one write; a prefetched upstream chunk is freed once written; a reader that stops reading
stops the edge's upstream read after a bounded amount.

Oracles: ffprobe/ffmpeg (mediatools) for the clips; the edge's own upstream byte counter
(origin_proxy_upstream_body_bytes_total, bytes taken off the upstream socket) against what a raw client received.
"""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import weakref
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.http_writer import StreamWriter

import mediatools
from conftest import media
from origin_proxy import metrics
from origin_proxy.server.state import EDGE_STATE
from origin_proxy.store.source import upstream as upstream_module

SLICE = 4096


def _file_rule(folder: Path) -> list[dict]:
    return [{"from": "/files/", "to": "file://" + os.fspath(folder) + "/"}]


async def test_head_larger_than_slice_goes_out_in_slices_with_drain(edge_client, movie_60s, tmp_path, monkeypatch):
    folder = movie_60s.parent
    url = f"/files/{movie_60s.name}?start=12.3&end=40"
    whole = await edge_client(_file_rule(folder), cache={"build_threads": 0}, write_slice_bytes=16 * 2**20)
    resp = await whole.get(url)
    assert resp.status == 200
    expected = await resp.read()

    events: list[tuple[str, int]] = []
    original_write, original_drain = web.StreamResponse.write, StreamWriter.drain

    async def write(self, data):
        events.append(("write", len(data)))
        await original_write(self, data)

    async def drain(self):
        events.append(("drain", 0))
        await original_drain(self)

    monkeypatch.setattr(web.StreamResponse, "write", write)
    monkeypatch.setattr(StreamWriter, "drain", drain)
    sliced = await edge_client(_file_rule(folder), cache={"build_threads": 0}, write_slice_bytes=SLICE)
    resp = await sliced.get(url)
    body = await resp.read()
    monkeypatch.undo()

    assert body == expected  # the same bytes as one write of the whole head
    heads = sliced.app[EDGE_STATE].heads
    head_bytes = heads.current_bytes
    writes = [size for kind, size in events if kind == "write"]
    assert head_bytes > 4 * SLICE, "the clip head must be larger than several slices for this test"
    assert max(writes) <= SLICE
    assert len(writes) >= head_bytes // SLICE
    for position, (kind, _) in enumerate(events):  # every write of a slice is followed by a drain
        if kind == "write":
            assert events[position + 1][0] == "drain"
    out = tmp_path / "clip.mp4"
    out.write_bytes(body)
    assert mediatools.decode_errors(out) == ""
    assert abs(mediatools.duration_s(out) - (40 - 12.3)) < 0.2


class _Chunk(bytearray):
    """A chunk that can be weakly referenced (bytes objects cannot be)."""


async def test_prefetched_chunk_is_freed_once_written(edge_client, upstream, monkeypatch):
    refs: list[weakref.ref] = []
    alive_when_third_written: list[bool] = []
    original_stream = upstream_module.UpstreamSource.stream

    async def stream(self, *args):
        async for chunk in original_stream(self, *args):
            wrapped = _Chunk(chunk)
            del chunk
            refs.append(weakref.ref(wrapped))
            yield wrapped
            del wrapped

    original_write = web.StreamResponse.write

    async def write(self, data):
        if len(refs) == 3 and not alive_when_third_written:
            gc.collect()
            alive_when_third_written.append(refs[0]() is not None)
        await original_write(self, data)

    monkeypatch.setattr(upstream_module.UpstreamSource, "stream", stream)
    monkeypatch.setattr(web.StreamResponse, "write", write)
    client = await edge_client([{"from": "/up/", "to": upstream.url + "/media/"}])
    resp = await client.get("/up/mp4/portrait_4k60.mp4")
    body = await resp.read()
    assert resp.status == 200
    assert body == media("mp4/portrait_4k60.mp4").read_bytes()
    assert len(refs) >= 3, "the body must take at least three upstream chunks"
    assert alive_when_third_written == [False]  # the prefetched first chunk was gone while the body went on


@pytest.fixture(scope="module")
def big_movie(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("big")
    return mediatools.make_large_movie(folder / "big.mp4", 48 * 2**20)


def _upstream_bytes_read() -> float:
    return metrics.UPSTREAM_BYTES._value.get()


async def test_stopped_reader_stops_the_upstream_read(edge_client, start_upstream, big_movie):
    origin = await start_upstream(big_movie.parent)
    client = await edge_client([{"from": "/up/", "to": origin.url + "/media/"}])
    before = _upstream_bytes_read()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", client.port))
    await loop.sock_sendall(sock, f"GET /up/{big_movie.name} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    received = 0
    while received < 256 * 1024:  # read a little, then stop reading
        received += len(await asyncio.wait_for(loop.sock_recv(sock, 65536), 10))
    settled = -1.0
    for _ in range(40):  # wait until the edge's upstream read stands still
        await asyncio.sleep(0.25)
        now = _upstream_bytes_read() - before
        if now == settled:
            break
        settled = now
    assert now == settled, "the edge kept reading from the upstream while the client read nothing"
    size = big_movie.stat().st_size
    # What the edge took from the upstream: what the client got, the kernel buffers between edge and client,
    # our transport buffer (one slice), one chunk and aiohttp's read-ahead. Far below the 48 MiB body.
    assert now - received < 8 * 2**20
    assert now < size / 4
    sock.close()


async def test_consecutive_head_parts_go_out_as_whole_slices(edge_client, movie_60s, monkeypatch):
    """A clip head is several parts (joined boxes, views of the source tables, rendered tables): written as one
    stream, every write but the last is exactly one slice (a slice across a part boundary is joined), so a range
    of G head bytes takes ceil(G / slice) writes, not one more per part boundary; the bytes are the head's."""
    folder = movie_60s.parent
    url = f"/files/{movie_60s.name}?start=12.3&end=40"
    client = await edge_client(_file_rule(folder), cache={"build_threads": 0}, write_slice_bytes=SLICE)
    resp = await client.get(url)
    assert resp.status == 200
    whole = await resp.read()
    (key,) = client.app[EDGE_STATE].heads.keys()
    plan = client.app[EDGE_STATE].heads._cache.get_now(key).plan
    generated = 0
    boundaries = 0
    for part in plan.parts:
        if not hasattr(part, "offset"):  # generated bytes (not a SourceRange)
            generated += len(part)
            boundaries += 1
        else:
            break
    assert boundaries >= 3 and generated > 3 * SLICE, "the head must span several parts and slices"
    last = generated - SLICE // 2  # the range ends inside the head: only generated parts are written

    writes: list[int] = []
    original_write = web.StreamResponse.write

    async def write(self, data):
        writes.append(len(data))
        await original_write(self, data)

    monkeypatch.setattr(web.StreamResponse, "write", write)
    resp = await client.get(url, headers={"Range": f"bytes=0-{last}"})
    body = await resp.read()
    monkeypatch.undo()
    assert resp.status == 206
    assert body == whole[:last + 1]
    assert sum(writes) == last + 1
    assert writes[:-1] == [SLICE] * (len(writes) - 1)
    assert len(writes) == -(-(last + 1) // SLICE)
