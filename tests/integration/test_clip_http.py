"""?start=/&end= clips over HTTP: both source kinds, the upstream byte budget, ranges and conditionals on a
clip, the metadata cache and single-flight under load, and the 4xx answers to bad requests.

Media verdicts come from ffprobe/ffmpeg (mediatools); box layout of sources and clips from mediatools'
own top-level walker, never from origin_proxy's parser.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

import mediatools as mt
from conftest import MEDIA_ROOT, media
from origin_proxy.server.state import EDGE_STATE

MIB = 2**20
SAMPLE_CLIP = "mp4/sample.mp4?start=0.5"
# moov after mdat, so that the moov read is a request of its own at the upstream.
MOOV_END = "mp4/bbb_prog_10s.mp4"
MOOV_END_CLIP = MOOV_END + "?start=3.3&end=7"


def _box(path: Path, fourcc: str) -> tuple[int, int]:
    """(offset, size) of the only top-level `fourcc` box of a file, by mediatools' walker."""
    found = [(offset, size) for name, offset, size in mt.top_level_boxes(path) if name == fourcc]
    assert len(found) == 1, f"{path}: expected one top-level {fourcc}, found {found}"
    return found[0]


def _payload_bytes(path: Path, offset: int, size: int) -> int:
    """Payload size of the box at `offset`: its size less an 8-byte header, or 16 with a 64-bit largesize."""
    with open(path, "rb") as f:
        f.seek(offset)
        size32 = int.from_bytes(f.read(4), "big")
    return size - (16 if size32 == 1 else 8)


def _range_bounds(header: str | None) -> tuple[int, int] | None:
    """(first, last) of a single `bytes=a-b` Range header as the edge sends it upstream; None without one."""
    if header is None:
        return None
    match = re.fullmatch(r"bytes=(\d+)-(\d+)", header)
    assert match, f"unexpected upstream Range header {header!r}"
    return int(match.group(1)), int(match.group(2))


def _split_multipart(body: bytes, content_type: str) -> list[tuple[str, bytes]]:
    """(Content-Range, payload) per part of a multipart/byteranges body (RFC 9110 §14.6)."""
    boundary = re.search(r"boundary=\"?([^\";]+)\"?", content_type).group(1).encode()
    pieces = body.split(b"--" + boundary)
    assert pieces[-1].strip() == b"--", "no close delimiter"
    parts = []
    for piece in pieces[1:-1]:
        head, sep, payload = piece.partition(b"\r\n\r\n")
        assert sep and payload.endswith(b"\r\n")
        fields = {}
        for line in head.decode("latin-1").strip().splitlines():
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        parts.append((fields["content-range"], payload[:-2]))
    return parts


async def _get_clip(client, url: str) -> tuple[bytes, dict]:
    resp = await client.get(url)
    body = await resp.read()
    assert resp.status == 200, (url, resp.status, body[:200])
    assert len(body) == resp.content_length
    return body, resp.headers


# --------------------------------------------------------------------------------------------------- sources


@pytest.mark.parametrize("target", [SAMPLE_CLIP, MOOV_END_CLIP, "mov/bt601.mov?start=0.4"])
async def test_file_and_upstream_rules_give_the_same_clip(edge, target, tmp_path):
    from_file, file_headers = await _get_clip(edge.client, "/files/" + target)
    from_upstream, upstream_headers = await _get_clip(edge.client, "/up/" + target)
    assert from_file == from_upstream
    assert file_headers["Content-Type"] == upstream_headers["Content-Type"]
    out = tmp_path / ("clip" + Path(target.split("?")[0]).suffix)
    out.write_bytes(from_file)
    assert mt.ffprobe_streams(out)  # a movie ffprobe can open, not merely equal garbage


