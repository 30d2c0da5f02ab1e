"""`access_log: json` logs the body bytes actually sent (issue 17 item 3), headers not counted: for sendfile bodies,
clips (generated head + sendfile), upstream-streamed bodies, one range, several ranges, HEAD, 304, and a client
that hangs up mid-body. The oracle is what a raw socket client received after the header block.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket

import pytest

import mediatools
from conftest import MEDIA_ROOT, make_config
from origin_proxy.server.app import make_app
from origin_proxy.server.observe import JsonAccessLogger


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(json.loads(record.getMessage()))


@pytest.fixture(scope="module")
def big_folder(tmp_path_factory):
    big = tmp_path_factory.mktemp("big")
    mediatools.make_large_movie(big / "big.mp4", 24 * 2**20)
    return big


@pytest.fixture
async def logged_edge(aiohttp_server, upstream, big_folder):
    big = big_folder
    config = make_config([
        {"from": "/files/", "to": "file://" + os.fspath(MEDIA_ROOT) + "/"},
        {"from": "/big/", "to": "file://" + os.fspath(big) + "/"},
        {"from": "/up/", "to": upstream.url + "/media/"},
    ])
    logger = logging.getLogger("test.access_log_bytes")
    lines = _Lines()
    logger.addHandler(lines)
    logger.setLevel(logging.INFO)
    server = await aiohttp_server(make_app(config), access_log_class=JsonAccessLogger, access_log=logger)
    yield server, lines
    logger.removeHandler(lines)


async def _exchange(port: int, target: str, headers: dict[str, str] | None = None, method: str = "GET",
                    stop_after: int | None = None) -> tuple[bytes, int]:
    """(response head, body bytes received). With stop_after, hang up once that many body bytes arrived."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", port))
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    await loop.sock_sendall(sock, ("\r\n".join(lines) + "\r\n\r\n").encode())
    data = bytearray()
    head = None
    try:
        while True:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), 20)
            if not chunk:
                break
            data += chunk
            if head is None and b"\r\n\r\n" in data:
                head, _, rest = bytes(data).partition(b"\r\n\r\n")
                data = bytearray(rest)
            if head is not None and stop_after is not None and len(data) >= stop_after:
                break
    finally:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # RST: what was in flight is dropped
    assert head is not None
    return head, len(data)


async def _logged(lines: _Lines, path: str) -> dict:
    for _ in range(200):
        found = [r for r in lines.records if r["path"] == path]
        if found:
            return found[-1]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no access log line for {path}")


@pytest.mark.parametrize("target, headers, method", [
    ("/files/mp4/portrait_4k60.mp4", {}, "GET"),  # sendfile
    ("/files/mp4/cursed-vfr.mp4?start=3.2", {}, "GET"),  # generated head + sendfile
    ("/up/mp4/cursed-vfr.mp4?start=3.2", {}, "GET"),  # head + upstream chunks
    ("/files/mp4/portrait_4k60.mp4", {"Range": "bytes=1000-500000"}, "GET"),
    ("/files/mp4/cursed-vfr.mp4?start=1", {"Range": "bytes=0-99,5000-70000,-300"}, "GET"),  # multipart
    ("/files/mp4/cursed-vfr.mp4/master.m3u8", {}, "GET"),  # a small generated body
    ("/files/mp4/portrait_4k60.mp4", {}, "HEAD"),
])
async def test_logged_bytes_equal_the_body_received(logged_edge, target, headers, method):
    server, lines = logged_edge
    head, received = await _exchange(server.port, target, headers, method)
    record = await _logged(lines, target)
    assert record["status"] in (200, 206)
    assert record["bytes"] == received
    if method == "GET":
        length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")))
        assert received == length > 0


async def test_logged_bytes_of_304_are_zero(logged_edge):
    server, lines = logged_edge
    target = "/files/mp4/cursed-vfr.mp4?start=2"
    head, _ = await _exchange(server.port, target)
    etag = next(line.split(b":", 1)[1].strip().decode() for line in head.split(b"\r\n")
                if line.lower().startswith(b"etag:"))
    lines.records.clear()
    head, received = await _exchange(server.port, target, {"If-None-Match": etag})
    assert head.startswith(b"HTTP/1.1 304")
    assert (await _logged(lines, target))["bytes"] == received == 0


async def test_aborted_response_logs_what_was_sent_not_the_length(logged_edge):
    server, lines = logged_edge
    target = "/big/big.mp4"
    _, received = await _exchange(server.port, target, stop_after=512 * 1024)
    record = await _logged(lines, target)
    size = 24 * 2**20
    # At least what the client took; beyond it only what sat in the kernel buffers when the client hung up.
    assert received <= record["bytes"] < size / 2
