"""Hostile clients: header and query floods, range bombs, traversal variants, Host tricks against a host-limited
rule, and many slow readers against a real `origin-proxy serve` process (its memory must not grow with them).

Every request goes out byte for byte over a raw socket, and every case is bounded by asyncio.timeout: an answer
that never comes fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import pytest

from conftest import media
from serve_process import ServeProcess

CASE_TIMEOUT_S = 10
SECRET = b"TOP-SECRET-" + os.urandom(16).hex().encode()
HOST_ONLY = b"HOST-ONLY-" + os.urandom(16).hex().encode()


async def raw_request(port: int, request: bytes, read_limit: int | None = None) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read the answer until the server closes; (status, headers, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        data = await reader.read() if read_limit is None else await reader.read(read_limit)
    except ConnectionResetError:
        # The server answered and closed while we were still sending a huge request: the unread rest turns the
        # close into an RST, which may discard the answer too. A refusal either way.
        return 0, {}, b""
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split(" ", 2)[1]), headers, body


def get(target: str, *header_lines: str) -> bytes:
    lines = [f"GET {target} HTTP/1.1", *header_lines, "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")


# ------------------------------------------------------------------------------------------------ Host tricks


@pytest.fixture
async def hosts(edge_client, tmp_path):
    """http://cdn.example.com/vod/ -> host_root (x.bin = HOST_ONLY); /pub/ -> pub_root (for any Host)."""
    host_root, pub_root = tmp_path / "host", tmp_path / "pub"
    host_root.mkdir()
    pub_root.mkdir()
    (host_root / "x.bin").write_bytes(HOST_ONLY)
    (pub_root / "x.bin").write_bytes(b"public")
    return await edge_client([{"from": "http://cdn.example.com/vod/", "to": f"file://{host_root}/"},
                              {"from": "/pub/", "to": f"file://{pub_root}/"}])


@pytest.mark.parametrize(("request_bytes", "served"), [
    (get("/vod/x.bin", "Host: cdn.example.com"), True),
    (get("/vod/x.bin", "Host: CDN.Example.COM"), True),  # RFC 9110 §4.2.3: host names compare case-insensitively
    (get("/vod/x.bin", "Host: evil.example"), False),
    (get("/vod/x.bin", "Host: cdn.example.com:8081"), False),
    (get("/vod/x.bin", "Host: cdn.example.com.evil.example"), False),
    (get("/vod/x.bin", "Host: evil.example@cdn.example.com"), False),
    (get("/vod/x.bin", "Host: "), False),
    (b"GET /vod/x.bin HTTP/1.0\r\n\r\n", False),  # no Host at all
    (get("/vod/x.bin", "Host: cdn.example.com", "Host: evil.example"), False),  # RFC 9112 §3.2: 400
    (get("/vod/x.bin", "Host: evil.example", "Host: cdn.example.com"), False),
    # absolute-form: RFC 9112 §3.2.2 says the target's authority replaces Host; either way the target's host is
    # only ever compared with the rules, it never becomes an upstream.
    (get("http://evil.example/vod/x.bin", "Host: cdn.example.com"), False),
    (get("http://cdn.example.com/vod/x.bin", "Host: evil.example"), True),
    (get("/vod/../vod/x.bin", "Host: cdn.example.com"), False),
    (get("/pub/../vod/x.bin", "Host: cdn.example.com"), False),
])
async def test_host_rule_serves_only_its_host(hosts, request_bytes, served):
    async with asyncio.timeout(CASE_TIMEOUT_S):
        status, _, body = await raw_request(hosts.port, request_bytes)
    if served:
        assert (status, body) == (200, HOST_ONLY)
    else:
        assert status in (400, 403, 404), status
        assert HOST_ONLY not in body


@pytest.mark.parametrize("target", ["/elsewhere/x.bin", "/", "/pubx.bin", "/pub", "/vodx/x.bin", "*"])
async def test_paths_outside_every_rule_are_404(hosts, target):
    async with asyncio.timeout(CASE_TIMEOUT_S):
        status, _, body = await raw_request(hosts.port, get(target, "Host: 127.0.0.1"))
    assert status in (400, 404) and HOST_ONLY not in body and b"public" not in body
    if target.startswith("/"):
        assert (status, body) == (404, b"no remap rule for this path\n")


# ------------------------------------------------------------------------------------------------ traversal


