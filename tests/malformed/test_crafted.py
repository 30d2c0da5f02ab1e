"""Crafted hostile MP4s (issue 5's list), each made from a real moov-at-end file by editing one field.

Each file is served through a file:// rule: plain GET (the file's own bytes), `?start=1`, `?end=2`, and every
packaging URL (HLS, DASH and Smooth manifests, a playlist, init and media segments: a mapped status, never 500). A clip answer must be the status we state for the case, with a one-line text body; when it is
200 the body must be an MP4 that ffmpeg decodes cleanly. Nothing may take longer than the timeout, and the
server must still serve a good clip afterwards. What each case must give:
- 502 (MalformedMedia): the file contradicts itself (counts, offsets, sizes, timescale 0);
- 501 (UnsupportedMedia): the file is over a configured limit (tracks, moov bytes);
- 200: the file is in fact usable (ctts entries past the last sample are cut, as players do; a second
  moov after the first is ignored).
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable

import pytest

import mediatools as mt
from boxes import Box, BoxTree, make_box
from conftest import MEDIA_ROOT

SOURCE = MEDIA_ROOT / "mp4/bbb_prog_10s.mp4"  # moov at the end: editing it never moves the mdat


def _edit_table(fourcc: bytes, edit: Callable[[bytearray], None], track: int = 0) -> Callable[[BoxTree], bytes]:
    def apply(tree: BoxTree) -> bytes:
        box = tree.moov.find_all(fourcc)[track]
        payload = bytearray(box.payload)
        edit(payload)
        box.payload = bytes(payload)
        return tree.encode()

    return apply


def _put(offset: int, fmt: str, value: int) -> Callable[[bytearray], None]:
    return lambda payload: struct.pack_into(fmt, payload, offset, value)


def _stco_to_co64_past_eof(tree: BoxTree) -> bytes:
    stbl = tree.moov.find_all(b"stbl")[0]
    for index, child in enumerate(stbl.children):
        if child.fourcc == b"stco":
            count = struct.unpack_from(">I", child.payload, 4)[0]
            offsets = [2**40 + i for i in range(count)]
            stbl.children[index] = Box(b"co64", struct.pack(">II", 0, count) + struct.pack(f">{count}Q", *offsets))
    return tree.encode()


def _stsc_decreasing(tree: BoxTree) -> bytes:
    stsc = tree.moov.find_all(b"stsc")[0]
    entries = struct.pack(">III", 3, 1, 1) + struct.pack(">III", 2, 1, 1)
    stsc.payload = struct.pack(">II", 0, 2) + entries
    return tree.encode()


def _ctts_longer(tree: BoxTree) -> bytes:
    """Surplus ctts entries past the last sample (writers that round up): cut, as players do."""
    ctts = tree.moov.find_all(b"ctts")[0]
    count = struct.unpack_from(">I", ctts.payload, 4)[0]
    ctts.payload = ctts.payload[:4] + struct.pack(">I", count + 1) + ctts.payload[8:] + struct.pack(">II", 1000, 0)
    return tree.encode()


def _largesize_in_moov(tree: BoxTree) -> bytes:
    raw = make_box(b"free", b"", largesize=12)  # largesize smaller than its own 16-byte header
    tree.moov.children.insert(1, Box(b"\0raw", raw))  # placeholder, replaced below
    encoded = tree.encode()
    return encoded.replace(make_box(b"\0raw", raw), raw)


def _size_zero_in_moov(tree: BoxTree) -> bytes:
    encoded = tree.encode()
    moov_at = encoded.rindex(b"moov") - 4
    # A first child of size 0 ("to the end of the container") swallows mvhd and every trak.
    child = struct.pack(">I4s", 0, b"free")
    moov_size = struct.unpack_from(">I", encoded, moov_at)[0] + 8
    return encoded[:moov_at] + struct.pack(">I4s", moov_size, b"moov") + child + encoded[moov_at + 8 :]


def _moov_past_eof(tree: BoxTree) -> bytes:
    encoded = tree.encode()
    moov_at = encoded.rindex(b"moov") - 4
    return encoded[:moov_at] + struct.pack(">I", len(encoded) * 2) + encoded[moov_at + 4 :]


def _truncated_moov(tree: BoxTree) -> bytes:
    encoded = tree.encode()
    moov_at = encoded.rindex(b"moov") - 4
    return encoded[: moov_at + (len(encoded) - moov_at) // 2]


def _top_level_largesize_below_16(tree: BoxTree) -> bytes:
    encoded = tree.encode()
    moov_at = encoded.rindex(b"moov") - 4
    return encoded[:moov_at] + make_box(b"free", b"", largesize=9) + encoded[moov_at:]


def _duplicate_moov(tree: BoxTree) -> bytes:
    return tree.encode() + tree.moov.encode()


def _duplicate_mdat_header(tree: BoxTree) -> bytes:
    return tree.encode() + make_box(b"mdat", b"\0" * 64)


def _many_traks(tree: BoxTree) -> bytes:
    spare = Box(b"trak", children=[Box(b"tkhd", bytes(84))])
    tree.moov.children += [spare] * 20_000
    return tree.encode()


def _deep_nesting(tree: BoxTree) -> bytes:
    nested = b""
    for _ in range(5_000):  # trak in trak in trak ...: 40 KB of headers
        nested = make_box(b"trak", nested)
    tree.moov.children.append(Box(b"\0raw"))
    encoded = tree.encode()
    return encoded.replace(make_box(b"\0raw", b""), b"")[: encoded.rindex(b"moov") - 4] + _with_child(tree, nested)


def _with_child(tree: BoxTree, raw_child: bytes) -> bytes:
    tree.moov.children = [c for c in tree.moov.children if c.fourcc != b"\0raw"]
    body = b"".join(child.encode() for child in tree.moov.children) + raw_child
    return make_box(b"moov", body)


CASES: dict[str, tuple[Callable[[BoxTree], bytes], int]] = {
    "stsz_count_beyond_box": (_edit_table(b"stsz", _put(8, ">I", 0x0FFFFFFF)), 502),
    "stts_entry_count_beyond_box": (_edit_table(b"stts", _put(4, ">I", 0x10000000)), 502),
    "stco_entry_count_beyond_box": (_edit_table(b"stco", _put(4, ">I", 0x3FFFFFFF)), 502),
    "co64_offsets_past_eof": (_stco_to_co64_past_eof, 502),
    "stco_offset_plus_sizes_past_2_32": (_edit_table(b"stco", _put(8, ">I", 0xFFFFFF00)), 502),
    "stsc_first_chunk_zero": (_edit_table(b"stsc", _put(8, ">I", 0)), 502),
    "stsc_first_chunk_decreasing": (_stsc_decreasing, 502),
    "stsc_first_chunk_past_chunk_count": (_edit_table(b"stsc", _put(8, ">I", 1_000_000)), 502),
    "stsc_samples_per_chunk_huge": (_edit_table(b"stsc", _put(12, ">I", 0xFFFFFFFF)), 502),
    "stts_counts_not_summing_to_stsz": (_edit_table(b"stts", _put(8, ">I", 1)), 502),
    "stss_sample_number_zero": (_edit_table(b"stss", _put(8, ">I", 0)), 502),
    "stss_sample_number_past_end": (_edit_table(b"stss", _put(8, ">I", 1_000_000)), 502),
    "ctts_longer_than_track": (_ctts_longer, 200),
    "mdhd_timescale_zero": (_edit_table(b"mdhd", _put(12, ">I", 0)), 502),
    "largesize_below_16_in_moov": (_largesize_in_moov, 502),
    "largesize_below_16_top_level": (_top_level_largesize_below_16, 502),
    "size_zero_in_the_middle_of_moov": (_size_zero_in_moov, 502),
    "moov_past_eof": (_moov_past_eof, 502),
    "truncated_moov": (_truncated_moov, 502),
    "duplicate_moov": (_duplicate_moov, 200),
    "duplicate_mdat_after_moov": (_duplicate_mdat_header, 200),
    "20000_traks": (_many_traks, 501),
    "deeply_nested_traks": (_deep_nesting, 502),  # a trak holding only a trak has no tkhd: malformed
}


PACKAGING_RESOURCES = ["master.m3u8", "manifest.mpd", "Manifest", "cmaf1/v1/playlist.m3u8", "cmaf1/v1/init.mp4",
                       "cmaf1/v1/1.m4s", "cmaf1/a2/1.m4s"]
MAPPED = {200, 400, 404, 415, 501, 502}


@pytest.fixture(scope="module")
def crafted_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("crafted")
    for name, (build, _) in CASES.items():
        (root / f"{name}.mp4").write_bytes(build(BoxTree.read(SOURCE)))
    (root / "good.mp4").write_bytes(SOURCE.read_bytes())
    return root


async def _get(client, url: str):
    async with asyncio.timeout(20):
        response = await client.get(url)
        return response, await response.read()


@pytest.mark.parametrize("name", list(CASES))
async def test_crafted_file(edge_client, crafted_dir, tmp_path, name):
    client = await edge_client([{"from": "/c/", "to": "file://" + str(crafted_dir) + "/"}])
    expected = CASES[name][1]
    path = crafted_dir / f"{name}.mp4"

    response, body = await _get(client, f"/c/{name}.mp4")
    assert response.status == 200 and body == path.read_bytes(), "plain GET serves the file's own bytes"

    for query in ("start=1", "end=2"):
        response, body = await _get(client, f"/c/{name}.mp4?{query}")
        assert len(body) == int(response.headers["Content-Length"])
        assert response.status == expected, (query, response.status, body[:200])
        if response.status == 200:
            clip = tmp_path / f"{query[:3]}.mp4"
            clip.write_bytes(body)
            assert mt.decode_errors(clip) == ""
        else:
            assert response.content_type == "text/plain" and body.count(b"\n") <= 1 and body.strip()

    # Every packaging URL: a mapped status (never 500) and a body that is exactly Content-Length long.
    for resource in PACKAGING_RESOURCES:
        response, body = await _get(client, f"/c/{name}.mp4/{resource}")
        assert response.status in MAPPED, (resource, response.status, body[:200])
        assert len(body) == int(response.headers["Content-Length"]), resource

    response, body = await _get(client, "/c/good.mp4?start=1")
    assert response.status == 200 and (await _get(client, "/healthz"))[0].status == 200


async def test_moov_over_max_moov_bytes_is_501(edge_client):
    client = await edge_client([{"from": "/m/", "to": "file://" + str(MEDIA_ROOT) + "/"}],
                               limits={"max_moov_bytes": 1000})
    response, body = await _get(client, "/m/mp4/bbb_prog_10s.mp4?start=1")
    assert response.status == 501 and b"moov" in body
