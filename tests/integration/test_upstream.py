"""HTTP upstream rules against a real local static server: same bytes as file:, Range reads, error statuses."""

from __future__ import annotations

import asyncio
import os
import socket
import shutil
import time

import aiohttp
import pytest
from aiohttp import web

from conftest import media
from test_http_ranges import parse_multipart

SAMPLE = media("mp4/sample.mp4")


@pytest.fixture(scope="module")
def sample_bytes() -> bytes:
    return SAMPLE.read_bytes()


@pytest.mark.parametrize("headers", [{}, {"Range": "bytes=1000-1999"}, {"Range": "bytes=-300"},
                                     {"Range": "bytes=0-9, 500-599"}])
async def test_same_bytes_through_file_and_http_rules(edge, headers):
    local = await edge.client.get("/files/mp4/sample.mp4", headers=headers)
    remote = await edge.client.get("/up/mp4/sample.mp4", headers=headers)
    assert local.status == remote.status
    assert local.headers["Content-Length"] == remote.headers["Content-Length"]
    assert local.headers.get("Content-Range") == remote.headers.get("Content-Range")
    local_body, remote_body = await local.read(), await remote.read()
    if "," in headers.get("Range", ""):  # boundaries differ; the parts must not
        assert parse_multipart(local_body, local.headers["Content-Type"]) == \
            parse_multipart(remote_body, remote.headers["Content-Type"])
    else:
        assert local_body == remote_body


async def test_ranged_request_reads_only_the_range_upstream(edge, sample_bytes):
    edge.upstream.reset_counters()
    resp = await edge.client.get("/up/mp4/sample.mp4", headers={"Range": "bytes=1000-1999"})
    assert await resp.read() == sample_bytes[1000:2000]
    # one open (Range 0-0, 1 byte) and one body read of exactly the 1000 asked bytes
    assert [r[2] for r in edge.upstream.requests] == ["bytes=0-0", "bytes=1000-1999"]
    assert edge.upstream.bytes_sent == 1 + 1000


async def test_upstream_requests_carry_if_range_and_identity(edge):
    seen = []
    edge.upstream.before_request = lambda request: _record(seen, request)
    await (await edge.client.get("/up/mp4/sample.mp4", headers={"Range": "bytes=0-9"})).read()
    assert seen[0]["Accept-Encoding"] == "identity"
    st = SAMPLE.stat()
    upstream_etag = f'"{st.st_mtime_ns:x}-{st.st_size:x}"'  # how aiohttp's static files tag a file
    assert seen[1]["If-Range"] == seen[1]["If-Match"] == upstream_etag


async def _record(seen, request):
    seen.append(dict(request.headers))


async def test_head_through_upstream_reads_no_body(edge, sample_bytes):
    edge.upstream.reset_counters()
    resp = await edge.client.head("/up/mp4/sample.mp4")
    assert resp.status == 200 and int(resp.headers["Content-Length"]) == len(sample_bytes)
    assert len(edge.upstream.requests) == 1  # the open only


async def test_upstream_404_is_404(edge):
    resp = await edge.client.get("/up/mp4/no-such-file.mp4")
    assert resp.status == 404


async def test_upstream_500_is_502(edge_client, upstream):
    client = await edge_client([{"from": "/err/", "to": upstream.url + "/status/500/"}])
    resp = await client.get("/err/a.mp4")
    assert resp.status == 502
    assert "upstream" in await resp.text()


async def test_upstream_connection_refused_is_502(edge_client):
    with socket.socket() as sock:  # a port that was free a moment ago and has no listener now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = await edge_client([{"from": "/gone/", "to": f"http://127.0.0.1:{port}/"}])
    resp = await client.get("/gone/a.mp4")
    assert resp.status == 502


async def test_upstream_stall_is_504_within_timeout(edge_client, upstream):
    client = await edge_client([{"from": "/slow/", "to": upstream.url + "/stall/"}])
    started = time.monotonic()
    resp = await client.get("/slow/a.mp4")
    assert resp.status == 504
    assert time.monotonic() - started < 5  # read_timeout_s is 0.5 in the test config


async def test_upstream_path_cannot_escape_prefix(edge):
    edge.upstream.reset_counters()
    for target in ("/up/%3Fx=1", "/up/a%23frag.mp4", "/up/http:%2F%2Fevil/x"):
        resp = await edge.client.get(target)
        assert resp.status in (403, 404)
    assert all(path.startswith("/media/") for _, path, _ in edge.upstream.requests)


def _replace(path, data: bytes, mtime_ns: int) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.utime(tmp, ns=(mtime_ns, mtime_ns))
    os.replace(tmp, path)


@pytest.fixture
async def changing(start_upstream, edge_client, tmp_path):
    """A 1 MiB file on its own upstream, and a hook to replace it (same size, new bytes and mtime)."""
    root = tmp_path / "up"
    root.mkdir()
    path = root / "v.mp4"
    versions = [os.urandom(1024 * 1024) for _ in range(8)]
    _replace(path, versions[0], 1_000_000_000_000_000_000)
    upstream = await start_upstream(root)
    client = await edge_client([{"from": "/c/", "to": upstream.url + "/media/"}])
    return upstream, client, path, versions


