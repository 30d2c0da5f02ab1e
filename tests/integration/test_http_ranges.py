"""Range and conditional requests over a real file served as is (RFC 9110 §13, §14)."""

from __future__ import annotations

import asyncio
import email.utils
import os
import re

import pytest

from conftest import media

SAMPLE = media("mp4/sample.mp4")
URL = "/files/mp4/sample.mp4"


@pytest.fixture(scope="module")
def sample_bytes() -> bytes:
    return SAMPLE.read_bytes()


def parse_multipart(body: bytes, content_type: str) -> list[tuple[str, bytes]]:
    """(Content-Range, payload) of each part of a multipart/byteranges body, parsed independently of the server."""
    boundary = re.search(r"boundary=([^;\s]+)", content_type).group(1).encode()
    chunks = body.split(b"--" + boundary)
    assert chunks[-1].strip() == b"--", "body must end with the close delimiter"
    parts = []
    for chunk in chunks[1:-1]:
        head, _, payload = chunk.partition(b"\r\n\r\n")
        assert payload.endswith(b"\r\n")
        fields = dict(line.split(": ", 1) for line in head.decode().strip().split("\r\n"))
        parts.append((fields["Content-Range"], payload[:-2]))
    return parts


async def test_whole_file(edge, sample_bytes):
    resp = await edge.client.get(URL)
    assert resp.status == 200
    assert await resp.read() == sample_bytes
    assert resp.headers["Content-Type"] == "video/mp4"
    assert resp.headers["Accept-Ranges"] == "bytes"
    assert resp.headers["Cache-Control"] == "public, max-age=86400"
    assert re.fullmatch(r'"[0-9a-f]{32}"', resp.headers["ETag"])
    assert email.utils.parsedate_to_datetime(resp.headers["Last-Modified"]).timestamp() == int(SAMPLE.stat().st_mtime)


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [("bytes=0-99", 0, 99), ("bytes=-100", None, None), ("bytes=100-", 100, None), ("bytes=5-5", 5, 5),
     ("bytes=50000-9999999", 50000, None)],
)
async def test_single_range(edge, sample_bytes, header, first, last):
    total = len(sample_bytes)
    if first is None:  # suffix: the last 100 bytes
        first, last = total - 100, total - 1
    last = total - 1 if last is None else last
    resp = await edge.client.get(URL, headers={"Range": header})
    assert resp.status == 206
    assert resp.headers["Content-Range"] == f"bytes {first}-{last}/{total}"
    body = await resp.read()
    assert int(resp.headers["Content-Length"]) == len(body) == last - first + 1
    assert body == sample_bytes[first : last + 1]


async def test_two_ranges_multipart(edge, sample_bytes):
    total = len(sample_bytes)
    resp = await edge.client.get(URL, headers={"Range": "bytes=0-99, -100"})
    assert resp.status == 206
    assert resp.headers["Content-Type"].startswith("multipart/byteranges; boundary=")
    body = await resp.read()
    assert int(resp.headers["Content-Length"]) == len(body)
    parts = parse_multipart(body, resp.headers["Content-Type"])
    assert parts == [
        (f"bytes 0-99/{total}", sample_bytes[:100]),
        (f"bytes {total - 100}-{total - 1}/{total}", sample_bytes[-100:]),
    ]


@pytest.mark.parametrize("header", ["bytes=999999999-", "bytes=-0", "bytes=999999999-999999999, 888888888-"])
async def test_unsatisfiable(edge, sample_bytes, header):
    resp = await edge.client.get(URL, headers={"Range": header})
    assert resp.status == 416
    assert resp.headers["Content-Range"] == f"bytes */{len(sample_bytes)}"


@pytest.mark.parametrize("header", ["bytes=abc", "bytes=10-5", "items=0-10", "bytes=", "bytes=0-1," * 65])
async def test_malformed_or_excessive_range_is_ignored(edge, sample_bytes, header):
    resp = await edge.client.get(URL, headers={"Range": header})
    assert resp.status == 200
    assert await resp.read() == sample_bytes


async def test_head_matches_get(edge):
    get = await edge.client.get(URL, headers={"Range": "bytes=10-20"})
    get_body = await get.read()
    head = await edge.client.head(URL, headers={"Range": "bytes=10-20"})
    assert head.status == get.status == 206
    assert await head.read() == b""
    for name in ("Content-Length", "Content-Range", "ETag", "Last-Modified", "Content-Type"):
        assert head.headers[name] == get.headers[name]
    assert int(head.headers["Content-Length"]) == len(get_body) == 11
    whole = await edge.client.head(URL)
    assert whole.status == 200 and int(whole.headers["Content-Length"]) == SAMPLE.stat().st_size


async def test_if_none_match(edge):
    etag = (await edge.client.get(URL)).headers["ETag"]
    resp = await edge.client.get(URL, headers={"If-None-Match": f'"other", {etag}'})
    assert resp.status == 304
    assert await resp.read() == b""
    assert resp.headers["ETag"] == etag
    resp = await edge.client.get(URL, headers={"If-None-Match": '"other"'})
    assert resp.status == 200


