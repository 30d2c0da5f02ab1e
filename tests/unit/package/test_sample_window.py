"""Windowed sample accessors (isobmff/sample_window.py) against the SampleTable's per-sample columns.

The packager reads durations, decode times, composition offsets and sync flags of one segment's samples (and of
whole tracks once per packaging) through these functions instead of the columns, which, once made, stay cached on
the table. Each function must give exactly the column's slice: the same dtype (trun records and the segmenter's
arithmetic depend on it) and the same values. Checked on every track of every shared .mp4/.mov/.m4a (the columns
themselves are checked against ffprobe in tests/unit/isobmff/test_run_table.py), on hypothesis windows of real
files, and on random tables (one-sample runs, zero deltas, deltas past 2**31, negative offsets, ctts shorter or
longer than the track, no stss); the median duration the HLS/DASH frame rate comes from equals np.median.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import MEDIA_ROOT
from origin_proxy.errors import FragmentedMedia, MalformedMedia, UnsupportedMedia
from origin_proxy.isobmff.boxes.ctts import CTTS_ENTRY
from origin_proxy.isobmff.boxes.stsc import STSC_ENTRY
from origin_proxy.isobmff.boxes.stts import STTS_ENTRY
from origin_proxy.isobmff.header import iter_boxes
from origin_proxy.isobmff.movie import parse_moov
from origin_proxy.isobmff.stbl import build_sample_table
from origin_proxy.isobmff.sample_window import (composition_offsets, decode_times, durations,
                                                median_duration_ticks, sync_flags, sync_samples)

MEDIA = sorted(p.relative_to(MEDIA_ROOT).as_posix() for d in ("mp4", "mov", "fate") for p in (MEDIA_ROOT / d).iterdir()
               if p.suffix.lower() in (".mp4", ".mov", ".m4a"))
WINDOW_MEDIA = ["mp4/bbb_prog_10s.mp4", "mp4/h265_bframes.mp4", "mp4/sample_ac3_aac.mp4", "mov/sowt-with-video.mov",
                "mp4/edit_list_positive_shift.mp4"]


@functools.lru_cache(maxsize=None)
def _movie(name):
    data = (MEDIA_ROOT / name).read_bytes()
    moov = next((s for s in iter_boxes(data, 0, len(data), "") if s.fourcc == b"moov"), None)
    if moov is None:
        pytest.skip(f"{name}: no moov")
    try:
        return parse_moov(data[moov.offset : moov.end], len(data), max_samples=10_000_000)
    except (FragmentedMedia, UnsupportedMedia, MalformedMedia) as exc:  # refused by the parser (tests/malformed)
        pytest.skip(f"{name}: {exc}")


def _same(ours: np.ndarray, column: np.ndarray) -> None:
    assert ours.dtype == column.dtype, (ours.dtype, column.dtype)
    assert ours.shape == column.shape
    assert np.array_equal(ours, column)


def _check_window(table, first, stop):
    window = slice(first, stop)
    _same(decode_times(table, first, stop), table.dts_ticks[window])
    _same(durations(table, first, stop), table.duration_ticks[window])
    _same(composition_offsets(table, first, stop), table.cts_offset_ticks[window])
    _same(sync_flags(table, first, stop), table.is_sync[window])
    sync = table.sync_indices
    _same(sync_samples(table, first, stop), sync[(sync >= first) & (sync < stop)])


def _run_edges(table):
    """Sample indices where a stts or ctts run begins or ends, and the track's ends."""
    n = table.sample_count
    edges = set(table.stts.first_sample.tolist()) | ({0, n} if table.ctts is None else
                                                    set(table.ctts.first_sample.tolist()))
    return sorted({e + d for e in edges for d in (-1, 0, 1) if 0 <= e + d <= n})


@pytest.mark.parametrize("name", MEDIA)
def test_windows_equal_the_columns_on_shared_media(name):
    movie = _movie(name)
    rng = np.random.default_rng(13)
    for track in movie.tracks:
        table = track.table
        n = table.sample_count
        _check_window(table, 0, n)  # the segmenter's whole-track arrays
        edges = _run_edges(table)
        for first, stop in zip(edges, edges[1:]):  # each piece between run edges, and windows across them
            _check_window(table, first, stop)
        for _ in range(12):
            first, stop = sorted(rng.integers(0, n + 1, 2).tolist())
            _check_window(table, first, stop)
        _check_window(table, n, n)
        if n:
            assert median_duration_ticks(table) == float(np.median(table.duration_ticks))


def test_windows_outside_the_track_are_refused():
    table = _movie("mp4/bbb_prog_10s.mp4").tracks[0].table
    n = table.sample_count
    for first, stop in ((-1, 3), (3, 2), (0, n + 1)):
        for accessor in (decode_times, durations, composition_offsets, sync_flags, sync_samples):
            with pytest.raises(IndexError):
                accessor(table, first, stop)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(WINDOW_MEDIA), data=st.data())
def test_hypothesis_windows_of_real_files(name, data):
    movie = _movie(name)
    table = data.draw(st.sampled_from(movie.tracks)).table
    n = table.sample_count
    first = data.draw(st.integers(0, n))
    stop = data.draw(st.integers(first, min(n, first + data.draw(st.sampled_from([1, 2, 7, 60, n])))))
    _check_window(table, first, stop)


@st.composite
def _tables(draw):
    """A valid stbl of 1..80 samples in one chunk per sample, with stts/ctts runs and stss drawn at random."""
    n = draw(st.integers(1, 80))
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=8)))
    bounds = [0, *cuts, n]
    delta = st.sampled_from([0, 1, 2, 512, 1001, 3003, 2**31 - 1, 2**31, 2**32 - 1])
    stts = np.array([(b - a, draw(delta)) for a, b in zip(bounds, bounds[1:])], STTS_ENTRY)
    ctts = None
    if draw(st.booleans()):
        counts = draw(st.lists(st.integers(0, 15), min_size=1, max_size=12))
        ctts = np.array([(c, draw(st.integers(-2**31, 2**31 - 1) | st.integers(-3000, 3000))) for c in counts],
                        CTTS_ENTRY)
    stss = None
    if draw(st.booleans()):
        stss = np.array(draw(st.lists(st.integers(1, n), max_size=10)), ">u4")
    sizes = np.array(draw(st.lists(st.integers(1, 300), min_size=n, max_size=n)), ">u4")
    offsets = (np.cumsum(sizes.astype(np.int64)) - sizes + 8).astype(">u4")
    stsc = np.array([(1, 1, 1)], STSC_ENTRY)
    return build_sample_table(timescale=90000, stts=stts, ctts=ctts, stss=stss, stsc=stsc, stsz=(0, n, sizes),
                              chunk_offsets=offsets, file_size=int(offsets[-1]) + int(sizes[-1]),
                              max_samples=10**6, box_path="stbl")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_tables(), st.data())
def test_random_tables(table, data):
    n = table.sample_count
    _check_window(table, 0, n)
    first = data.draw(st.integers(0, n))
    stop = data.draw(st.integers(first, n))
    _check_window(table, first, stop)
    assert median_duration_ticks(table) == float(np.median(table.duration_ticks))
