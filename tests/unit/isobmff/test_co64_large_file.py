"""A file over 4 GiB with co64 chunk offsets (ISO/IEC 14496-12 §8.7.5), as the seek bench uses
(bench/seek_media.py make_co64): an ffmpeg movie whose samples sit behind a 4.5 GiB sparse hole in a 64-bit-size mdat.

Judged by ffprobe and ffmpeg, not by our parser: every sample offset we compute equals ffprobe's packet position
(all past 2^32), a Range of a sample past 4 GiB answers that sample's bytes, and a `?start=` clip of it presents
the frames ffmpeg presents from the same time in the small source.
"""

from __future__ import annotations

import hashlib

import pytest

import mediatools as mt
from bench.seek_media import CO64_HOLE_BYTES, make_co64
from origin_proxy.isobmff.movie import parse_moov


@pytest.fixture(scope="module")
def co64_pair(tmp_path_factory):
    """(small moov-at-end source, the > 4 GiB co64 file made from it)."""
    folder = tmp_path_factory.mktemp("co64")
    source = mt.make_test_movie(folder / "small.mp4", 8.0, size="320x180", gop=25)
    big = folder / "big.mp4"
    make_co64(source, big)
    return source, big


def _moov_of(path):
    """(the moov box's bytes, the file size), found with mediatools' own top-level walker."""
    offset, size = next((o, n) for kind, o, n in mt.top_level_boxes(path) if kind == "moov")
    with path.open("rb") as f:
        f.seek(offset)
        return f.read(size), path.stat().st_size


def test_the_file_is_over_4_gib_sparse_and_uses_co64(co64_pair):
    source, big = co64_pair
    assert big.stat().st_size > 2**32 + source.stat().st_size
    assert big.stat().st_blocks * 512 < 64 << 20, "the hole should not be written to disk"
    moov, _ = _moov_of(big)
    assert moov[4:8] == b"moov" and b"co64" in moov and b"stco" not in moov
    assert [kind for kind, *_ in mt.top_level_boxes(big)] == ["ftyp", "mdat", "moov"]


def test_sample_offsets_past_4_gib_equal_ffprobe_positions(co64_pair):
    source, big = co64_pair
    moov, size = _moov_of(big)
    movie = parse_moov(moov, size, max_samples=1_000_000)
    for index, track in enumerate(movie.tracks):
        packets = mt.ffprobe_packets(big, str(index), ignore_editlist=True)
        small = mt.ffprobe_packets(source, str(index), ignore_editlist=True)
        ours = track.table.sample_offsets(0, track.table.sample_count).tolist()
        assert ours == [p.pos for p in packets]
        assert min(ours) > 2**32
        shift = packets[0].pos - small[0].pos
        assert shift >= CO64_HOLE_BYTES and [p.pos - shift for p in packets] == [p.pos for p in small]


async def test_range_and_clip_of_the_co64_file(edge_client, co64_pair, tmp_path):
    source, big = co64_pair
    client = await edge_client([{"from": "/big/", "to": "file://" + str(big.parent) + "/"}])
    # A Range of one video sample past 4 GiB: the sample's bytes (read from the small source by its position).
    packet = mt.ffprobe_packets(big, "v:0", max_packets=40)[-1]
    small = mt.ffprobe_packets(source, "v:0", max_packets=40)[-1]
    response = await client.get(f"/big/{big.name}", headers={"Range": f"bytes={packet.pos}-{packet.pos + packet.size - 1}"})
    body = await response.read()
    assert response.status == 206 and packet.pos > 2**32
    with source.open("rb") as f:
        f.seek(small.pos)
        assert hashlib.sha256(body).digest() == hashlib.sha256(f.read(small.size)).digest()
    # A clip from between two key frames: the frames ffmpeg presents from that time in the small source.
    start_s = 3.3
    response = await client.get(f"/big/{big.name}?start={start_s}")
    body = await response.read()
    assert response.status == 200 and len(body) == int(response.headers["Content-Length"])
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(body)
    assert [kind for kind, *_ in mt.top_level_boxes(clip)][:3] == ["ftyp", "moov", "mdat"]
    assert mt.framemd5(clip, count=5) == mt.framemd5(source, count=5, seek_s=start_s)
    assert mt.decode_errors(clip).strip() == ""


@pytest.mark.parametrize("wide", [False, True])
def test_shifted_chunk_offsets_are_the_plain_table_of_the_shifted_values(wide):
    """The clip writer's stco/co64 (moved by the mdat shift, first chunk cut) is byte for byte the table
    build_chunk_offsets makes of those values, and refuses the same overflows."""
    import numpy as np

    from origin_proxy.isobmff.boxes.stco import build_chunk_offsets, build_shifted_chunk_offsets

    rng = np.random.default_rng(3)
    for dtype, top in ((np.uint32, 2**32 - 1), (np.int64, 2**40)):
        source = np.sort(rng.integers(10_000, top if wide else 2**31, 5000)).astype(dtype)
        for first, shift in ((int(source[0]) + 17, -9_000), (int(source[0]), 123_456), (int(source[0]) + 1, 0)):
            values = source.astype(np.int64) + shift
            values[0] = first + shift
            try:
                expected = build_chunk_offsets(values, wide=wide)
            except OverflowError:
                with pytest.raises(OverflowError):
                    build_shifted_chunk_offsets(source, first, shift, wide=wide)
                continue
            assert build_shifted_chunk_offsets(source, first, shift, wide=wide) == expected
        with pytest.raises(OverflowError):
            build_shifted_chunk_offsets(source, int(source[0]), -int(source[0]) - 1, wide=wide)
    assert build_shifted_chunk_offsets(np.array([5], np.uint32), 7, 2**32 - 8, wide=False)[1][-4:] == b"\xff" * 4
    with pytest.raises(OverflowError):
        build_shifted_chunk_offsets(np.array([5, 2**32 - 1], np.uint32), 7, 1, wide=False)