async def test_if_modified_since(edge):
    last_modified = (await edge.client.get(URL)).headers["Last-Modified"]
    assert (await edge.client.get(URL, headers={"If-Modified-Since": last_modified})).status == 304
    earlier = email.utils.formatdate(SAMPLE.stat().st_mtime - 3600, usegmt=True)
    assert (await edge.client.get(URL, headers={"If-Modified-Since": earlier})).status == 200
    # If-None-Match takes precedence (RFC 9110 §13.2.2): a non-matching tag wins over a fresh date.
    resp = await edge.client.get(URL, headers={"If-Modified-Since": last_modified, "If-None-Match": '"x"'})
    assert resp.status == 200


async def test_if_range(edge, sample_bytes):
    first = await edge.client.get(URL)
    etag, last_modified = first.headers["ETag"], first.headers["Last-Modified"]
    match = await edge.client.get(URL, headers={"Range": "bytes=0-9", "If-Range": etag})
    assert match.status == 206 and await match.read() == sample_bytes[:10]
    by_date = await edge.client.get(URL, headers={"Range": "bytes=0-9", "If-Range": last_modified})
    assert by_date.status == 206
    for stale in ('"stale"', f"W/{etag}", "Mon, 01 Jan 2001 00:00:00 GMT"):
        resp = await edge.client.get(URL, headers={"Range": "bytes=0-9", "If-Range": stale})
        assert resp.status == 200, stale
        assert await resp.read() == sample_bytes


async def test_unmapped_path_is_404(edge):
    resp = await edge.client.get("/nowhere/sample.mp4")
    assert resp.status == 404
    assert (await resp.text()).strip() == "no remap rule for this path"


async def test_missing_and_directory_are_404(edge):
    assert (await edge.client.get("/files/mp4/missing.mp4")).status == 404
    assert (await edge.client.get("/files/mp4")).status == 404
    assert (await edge.client.get("/files/")).status == 404


async def test_healthz(edge):
    resp = await edge.client.get("/healthz")
    assert resp.status == 200 and await resp.text() == "ok\n"


async def test_content_type_and_rule_cache_control(edge_client, tmp_path):
    for name in ("a.m4a", "b.mov", "c.bin"):
        (tmp_path / name).write_bytes(os.urandom(10))
    client = await edge_client([{"from": "/m/", "to": f"file://{tmp_path}/", "cache_control": "no-store"}])
    types = {}
    for name in ("a.m4a", "b.mov", "c.bin"):
        resp = await client.get(f"/m/{name}")
        assert resp.headers["Cache-Control"] == "no-store"
        types[name] = resp.headers["Content-Type"]
    assert types == {"a.m4a": "audio/mp4", "b.mov": "video/quicktime", "c.bin": "application/octet-stream"}


async def test_empty_file(edge_client, tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    client = await edge_client([{"from": "/m/", "to": f"file://{tmp_path}/"}])
    resp = await client.get("/m/empty.mp4")
    assert resp.status == 200 and await resp.read() == b""
    resp = await client.get("/m/empty.mp4", headers={"Range": "bytes=0-"})
    assert resp.status == 416 and resp.headers["Content-Range"] == "bytes */0"


async def test_large_file_sendfile_ranges(edge_client, tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 17)
    (tmp_path / "big.mp4").write_bytes(data)
    client = await edge_client([{"from": "/m/", "to": f"file://{tmp_path}/"}])
    resp = await client.get("/m/big.mp4")
    assert await resp.read() == data
    resp = await client.get("/m/big.mp4", headers={"Range": "bytes=1000-1999,2000000-,5-9"})
    parts = parse_multipart(await resp.read(), resp.headers["Content-Type"])
    assert [payload for _, payload in parts] == [data[1000:2000], data[2000000:], data[5:10]]


async def test_local_file_ranges_go_through_loop_sendfile(edge, monkeypatch, sample_bytes):
    """Large local ranges are sent zero-copy, one `loop.sendfile` each; small ones (under 64 KiB, e.g. a CMAF
    fragment's samples) are read with pread instead, which costs less than a sendfile call for a few bytes."""
    loop = asyncio.get_running_loop()
    calls = []
    real_sendfile = loop.sendfile

    async def spy(transport, file, offset=0, count=None, **kwargs):
        calls.append((offset, count))
        return await real_sendfile(transport, file, offset, count, **kwargs)

    monkeypatch.setattr(loop, "sendfile", spy)
    resp = await edge.client.get(URL, headers={"Range": "bytes=0-9,100-199,1000-99999"})
    parts = parse_multipart(await resp.read(), resp.headers["Content-Type"])
    assert [payload for _, payload in parts] == [sample_bytes[:10], sample_bytes[100:200], sample_bytes[1000:100000]]
    assert calls == [(1000, 99000)]  # the large range only, after its multipart head