@pytest.fixture
async def jail(edge_client, tmp_path):
    """root/ under /files/; outside/secret.bin next to it; in root: a symlink loop and a FIFO."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.bin").write_bytes(SECRET)
    (root / "inside.bin").write_bytes(b"inside")
    (root / "loop").symlink_to(root / "loop")
    (root / "dir").mkdir()
    (root / "dir" / "up").symlink_to("../../outside")
    os.mkfifo(root / "pipe")
    client = await edge_client([{"from": "/files/", "to": f"file://{root}/"}])
    client.outside = outside
    return client


TRAVERSALS = [
    "/files/%c0%ae%c0%ae/outside/secret.bin",  # overlong UTF-8 '.'
    "/files/%c0%ae%c0%ae%c0%afoutside%c0%afsecret.bin",  # overlong '.' and '/'
    "/files/%e0%80%ae%e0%80%ae/outside/secret.bin",  # 3-byte overlong '.'
    "/files/%ef%bc%8e%ef%bc%8e/outside/secret.bin",  # fullwidth dots
    "/files/%2E%2e%2F%2e%2E%2Foutside%2Fsecret.bin",
    "/files/..%255c..%255coutside%255csecret.bin",
    "/files/%25%32%65%25%32%65/outside/secret.bin",  # %2e written as %25%32%65
    "/files/..;/outside/secret.bin",
    "/files/.../outside/secret.bin",
    "/files/inside.bin/../../outside/secret.bin",
    "/files/dir/up/secret.bin",  # a relative symlink leaving the root
    "/files/dir/%2e%2e/%2e%2e/outside/secret.bin",
    "/files/loop",  # a symlink loop: ELOOP must be a 404, not a 500
    "/files/pipe",  # a FIFO: opening it must not block the request (or a thread) forever
    "/files/dir",
    "http://127.0.0.1/files/../outside/secret.bin",
    "/files/%u002e%u002e/outside/secret.bin",
    "/files/\\..\\outside\\secret.bin",
]


@pytest.mark.parametrize("target", TRAVERSALS)
async def test_traversal_variants_never_serve_outside(jail, target):
    async with asyncio.timeout(CASE_TIMEOUT_S):
        status, _, body = await raw_request(jail.port, get(target, "Host: 127.0.0.1"))
    assert status in (400, 403, 404), (target, status)
    assert SECRET not in body


async def test_absolute_path_after_a_double_slash_stays_in_the_root(jail):
    target = "/files//" + str(jail.outside / "secret.bin").lstrip("/")
    async with asyncio.timeout(CASE_TIMEOUT_S):
        status, _, body = await raw_request(jail.port, get("/files/" + str(jail.outside / "secret.bin"),
                                                           "Host: 127.0.0.1"))
        assert status == 404 and SECRET not in body
        status, _, body = await raw_request(jail.port, get(target, "Host: 127.0.0.1"))
        assert status == 404 and SECRET not in body
        # and the edge still serves
        assert (await raw_request(jail.port, get("/files/inside.bin", "Host: x")))[::2] == (200, b"inside")


@pytest.mark.parametrize("raw", [b"GET /files/inside.bin\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
                                 b"GET /files/in\rside.bin HTTP/1.1\r\nHost: x\r\n\r\n",
                                 b"GET /files/\xc0\xae\xc0\xae/outside/secret.bin HTTP/1.1\r\nHost: x\r\n\r\n"])
async def test_raw_control_and_invalid_bytes_in_the_target(jail, raw):
    async with asyncio.timeout(CASE_TIMEOUT_S):
        status, _, body = await raw_request(jail.port, raw)
    assert status in (400, 403, 404) and SECRET not in body


# ------------------------------------------------------------------------------------------------ floods


@pytest.fixture
async def files(edge_client):
    return await edge_client([{"from": "/files/", "to": f"file://{media('mp4/sample.mp4').parent}/"}])


SAMPLE_SIZE = 101674


@pytest.mark.parametrize("request_bytes", [
    get("/files/sample.mp4", "Host: x", *[f"X-Flood-{i}: {i}" for i in range(500)]),
    get("/files/sample.mp4", "Host: x", "X-Big: " + "a" * 100_000),
    get("/files/sample.mp4", "Host: x", "Cookie: " + "c=1; " * 20_000),
    get("/files/" + "a" * 100_000 + ".mp4", "Host: x"),
    get("/files/sample.mp4?start=" + "9" * 1_000_000, "Host: x"),
    get("/files/sample.mp4", "Host: x", "Range: bytes=" + ",".join(f"{i}-{i}" for i in range(5000))),
], ids=["500-headers", "100k-header", "100k-cookie", "100k-path", "1M-digit-start", "5000-ranges"])
async def test_header_and_line_floods_are_refused_quickly(files, request_bytes):
    async with asyncio.timeout(CASE_TIMEOUT_S):
        status, _, body = await raw_request(files.port, request_bytes)
        assert status in (0, 400, 413, 414, 431), status  # 0: refused and reset mid-send
        assert not body.startswith(b"\x00\x00\x00")  # no media bytes
        status, _, body = await raw_request(files.port, get("/files/sample.mp4", "Host: x"))
        assert status == 200 and len(body) == SAMPLE_SIZE


@pytest.mark.parametrize("query", [
    "start=" + "9" * 5000,
    "start=1&end=" + "9" * 5000,
    "start=" + "1" * 12 + "." + "1" * 9,  # the largest accepted spelling: far past the end
    "start=%D9%A0",  # ARABIC-INDIC DIGIT ZERO: a regex \d and int() accept it, the API must not
    "start=%EF%BC%91",  # FULLWIDTH DIGIT ONE
    "start=%F0%9D%9F%8F",  # MATHEMATICAL BOLD DIGIT ONE
    "start=1%00",
    "start=%ff%fe",
    "start=%ZZ",
    "start=1" + "&start=1" * 500,
    "start=1&mode=" + "x" * 4000,
    "start=1&mode=exact" + "&mode=exact" * 300,
    "start=%E2%80%AE1",  # RIGHT-TO-LEFT OVERRIDE
], ids=lambda query: query[:30])
async def test_absurd_query_values_are_400(files, query):
    async with asyncio.timeout(CASE_TIMEOUT_S):
        status, headers, body = await raw_request(files.port, get("/files/sample.mp4?" + query, "Host: x"))
    assert status == 400, (query[:40], status)
    assert body.endswith(b"\n") and body.count(b"\n") == 1 and len(body) < 200


async def test_too_many_ranges_are_ignored_whole_200(files):
    ranges = ",".join(f"{i}-{i}" for i in range(0, 1000, 2))  # 500 ranges, within aiohttp's 8190-byte field limit
    async with asyncio.timeout(CASE_TIMEOUT_S):
        status, headers, body = await raw_request(files.port, get("/files/sample.mp4", "Host: x", f"Range: bytes={ranges}"))
    assert status == 200 and body == media("mp4/sample.mp4").read_bytes()


@pytest.mark.parametrize("spec", [",".join(["0-"] * 64), ",".join(["-101674"] * 50), ",".join(["1-101000"] * 40)],
                         ids=["64x0-", "50x-suffix", "40x1-101000"])
async def test_overlapping_ranges_cannot_amplify_the_body(files, spec):
    """RFC 9110 §14.2 lets a server ignore ranges that overlap; asking for the whole file 64 times over must not
    produce a 64x body (and 64x upstream reads)."""
    async with asyncio.timeout(CASE_TIMEOUT_S):
        status, headers, body = await raw_request(files.port, get("/files/sample.mp4", "Host: x", f"Range: bytes={spec}"))
    assert status in (200, 206)
    assert len(body) < 2 * SAMPLE_SIZE, (status, len(body))


# ------------------------------------------------------------------------------------------------ slow readers


def _rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE).group(1))


@pytest.fixture
def big_file(tmp_path) -> Path:
    path = tmp_path / "media" / "big.bin"
    path.parent.mkdir()
    with open(path, "wb") as f:
        for _ in range(30):
            f.write(os.urandom(2**20))
    return path


@pytest.fixture
async def served(tmp_path, big_file, start_upstream):
    """A real `origin-proxy serve` process: /files/ -> big_file's directory, /up/ -> a static upstream over it."""
    upstream = await start_upstream(big_file.parent)
    rules = {"/files/": big_file.parent, "/up/": f"{upstream.url}/media/"}
    # async with: start and stop run in a thread, so this loop keeps serving the upstream meanwhile.
    async with ServeProcess(tmp_path / "serve", rules, "--host", "127.0.0.1", config="log_level: WARNING\n") as svc:
        yield svc.pid, svc.port