@pytest.mark.slow
async def test_clip_of_a_large_movie_reads_only_moov_and_the_served_samples(
    movie_large, start_upstream, edge_client, tmp_path
):
    upstream = await start_upstream(movie_large.parent)
    client = await edge_client([{"from": "/big/", "to": upstream.url + "/media/"}])
    total_s = mt.duration_s(movie_large)
    start = int(total_s * 1000 / 2) / 1000  # ms precision: the query takes at most 9 decimals
    frame_s = mt.video_frame_duration_s(movie_large)

    upstream.reset_counters()
    body, _ = await _get_clip(client, f"/big/{movie_large.name}?start={start:.3f}&end={start + 5:.3f}")
    out = tmp_path / "clip.mp4"
    out.write_bytes(body)

    _, moov_size = _box(movie_large, "moov")
    mdat_offset, mdat_size = _box(out, "mdat")
    served_mdat = _payload_bytes(out, mdat_offset, mdat_size)
    assert upstream.bytes_sent <= moov_size + served_mdat + MIB, (
        f"upstream sent {upstream.bytes_sent} bytes for a moov of {moov_size} and {served_mdat} mdat bytes "
        f"(requests: {upstream.requests})"
    )
    assert mt.decode_errors(out) == ""
    assert abs(mt.duration_s(out) - 5) <= frame_s + 1e-6


# --------------------------------------------------------------------------------------------------- ranges


@pytest.fixture
async def clip_body(edge) -> tuple[bytes, dict]:
    return await _get_clip(edge.client, "/files/" + SAMPLE_CLIP)


async def test_range_on_a_clip(edge, clip_body):
    body, _ = clip_body
    resp = await edge.client.get("/files/" + SAMPLE_CLIP, headers={"Range": "bytes=0-99"})
    assert resp.status == 206
    assert resp.headers["Content-Range"] == f"bytes 0-99/{len(body)}"
    assert await resp.read() == body[:100]


async def test_suffix_range_on_a_clip(edge, clip_body):
    body, _ = clip_body
    resp = await edge.client.get("/files/" + SAMPLE_CLIP, headers={"Range": "bytes=-100"})
    assert resp.status == 206
    assert resp.headers["Content-Range"] == f"bytes {len(body) - 100}-{len(body) - 1}/{len(body)}"
    assert await resp.read() == body[-100:]


