"""LocalSource.read_ranges: what a CMAF fragment's small sample ranges are served with (one thread hop, exact
bytes, no sendfile per sample)."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from conftest import MEDIA_ROOT
from origin_proxy.errors import UpstreamError
from origin_proxy.store.source.local import LocalSource


def test_read_ranges_returns_exactly_the_ranges_in_order(tmp_path):
    path = tmp_path / "movie.mp4"
    shutil.copyfile(MEDIA_ROOT / "mp4/bbb_prog_10s.mp4", path)
    data = path.read_bytes()
    ranges = [(100, 7), (5000, 1), (40, 60), (len(data) - 10, 10)]

    async def run() -> bytes:
        async with await LocalSource.open(str(path), str(tmp_path)) as source:
            return await source.read_ranges(ranges)

    assert asyncio.run(run()) == b"".join(data[o : o + n] for o, n in ranges)


def test_read_ranges_of_a_file_cut_short_after_open_is_an_upstream_error(tmp_path):
    """The file shrank after it was opened (replaced in place): an error, never short or spliced bytes."""
    path = tmp_path / "movie.mp4"
    shutil.copyfile(MEDIA_ROOT / "mp4/bbb_prog_10s.mp4", path)
    size = path.stat().st_size

    async def run() -> bytes:
        async with await LocalSource.open(str(path), str(tmp_path)) as source:
            with open(path, "r+b") as f:
                f.truncate(size // 2)
            return await source.read_ranges([(0, 10), (size - 100, 50)])

    with pytest.raises(UpstreamError):
        asyncio.run(run())
