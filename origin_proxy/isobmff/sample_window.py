"""Per-sample values of a window of samples, computed from a SampleTable's runs and cached nowhere.

The SampleTable (sample_table.py) keeps stts and ctts as runs and stss as sorted indices; its per-sample columns
(dts_ticks, duration_ticks, cts_offset_ticks, is_sync), once made, stay on the table, and so in the metadata
cache, as long as the movie does: four arrays of N entries beside the moov (issue 13's "cached metadata ≤ 3× the
moov"). The packager needs those values only for the samples it is writing (one segment), or for the whole track
once per packaging (the segmenter, whose result the edge caches). These functions make exactly what was asked:
the same dtypes and values as the columns' slices `column[first:stop]`, in a new array the caller owns.

Cost: O(log R) searches on the run ends plus O(stop - first) to fill the window (R: the runs of the box read). A
window inside one run (the usual case for stts of constant frame rate video or audio) is an arange or a full.

Spec: stts §8.6.1.2 (durations, decode times as their running sum from 0), ctts §8.6.1.3 (composition offsets,
offset 0 without the box), stss §8.6.2 (sync samples; every sample is one without the box), ISO/IEC 14496-12.
"""

from __future__ import annotations

import numpy as np

from .sample_table import Runs, SampleTable

__all__ = ["composition_offsets", "decode_times", "durations", "median_duration_ticks", "sync_flags",
           "sync_samples"]


def _check(table: SampleTable, first: int, stop: int) -> int:
    """stop - first, after checking 0 <= first <= stop <= N. Raises IndexError."""
    if not 0 <= first <= stop <= table.sample_count:
        raise IndexError(f"sample window [{first}, {stop}) outside 0..{table.sample_count}")
    return stop - first


def _runs_of(runs: Runs, first: int, stop: int) -> tuple[int, int]:
    """The runs holding samples first and stop - 1 (first < stop)."""
    starts = runs.first_sample
    return (int(starts.searchsorted(first, side="right")) - 1,
            int(starts.searchsorted(stop - 1, side="right")) - 1)


def _counts(runs: Runs, ra: int, rb: int, first: int, last: int) -> np.ndarray:
    """int64 samples of each run ra..rb inside [first, last) (ra holds first, rb holds last - 1 or last): the
    run starts in between lie inside already, so only the two ends are cut (np.clip, for a fraction of its cost)."""
    bounds = runs.first_sample[ra : rb + 2].copy()
    bounds[0], bounds[-1] = first, last
    return np.diff(bounds)


def _expand(runs: Runs, first: int, stop: int, dtype: type) -> np.ndarray:
    """The run values of samples [first, stop) (first < stop), one per sample, as `dtype`."""
    ra, rb = _runs_of(runs, first, stop)
    if ra == rb:
        return np.full(stop - first, runs.values[ra], dtype=dtype)
    return np.repeat(runs.values[ra : rb + 1].astype(dtype), _counts(runs, ra, rb, first, stop))


def durations(table: SampleTable, first: int, stop: int) -> np.ndarray:
    """Durations (stts sample_delta, media ticks) of samples [first, stop), shape (stop - first,): int32, or int64
    when table.wide_durations; equal to table.duration_ticks[first:stop]. Raises IndexError outside 0..N."""
    dtype = np.int64 if table.wide_durations else np.int32
    if _check(table, first, stop) == 0:
        return np.zeros(0, dtype)
    return _expand(table.stts, first, stop, dtype)


def decode_times(table: SampleTable, first: int, stop: int) -> np.ndarray:
    """int64 decode times (media ticks, the track's first sample at 0) of samples [first, stop), shape
    (stop - first,); equal to table.dts_ticks[first:stop]. Raises IndexError outside 0..N."""
    count = _check(table, first, stop)
    if count == 0:
        return np.zeros(0, np.int64)
    runs = table.stts
    ra, rb = _runs_of(runs, first, stop)
    delta = int(runs.values[ra])
    start = int(table.run_dts_ticks[ra]) + (first - int(runs.first_sample[ra])) * delta
    if ra == rb:  # one duration: an arithmetic progression
        out = np.arange(count, dtype=np.int64)
        out *= delta
        out += start
        return out
    out = np.empty(count, dtype=np.int64)
    out[0] = start
    counts = _counts(runs, ra, rb, first, stop - 1)  # the durations of samples first..stop-2
    np.cumsum(np.repeat(runs.values[ra : rb + 1].astype(np.int64), counts), out=out[1:])
    out[1:] += start
    return out


def composition_offsets(table: SampleTable, first: int, stop: int) -> np.ndarray:
    """int32 composition offsets (ctts sample_offset, media ticks, may be negative) of samples [first, stop), shape
    (stop - first,), zeros without ctts; equal to table.cts_offset_ticks[first:stop]. Raises IndexError outside
    0..N."""
    if _check(table, first, stop) == 0 or table.ctts is None:
        return np.zeros(stop - first, np.int32)
    return _expand(table.ctts, first, stop, np.int32)


def sync_flags(table: SampleTable, first: int, stop: int) -> np.ndarray:
    """bool sync sample flags of samples [first, stop), shape (stop - first,), all True without stss; equal to
    table.is_sync[first:stop]. Raises IndexError outside 0..N."""
    count = _check(table, first, stop)
    stss = table.stss_indices
    if stss is None:
        return np.ones(count, dtype=bool)
    flags = np.zeros(count, dtype=bool)
    flags[stss[int(stss.searchsorted(first)) : int(stss.searchsorted(stop))] - first] = True
    return flags


def sync_samples(table: SampleTable, first: int, stop: int) -> np.ndarray:
    """int64 0-based indices of the sync samples in [first, stop), sorted, shape (K,): stss's, or every index
    without stss; equal to the part of table.sync_indices inside the window, without caching an index of every
    sample for a track without stss. Raises IndexError outside 0..N."""
    _check(table, first, stop)
    stss = table.stss_indices
    if stss is None:
        return np.arange(first, stop, dtype=np.int64)
    return stss[int(stss.searchsorted(first)) : int(stss.searchsorted(stop))]


def median_duration_ticks(table: SampleTable) -> float:
    """np.median(table.duration_ticks) from the stts runs: the middle duration (the mean of the two middle ones
    for an even N) in media ticks, as a float. O(R log R). Raises ValueError for a table without samples."""
    n = table.sample_count
    if n == 0:
        raise ValueError("no samples: no median duration")
    values = table.stts.values.astype(np.int64)
    order = np.argsort(values, kind="stable")
    ends = np.cumsum(np.diff(table.stts.first_sample)[order])  # samples up to each value, in value order
    lower = int(values[order[int(ends.searchsorted((n - 1) // 2, side="right"))]])
    upper = int(values[order[int(ends.searchsorted(n // 2, side="right"))]])
    return (lower + upper) / 2 if lower != upper else float(lower)