async def test_two_ranges_on_a_clip_are_multipart(edge, clip_body):
    body, _ = clip_body
    # The second range reaches past the generated moov into the mdat bytes taken from the source.
    second = (len(body) // 2, len(body) // 2 + 4999)
    resp = await edge.client.get("/files/" + SAMPLE_CLIP, headers={"Range": f"bytes=0-99,{second[0]}-{second[1]}"})
    assert resp.status == 206
    assert resp.headers["Content-Type"].startswith("multipart/byteranges")
    payload = await resp.read()
    assert len(payload) == resp.content_length
    parts = _split_multipart(payload, resp.headers["Content-Type"])
    assert parts == [
        (f"bytes 0-99/{len(body)}", body[:100]),
        (f"bytes {second[0]}-{second[1]}/{len(body)}", body[second[0] : second[1] + 1]),
    ]


async def test_unsatisfiable_range_on_a_clip_is_416(edge, clip_body):
    body, _ = clip_body
    resp = await edge.client.get("/files/" + SAMPLE_CLIP, headers={"Range": "bytes=999999999-"})
    assert resp.status == 416
    assert resp.headers["Content-Range"] == f"bytes */{len(body)}"


async def test_head_on_a_clip_matches_get(edge, clip_body):
    body, headers = clip_body
    resp = await edge.client.head("/files/" + SAMPLE_CLIP)
    assert resp.status == 200
    assert int(resp.headers["Content-Length"]) == len(body)
    assert resp.headers["ETag"] == headers["ETag"]
    assert await resp.read() == b""


async def test_if_none_match_on_a_clip_is_304(edge, clip_body):
    _, headers = clip_body
    resp = await edge.client.get("/files/" + SAMPLE_CLIP, headers={"If-None-Match": headers["ETag"]})
    assert resp.status == 304
    assert await resp.read() == b""


async def test_clip_etags_differ_by_start_and_from_the_whole_file(edge, clip_body):
    _, headers = clip_body
    other = await edge.client.head("/files/mp4/sample.mp4?start=0.6")
    whole = await edge.client.head("/files/mp4/sample.mp4")
    assert other.status == whole.status == 200
    assert len({headers["ETag"], other.headers["ETag"], whole.headers["ETag"]}) == 3


# --------------------------------------------------------------------------------------------------- metadata cache


def _reads_covering(requests, offset: int) -> list[str]:
    return [rng for _, _, rng in requests if (b := _range_bounds(rng)) and b[0] <= offset <= b[1]]


async def test_second_identical_clip_reads_no_metadata(edge):
    source = media(MOOV_END)
    mdat_offset, mdat_size = _box(source, "mdat")
    mdat_payload = (mdat_offset + mdat_size - _payload_bytes(source, mdat_offset, mdat_size), mdat_offset + mdat_size)
    cache = edge.client.app[EDGE_STATE].cache

    first, _ = await _get_clip(edge.client, "/up/" + MOOV_END_CLIP)
    hits = cache.hits
    edge.upstream.reset_counters()
    second, _ = await _get_clip(edge.client, "/up/" + MOOV_END_CLIP)

    assert second == first
    assert cache.hits == hits + 1
    bounds = [_range_bounds(rng) for _, _, rng in edge.upstream.requests]
    opens = [b for b in bounds if b == (0, 0)]  # the open: length and validator
    body_reads = [b for b in bounds if b != (0, 0)]
    # at most the open (none while upstream.version_ttl_s still holds what the first request's open learned)
    assert len(opens) <= 1, edge.upstream.requests
    assert body_reads, "the clip's samples must come from the upstream"
    assert all(mdat_payload[0] <= first_byte and last < mdat_payload[1] for first_byte, last in body_reads), (
        f"second request read outside the mdat payload {mdat_payload}: {edge.upstream.requests}"
    )


async def test_200_concurrent_cold_clip_requests_read_the_moov_once(edge):
    moov_offset, _ = _box(media(MOOV_END), "moov")
    edge.upstream.reset_counters()

    async def fetch() -> tuple[int, bytes]:
        resp = await edge.client.get("/up/" + MOOV_END_CLIP)
        return resp.status, await resp.read()

    results = await asyncio.gather(*(fetch() for _ in range(200)))
    statuses = {status for status, _ in results}
    assert statuses == {200}, f"statuses {sorted(statuses)}"
    assert len({body for _, body in results}) == 1
    assert len(_reads_covering(edge.upstream.requests, moov_offset)) == 1, edge.upstream.requests
    assert edge.client.app[EDGE_STATE].cache.loads == 1


# --------------------------------------------------------------------------------------------------- errors


async def _assert_one_line_400(resp) -> str:
    text = await resp.text()
    assert resp.status == 400, (resp.status, text)
    assert resp.content_type == "text/plain"
    assert text.endswith("\n") and "\n" not in text[:-1] and text.strip(), repr(text)
    return text


@pytest.mark.parametrize(
    "query",
    ["start=abc", "start=-1", "start=nan", "start=inf", "start=1e3", "start=", "end=0", "start=5&end=5",
     "start=5&end=2", "mode=bogus&start=0.5", "start=0.5&start=0.7", "start=+1", "start=0x10", "end=-1"],
)
async def test_bad_query_values_are_400(edge, query):
    await _assert_one_line_400(await edge.client.get(f"/files/mp4/sample.mp4?{query}"))


@pytest.mark.parametrize("prefix", ["/files/", "/up/"])
async def test_start_past_the_end_is_400_naming_the_duration(edge, prefix):
    text = await _assert_one_line_400(await edge.client.get(prefix + "mp4/sample.mp4?start=99999"))
    numbers = [float(x) for x in re.findall(r"\d+\.\d+", text)]
    # The end of presentation may include an audio lead; within 0.1 s of ffprobe's container duration.
    expected = mt.duration_s(media("mp4/sample.mp4"))
    assert any(abs(n - expected) <= 0.1 for n in numbers), (text, expected)


@pytest.mark.parametrize(
    "target",
    ["/nowhere/mp4/sample.mp4?start=0.5", "/files/mp4/no-such.mp4?start=0.5", "/up/mp4/no-such.mp4?start=0.5",
     "/files/mp4/no-such.mp4"],
)
async def test_unmapped_or_missing_is_404(edge, target):
    resp = await edge.client.get(target)
    assert resp.status == 404, (target, resp.status, await resp.text())


@pytest.mark.parametrize("prefix", ["/files/", "/up/"])
async def test_fragmented_input_with_start_is_415(edge, prefix):
    resp = await edge.client.get(prefix + "fmp4/sample_fragmented.mp4?start=0.5")
    text = await resp.text()
    assert resp.status in (415, 501), (resp.status, text)
    assert "\n" not in text.strip()