async def _stalled_reader(port: int, target: str) -> asyncio.StreamWriter:
    """A client that asks for the whole file, reads 4 KiB and then never reads again."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=4096)
    writer.write(get(target, "Host: x"))
    await writer.drain()
    await reader.readexactly(4096)
    return writer


@pytest.mark.parametrize("prefix", ["/files/", "/up/"])
async def test_fifty_slow_readers_do_not_buffer_the_file(served, big_file, prefix):
    pid, port = served
    size = big_file.stat().st_size
    async with asyncio.timeout(60):
        status, _, body = await raw_request(port, get(prefix + "big.bin", "Host: x"))  # warm up
        assert status == 200 and len(body) == size
        before = _rss_kib(pid)
        # Under the upstream pool limit (32 per host by default): each stalled client holds one upstream connection.
        count = 50 if prefix == "/files/" else 24
        writers = [await _stalled_reader(port, prefix + "big.bin") for _ in range(count)]
        await asyncio.sleep(1.0)  # let the server fill every buffer it is willing to fill
        growth_mib = (_rss_kib(pid) - before) / 1024
        # while they stall, a normal request is served in full
        status, _, body = await raw_request(port, get(prefix + "big.bin", "Host: x", "Range: bytes=0-999999"))
        assert status == 206 and body == big_file.read_bytes()[:1_000_000]
        for writer in writers:
            writer.transport.abort()
    # 50 x 30 MiB would be 1.5 GiB; chunked writes with backpressure keep it to a few chunks per connection
    assert growth_mib < 100, f"RSS grew by {growth_mib:.0f} MiB for {count} stalled readers"