async def test_file_replaced_between_open_and_body_is_refreshed(changing):
    upstream, client, path, versions = changing

    async def replace_before_second_request(request):
        if len(upstream.requests) == 2:  # the body read, right after our open
            _replace(path, versions[1], 2_000_000_000_000_000_000)

    upstream.before_request = replace_before_second_request
    resp = await client.get("/c/v.mp4")
    body = await resp.read()
    assert resp.status == 200
    assert body == versions[1]  # reopened and served the new version whole, never a splice
    # open, body read refused (412), open again, body read
    assert [r[2] for r in upstream.requests] == ["bytes=0-0", "bytes=0-1048575", "bytes=0-0", "bytes=0-1048575"]


async def test_file_changing_on_every_read_is_502_not_spliced(changing):
    upstream, client, path, versions = changing
    counter = iter(range(1, 8))

    async def replace_every_time(request):
        n = next(counter)
        _replace(path, versions[n], (n + 1) * 1_000_000_000_000_000_000)

    upstream.before_request = replace_every_time
    resp = await client.get("/c/v.mp4", headers={"Range": "bytes=0-299999"})
    body = await resp.read()
    assert resp.status == 502
    assert all(version[:1000] not in body for version in versions)


async def test_upstream_failing_after_headers_aborts_the_connection(aiohttp_server, edge_client):
    """The upstream sends 300 KiB of a 1 MiB range, then stalls: the client must see a short body, not a 200."""
    total = 1024 * 1024

    async def trickle(request: web.Request) -> web.StreamResponse:
        first, last = (int(x) for x in request.headers["Range"].removeprefix("bytes=").split("-"))
        response = web.StreamResponse(status=206, headers={"Content-Range": f"bytes {first}-{last}/{total}",
                                                           "ETag": '"v1"'})
        response.content_length = last - first + 1
        await response.prepare(request)
        await response.write(b"x" * min(300 * 1024, last - first + 1))
        if last - first + 1 > 300 * 1024:
            await asyncio.sleep(2)
        return response

    app = web.Application()
    app.router.add_get("/{tail:.*}", trickle)
    server = await aiohttp_server(app)
    client = await edge_client([{"from": "/t/", "to": f"http://127.0.0.1:{server.port}/"}])
    resp = await client.get("/t/a.mp4")
    assert resp.status == 200 and resp.content_length == total  # headers went out after the first chunk
    with pytest.raises(aiohttp.ClientPayloadError):
        await resp.read()


async def test_recent_open_is_reused_and_a_replacement_is_still_noticed(start_upstream, edge_client, tmp_path):
    """upstream.version_ttl_s: a second request within the TTL opens without asking the upstream (no `bytes=0-0`),
    and an object replaced within the TTL is answered from the new object, never spliced: its body read fails
    the If-Match, the edge forgets what it learned and reopens."""
    shutil.copyfile(SAMPLE, tmp_path / "movie.mp4")
    upstream = await start_upstream(tmp_path)
    client = await edge_client([{"from": "/up/", "to": upstream.url + "/media/"},
                                {"from": "/files/", "to": f"file://{tmp_path}/"}],
                               upstream={"version_ttl_s": 60})
    first = await client.get("/up/movie.mp4?start=0.2", headers={"Range": "bytes=0-99999"})
    assert first.status == 206 and await first.read() == await (await client.get(
        "/files/movie.mp4?start=0.2", headers={"Range": "bytes=0-99999"})).read()
    upstream.reset_counters()
    again = await client.get("/up/movie.mp4?start=0.5", headers={"Range": "bytes=0-99999"})
    assert again.status == 206 and await again.read()
    assert "bytes=0-0" not in [r[2] for r in upstream.requests], upstream.requests

    replacement = media("mp4/bbb_prog_10s.mp4")
    shutil.copyfile(replacement, tmp_path / "movie.tmp")
    os.replace(tmp_path / "movie.tmp", tmp_path / "movie.mp4")
    upstream.reset_counters()
    remote = await client.get("/up/movie.mp4?start=0.7")
    local = await client.get("/files/movie.mp4?start=0.7")
    assert remote.status == local.status == 200
    assert await remote.read() == await local.read()
    assert [r[2] for r in upstream.requests].count("bytes=0-0") >= 1  # it asked again after the 412


async def test_version_ttl_zero_opens_on_every_request(start_upstream, edge_client, tmp_path):
    shutil.copyfile(SAMPLE, tmp_path / "movie.mp4")
    upstream = await start_upstream(tmp_path)
    client = await edge_client([{"from": "/up/", "to": upstream.url + "/media/"}], upstream={"version_ttl_s": 0})
    for _ in range(3):
        resp = await client.get("/up/movie.mp4", headers={"Range": "bytes=0-9"})
        assert resp.status == 206 and len(await resp.read()) == 10
    assert [r[2] for r in upstream.requests].count("bytes=0-0") == 3
