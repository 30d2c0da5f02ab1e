"""SampleTable: one track's samples at run level, over the stbl tables (ISO/IEC 14496-12 §8.6–8.7).

Strategy: stsz and stco are numpy views straight over the moov's big-endian table bytes (np.frombuffer, no copy);
stts, ctts and stsc are kept as runs (cumulative run ends), and stss as sorted 0-based indices. Every check is done
on runs and vectors before anything is expanded, with no Python loop over samples or chunks, and no per-sample
array is made while parsing. Questions the clip path asks (the decode time of a sample, the sample at a decode
time, the composition offsets of a window, byte spans, where the presentation ends) are answered from the runs
in O(log R) or O(window). The per-sample columns the packager reads (dts_ticks, duration_ticks, cts_offset_ticks,
is_sync) are made on first use and cached; all arrays are read-only.

Kept for the moov writer: stts and ctts in their canonical run-length form as big-endian box entries (the box's
own bytes when they are canonical already), stsz as its big-endian table and stsc as runs of chunks, so a
rewritten moov is assembled from slices of them in O(log N) plus the bytes it copies (rewrite/moov_writer.py).

Made and checked by stbl.py (build_sample_table), which enforces the totals: stts counts sum to the stsz
sample_count, stsc over the stco chunks places at least that many samples, every sample lies inside the file.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .boxes.stsc import STSC_ENTRY


def _frozen(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class Runs:
    """A per-sample column in the run-length form its box stores (stts §8.6.1.2, ctts §8.6.1.3), canonical: no
    zero counts, no two equal neighbours.

    Attributes:
        entries: structured big-endian array of shape (R,), the box's own entry layout (sample_count, value), so
            a slice of it is already box payload.
        first_sample: int64, shape (R + 1,): index of each run's first sample, then the sample count N.
    """

    entries: np.ndarray
    first_sample: np.ndarray

    @classmethod
    def from_entries(cls, counts: np.ndarray, values: np.ndarray, entry: np.dtype,
                     source: np.ndarray | None = None, ends: np.ndarray | None = None) -> Runs:
        """Canonical runs of a box's (sample_count, value) entries (int64 arrays, shape (R,)): zero counts dropped,
        equal neighbours merged. O(R). `source`: the box's own entries (dtype `entry`) that `counts` and `values`
        were read from; when they are canonical already they are kept as they are (a view, no copy). `ends`:
        np.cumsum(counts) when the caller has it."""
        if (source is not None and source.dtype == entry and len(source) == len(counts)
                and (len(counts) == 0 or int(counts.min()) > 0) and not np.any(values[1:] == values[:-1])):
            first_sample = np.zeros(len(counts) + 1, dtype=np.int64)
            if ends is not None:
                first_sample[1:] = ends
            else:
                np.cumsum(counts, out=first_sample[1:])
            return cls(_frozen(source), _frozen(first_sample))
        keep = counts > 0
        counts, values = counts[keep], values[keep]
        starts = np.concatenate(([0], np.flatnonzero(values[1:] != values[:-1]) + 1)).astype(np.int64) \
            if len(values) else np.zeros(0, np.int64)
        first_sample = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=first_sample[1:])
        first_sample = first_sample[np.append(starts, len(counts))]
        entries = np.empty(len(starts), dtype=entry)
        entries[entry.names[0]] = np.diff(first_sample)
        entries[entry.names[1]] = values[starts]
        return cls(_frozen(entries), _frozen(first_sample))

    @classmethod
    def from_box(cls, entries: np.ndarray, n: int) -> tuple[Runs, int]:
        """Canonical runs of a box's entries (structured big-endian view, shape (R,)) over N = `n` samples: cut at
        N samples, or padded with one run of value 0 up to N. Returns (runs, the samples the box's counts cover).
        When the entries are canonical and cover N already they are kept as they are (a view, no copy), after one
        pass for the cumulative counts and two for the checks."""
        count_field, value_field = entries.dtype.names
        first_sample = np.zeros(len(entries) + 1, dtype=np.int64)
        np.cumsum(entries[count_field], dtype=np.int64, out=first_sample[1:])
        covered = int(first_sample[-1])
        values = entries[value_field]
        if covered == n and (len(entries) == 0 or (int(entries[count_field].min()) > 0
                                                   and not bool((values[1:] == values[:-1]).any()))):
            return cls(_frozen(entries), _frozen(first_sample)), covered
        counts, values = np.diff(first_sample), values.astype(np.int64)
        if covered > n:  # cut the surplus from the end of the run list
            keep = first_sample[:-1] < n
            counts, values = counts[keep], values[keep]
            if len(counts):  # none is kept for a track without samples
                counts[-1] -= int(first_sample[len(counts)]) - n
        elif covered < n:
            counts, values = np.append(counts, n - covered), np.append(values, 0)
        return cls.from_entries(counts, values, entries.dtype), covered

    def window(self, first: int, stop: int) -> tuple[int, list]:
        """The entries of samples [first, stop) (0 <= first < stop <= N): (entry_count, payload pieces), the first
        and last runs cut to the window; the middle entries are zero-copy uint8 views of `entries`."""
        ra = int(np.searchsorted(self.first_sample, first, side="right")) - 1
        rb = int(np.searchsorted(self.first_sample, stop - 1, side="right")) - 1
        count_field = self.entries.dtype.names[0]
        if ra == rb:
            head = self.entries[ra : ra + 1].copy()
            head[count_field] = stop - first
            return 1, [head.tobytes()]
        head = self.entries[ra : ra + 1].copy()
        head[count_field] = int(self.first_sample[ra + 1]) - first
        tail = self.entries[rb : rb + 1].copy()
        tail[count_field] = stop - int(self.first_sample[rb])
        middle = memoryview(self.entries[ra + 1 : rb].view(np.uint8))
        return rb - ra + 1, [head.tobytes(), middle, tail.tobytes()]

    @property
    def values(self) -> np.ndarray:
        """The run values (big-endian view of the entries' second field), shape (R,)."""
        return self.entries[self.entries.dtype.names[1]]

    def run_of(self, samples: np.ndarray | int) -> np.ndarray | int:
        """The run holding each sample (0 <= sample < N)."""
        if isinstance(samples, (int, np.integer)):
            return int(self.first_sample.searchsorted(samples, side="right")) - 1
        return self.first_sample.searchsorted(samples, side="right") - 1

    def expand(self, first: int, stop: int, dtype=np.int64) -> np.ndarray:
        """The per-sample values of samples [first, stop) (0 <= first <= stop <= N), shape (stop - first,), in
        O(stop - first + log R)."""
        if stop <= first:
            return np.zeros(0, dtype)
        ra, rb = self.run_of(first), self.run_of(stop - 1)
        counts = np.diff(np.clip(self.first_sample[ra : rb + 2], first, stop))
        return np.repeat(self.values[ra : rb + 1].astype(dtype), counts)

    @property
    def nbytes(self) -> int:
        return self.entries.nbytes + self.first_sample.nbytes


@dataclass(frozen=True, eq=False)
class ChunkMap:
    """Where samples sit: stco/co64 (§8.7.5) and stsc (§8.7.4) over the C chunks that hold samples, at run level:
    runs of consecutive chunks with the same sample count and stsd entry (stsc's canonical entries).

    Attributes:
        offset_bytes: file offset of each chunk, shape (C,): a big-endian uint32 view of stco's table, or for co64
            uint32 in files under 4 GiB, else int64.
        run_first_chunk: int64 0-based chunk where each run begins, then C, shape (R + 1,), starting with 0.
        run_first_sample: int64 first sample of each run, then N, shape (R + 1,).
        run_samples_per_chunk: uint32 samples in each chunk of a run (>= 1), shape (R,).
        run_description_index: int64 1-based stsd entry describing the samples of each run, shape (R,) (a
            broadcast when there is one).
        ascending: chunks are laid out in order and do not overlap, so samples [a, b) span the bytes from the
            start of a to the end of b - 1.
    """

    offset_bytes: np.ndarray
    run_first_chunk: np.ndarray
    run_first_sample: np.ndarray
    run_samples_per_chunk: np.ndarray
    run_description_index: np.ndarray
    ascending: bool

    @property
    def chunk_count(self) -> int:
        return len(self.offset_bytes)

    @property
    def run_starts(self) -> np.ndarray:
        """int64 chunks where a run begins (stsc's canonical first_chunk values, 0-based), shape (R,)."""
        return self.run_first_chunk[:-1]

    def chunk_of(self, samples: np.ndarray | int) -> np.ndarray | int:
        """The chunk holding each sample (0 <= sample < N), from the runs in O(log R) each."""
        if isinstance(samples, (int, np.integer)):
            run = int(self.run_first_sample.searchsorted(samples, side="right")) - 1
            return int(self.run_first_chunk[run]) + (int(samples) - int(self.run_first_sample[run])) \
                // int(self.run_samples_per_chunk[run])
        samples = np.asarray(samples, np.int64)
        run = self.run_first_sample.searchsorted(samples, side="right") - 1
        return self.run_first_chunk[run] + (samples - self.run_first_sample[run]) // self.run_samples_per_chunk[run]

    def chunk_first_sample(self, chunks: np.ndarray | int) -> np.ndarray | int:
        """Index of each chunk's first sample (0 <= chunk <= C; chunk C gives N), in O(log R) each."""
        last = len(self.run_samples_per_chunk) - 1
        if isinstance(chunks, (int, np.integer)):
            if last < 0:
                return 0
            run = min(int(self.run_first_chunk.searchsorted(chunks, side="right")) - 1, last)
            return int(self.run_first_sample[run]) + (int(chunks) - int(self.run_first_chunk[run])) \
                * int(self.run_samples_per_chunk[run])
        chunks = np.asarray(chunks, np.int64)
        if last < 0:
            return np.zeros(len(chunks), np.int64)
        run = np.minimum(self.run_first_chunk.searchsorted(chunks, side="right") - 1, last)
        return self.run_first_sample[run] + (chunks - self.run_first_chunk[run]) * self.run_samples_per_chunk[run]

    @functools.cached_property
    def first_sample(self) -> np.ndarray:
        """uint32 index of each chunk's first sample, then N, shape (C + 1,): made on first use (diagnostics and
        tests; the clip path asks chunk_first_sample)."""
        return _frozen(self.chunk_first_sample(np.arange(self.chunk_count + 1)).astype(np.uint32))

    def sample_description_index(self, chunk_from: int, chunk_to: int) -> np.ndarray:
        """int64 1-based stsd entry of chunks [chunk_from, chunk_to], shape (chunk_to - chunk_from + 1,)."""
        chunks = np.arange(chunk_from, chunk_to + 1)
        return self.run_description_index[self.run_first_chunk[:-1].searchsorted(chunks, side="right") - 1]

    def stsc_window(self, first: int, stop: int) -> tuple[int, int, int, Callable[[], np.ndarray]]:
        """stsc (§8.7.4) of samples [first, stop) (0 <= first < stop <= N): (first chunk, last chunk, entry count,
        a function making the entries), in O(log R); the entries are made in O(entries) when called.

        Entries (structured STSC_ENTRY, first_chunk renumbered from 1) start at the first kept chunk, at every run
        start inside the window, and at the chunks a cut changes: the one after a first chunk cut mid-chunk and
        a last chunk cut mid-chunk. Neighbouring entries may carry equal values (the box allows it)."""
        ca, cb = self.chunk_of(first), self.chunk_of(stop - 1)
        runs = self.run_starts
        lo = int(runs.searchsorted(ca, side="right"))
        hi = int(runs.searchsorted(cb, side="right"))
        after_first = self.chunk_first_sample(ca + 1)
        first_count = min(after_first, stop) - first
        last_start = self.chunk_first_sample(cb)
        last_count = stop - last_start
        extra = set()
        if ca + 1 <= cb and first_count != after_first - self.chunk_first_sample(ca):
            extra.add(ca + 1)
        if cb > ca and last_count != self.chunk_first_sample(cb + 1) - last_start:
            extra.add(cb)
        extra = {c for c in extra if not self._is_run_start(c)}  # run starts are entries already

        def entries() -> np.ndarray:
            chunks = np.empty(1 + (hi - lo) + len(extra), dtype=np.int64)
            chunks[0] = ca
            chunks[1 : 1 + hi - lo] = runs[lo:hi]
            if extra:  # at most two chunks, not run starts: put them in place
                chunks[1 + hi - lo :] = sorted(extra)
                chunks.sort()
            counts = self.chunk_first_sample(chunks + 1) - self.chunk_first_sample(chunks)
            counts[0] = first_count
            if cb > ca and chunks[-1] == cb:
                counts[-1] = last_count
            out = np.empty(len(chunks), dtype=STSC_ENTRY)
            out["samples_per_chunk"] = counts
            out["sample_description_index"] = self.run_description_index[runs.searchsorted(chunks, side="right") - 1]
            out["first_chunk"] = chunks - (ca - 1)
            return out

        return ca, cb, 1 + (hi - lo) + len(extra), entries

    def _is_run_start(self, chunk: int) -> bool:
        at = int(self.run_starts.searchsorted(chunk))
        return at < len(self.run_starts) and int(self.run_starts[at]) == chunk

    @property
    def nbytes(self) -> int:
        arrays = [self.offset_bytes, self.run_first_chunk, self.run_first_sample, self.run_samples_per_chunk,
                  self.run_description_index] + ([self.__dict__["first_sample"]] if "first_sample" in self.__dict__
                                                 else [])
        return sum(_owned_nbytes(a) for a in arrays)


def _owned_nbytes(array: np.ndarray) -> int:
    """Memory an array holds: 0 for a broadcast constant (stride 0)."""
    return 0 if array.ndim and array.strides[0] == 0 else array.nbytes


def _is_view(array: np.ndarray) -> bool:
    """Whether the array's bytes belong to another object (here: the moov buffer)."""
    return array.base is not None and _owned_nbytes(array) > 0


_COLUMNS = ("dts_ticks", "duration_ticks", "cts_offset_ticks", "is_sync", "_sync_all")


@dataclass(frozen=True, eq=False)
class SampleTable:
    """One track's samples in decode order, at run level (stts/ctts runs, stsz/stco views, stss indices), plus
    per-sample columns of shape (N,) made on first use and then cached. Arrays are read-only; column dtypes are
    chosen for memory (the cache holds thousands of these): arithmetic with them promotes to int64.

    Attributes:
        timescale: mdhd.timescale, ticks per second.
        size_bytes: big-endian uint32 sample sizes: a view of stsz's table in the moov (§8.7.3.2), or a broadcast
            constant when every sample has one size.
        stss_indices: int64 0-based indices of the sync samples, sorted and unique, shape (K,); None without stss.
        chunks: the chunk offsets and sample-to-chunk map (ChunkMap); sample offsets are computed from it
            (sample_offset, sample_offsets) rather than kept per sample.
        stts: Runs of the sample durations. ctts: Runs of the composition offsets, None without ctts.
        run_dts_ticks: int64 decode time of each stts run's first sample, then the media duration, shape (R + 1,).
        wide_durations: a stts delta exceeds 2**31 - 1 (duration_ticks is int64, else int32).
        uniform_size_bytes: the size every sample has, or 0 when sizes differ.
        cts_min_ticks, cts_max_ticks: extremes of the composition offsets (0 without samples).
        composition_end_ticks: latest dts + cts + duration: where the media's presentation ends before any edit.
        has_ctts: whether the source carried ctts.

    Columns (cached properties, made in O(N) on first use): dts_ticks (int64, first sample at 0), duration_ticks
    (int32, or int64 when wide_durations), cts_offset_ticks (int32; a broadcast 0 without ctts), is_sync (bool; a
    broadcast True without stss). The clip path (rewrite/) never makes them.
    """

    timescale: int
    size_bytes: np.ndarray
    stss_indices: np.ndarray | None
    chunks: ChunkMap
    stts: Runs
    ctts: Runs | None
    run_dts_ticks: np.ndarray
    wide_durations: bool
    uniform_size_bytes: int
    cts_min_ticks: int
    cts_max_ticks: int
    composition_end_ticks: int
    has_ctts: bool

    # --- per-sample columns, made on first use -------------------------------------------------------------
    @functools.cached_property
    def duration_ticks(self) -> np.ndarray:
        """Sample durations (stts deltas), shape (N,): int32, or int64 when wide_durations."""
        values = self.stts.values.astype(np.int64 if self.wide_durations else np.int32)
        return _frozen(np.repeat(values, np.diff(self.stts.first_sample)))

    @functools.cached_property
    def dts_ticks(self) -> np.ndarray:
        """int64 decode times, shape (N,), the first sample at 0."""
        dts = np.zeros(self.sample_count, dtype=np.int64)
        if len(dts) > 1:
            np.cumsum(self.duration_ticks[:-1], dtype=np.int64, out=dts[1:])
        return _frozen(dts)

    @functools.cached_property
    def cts_offset_ticks(self) -> np.ndarray:
        """int32 composition offsets (ctts, may be negative), shape (N,); a broadcast 0 without ctts."""
        if self.ctts is None:
            return np.broadcast_to(np.int32(0), (self.sample_count,))
        return _frozen(np.repeat(self.ctts.values.astype(np.int32), np.diff(self.ctts.first_sample)))

    @functools.cached_property
    def is_sync(self) -> np.ndarray:
        """bool sync flags, shape (N,); a broadcast True without stss."""
        if self.stss_indices is None:
            return np.broadcast_to(True, (self.sample_count,))
        is_sync = np.zeros(self.sample_count, dtype=bool)
        is_sync[self.stss_indices] = True
        return _frozen(is_sync)

    @functools.cached_property
    def _sync_all(self) -> np.ndarray:
        return _frozen(np.arange(self.sample_count, dtype=np.int64))

    @property
    def has_stss(self) -> bool:
        return self.stss_indices is not None

    @property
    def sync_indices(self) -> np.ndarray:
        """int64 0-based indices of the sync samples, shape (K,): stss, or every sample without it (made on first
        use: the clip path asks sync_at_or_after and the stss window instead)."""
        return self.stss_indices if self.stss_indices is not None else self._sync_all

    @property
    def sample_count(self) -> int:
        return len(self.size_bytes)

    # --- run-level answers (the clip path) ----------------------------------------------------------------
    @functools.cached_property
    def _stts_deltas(self) -> np.ndarray:
        return _frozen(self.stts.values.astype(np.int64))

    def _stts_run(self, samples):
        """stts run of each sample index in 0..N (N is placed in the last run)."""
        last = len(self.stts.entries) - 1
        if isinstance(samples, (int, np.integer)):
            return min(int(self.stts.first_sample.searchsorted(samples, side="right")) - 1, last)
        if last == 0:
            return np.zeros(len(samples), dtype=np.int64)
        return np.minimum(self.stts.first_sample.searchsorted(samples, side="right") - 1, last)

    def dts_at(self, samples):
        """Decode time (media ticks) of each sample index in 0..N, an int for an int, else int64 of the same shape;
        index N gives media_duration_ticks. O(log R) each, from the stts runs."""
        if self.sample_count == 0:
            return 0 if isinstance(samples, (int, np.integer)) else np.zeros(len(samples), np.int64)
        run = self._stts_run(samples)
        first_sample, deltas, run_dts = self.stts.first_sample, self._stts_deltas, self.run_dts_ticks
        if isinstance(run, int):
            return int(run_dts[run]) + (int(samples) - int(first_sample[run])) * int(deltas[run])
        return run_dts[run] + (np.asarray(samples, np.int64) - first_sample[run]) * deltas[run]

    def duration_at(self, samples):
        """Duration (media ticks) of each sample index in 0..N-1: an int for an int, else int64."""
        run = self._stts_run(samples)
        return int(self._stts_deltas[run]) if isinstance(run, int) else self._stts_deltas[run]

    def cts_at(self, samples):
        """Composition offset (media ticks) of each sample index in 0..N-1: an int for an int, else int64."""
        if self.ctts is None:
            return 0 if isinstance(samples, (int, np.integer)) else np.zeros(len(samples), np.int64)
        run = self.ctts.run_of(samples)
        values = self.ctts.values
        return int(values[run]) if isinstance(run, int) else values[run].astype(np.int64)

    def pts_at(self, samples):
        """Composition time dts + cts (media ticks) of each sample index in 0..N-1: an int for an int, else
        int64."""
        return self.dts_at(samples) + self.cts_at(samples)

    def dts_window(self, first: int, stop: int) -> np.ndarray:
        """int64 decode times of samples [first, stop), shape (stop - first,), in O(stop - first + log R)."""
        if stop <= first:
            return np.zeros(0, np.int64)
        out = np.empty(stop - first, dtype=np.int64)
        out[0] = self.dts_at(first)
        if stop - first > 1:
            np.cumsum(self.stts.expand(first, stop - 1), out=out[1:])
            out[1:] += out[0]
        return out

    def cts_window(self, first: int, stop: int) -> np.ndarray:
        """int64 composition offsets of samples [first, stop), shape (stop - first,), from the ctts runs."""
        if self.ctts is None:
            return np.zeros(max(stop - first, 0), np.int64)
        return self.ctts.expand(first, stop)

    def pts_window(self, first: int, stop: int) -> np.ndarray:
        """int64 composition times of samples [first, stop), shape (stop - first,)."""
        return self.dts_window(first, stop) + self.cts_window(first, stop)

    def dts_searchsorted(self, ticks: int, side: str = "left") -> int:
        """np.searchsorted(dts_ticks, ticks, side) without the column: the number of samples decoded before
        `ticks` ("left") or at or before it ("right"), from the stts runs in O(log R)."""
        if self.sample_count == 0:
            return 0
        starts = self.run_dts_ticks[:-1]  # non-decreasing: deltas are unsigned
        run = int(starts.searchsorted(ticks, side=side)) - 1
        if run < 0:
            return 0
        first = int(self.stts.first_sample[run])
        count = int(self.stts.first_sample[run + 1]) - first
        delta = int(self._stts_deltas[run])
        past = ticks - int(starts[run])  # > 0 for "left", >= 0 for "right"
        if delta == 0:
            return first + count
        inside = -(-past // delta) if side == "left" else past // delta + 1
        return first + min(inside, count)

    def sync_window(self, first: int, stop: int) -> np.ndarray:
        """int64 indices of the sync samples in [first, stop), sorted; from stss directly (every sample without
        it)."""
        stss = self.stss_indices
        if stss is None:
            return np.arange(max(first, 0), max(stop, first, 0), dtype=np.int64)
        return stss[int(stss.searchsorted(first)) : int(stss.searchsorted(stop))]

    def first_sync_index(self) -> int | None:
        """The first sync sample, or None when stss lists none."""
        if self.stss_indices is None:
            return 0 if self.sample_count else None
        return int(self.stss_indices[0]) if len(self.stss_indices) else None

    def sample_offsets(self, first: int, stop: int) -> np.ndarray:
        """int64 file offsets of samples [first, stop) (0 <= first <= stop <= N), shape (stop - first,), from the
        chunk offsets and the sizes of the samples before them in their chunk: O(stop - first + samples of the
        first chunk)."""
        if stop <= first:
            return np.zeros(0, np.int64)
        if stop == first + 1:
            return np.array([self.sample_offset(first)], dtype=np.int64)
        chunks = self.chunks
        lo = chunks.chunk_first_sample(chunks.chunk_of(first))
        before = np.zeros(stop - lo + 1, dtype=np.int64)
        np.cumsum(self.size_bytes[lo:stop].astype(np.int64), out=before[1:])
        samples = np.arange(first, stop, dtype=np.int64)
        chunk = chunks.chunk_of(samples)
        return (chunks.offset_bytes[chunk].astype(np.int64) + before[samples - lo]
                - before[chunks.chunk_first_sample(chunk) - lo])

    def sample_offset(self, sample: int) -> int:
        """File offset of one sample (0 <= sample < N): its chunk's offset plus the sizes before it in the chunk."""
        chunks = self.chunks
        chunk = chunks.chunk_of(sample)
        lo = chunks.chunk_first_sample(chunk)
        if sample <= lo:
            before = 0
        elif self.uniform_size_bytes:
            before = (sample - lo) * self.uniform_size_bytes
        else:
            before = int(self.size_bytes[lo:sample].sum(dtype=np.int64))
        return int(chunks.offset_bytes[chunk]) + before

    def byte_span(self, first: int, stop: int) -> tuple[int, int]:
        """(lowest, highest exclusive) file byte that samples [first, stop) occupy (first < stop); O(1) searches
        when the chunks are in file order, else O(stop - first)."""
        if self.chunks.ascending:
            return self.sample_offset(first), self.sample_offset(stop - 1) + int(self.size_bytes[stop - 1])
        offsets = self.sample_offsets(first, stop)
        return int(offsets.min()), int((offsets + self.size_bytes[first:stop]).max())

    @property
    def media_duration_ticks(self) -> int:
        """Sum of all sample durations (end of the last sample's decode time)."""
        return int(self.run_dts_ticks[-1]) if self.sample_count else 0

    def decode_span_ticks(self, first: int, stop: int) -> int:
        """Sum of the durations of samples [first, stop) (0 <= first < stop <= N), in O(log R)."""
        return self.dts_at(stop) - self.dts_at(first)

    @property
    def view_nbytes(self) -> int:
        """Bytes of this table's arrays that are views of the moov buffer (stsz, stco, canonical stts/ctts)."""
        arrays = (self.size_bytes, self.chunks.offset_bytes, self.stts.entries) + \
            ((self.ctts.entries,) if self.ctts is not None else ())
        return sum(a.nbytes for a in arrays if _is_view(a))

    @property
    def nbytes(self) -> int:
        """Memory the table holds, views of the moov buffer included, and the columns made so far."""
        made = [self.__dict__[name] for name in _COLUMNS if name in self.__dict__]
        arrays = [self.size_bytes, self.run_dts_ticks, *made] + ([self.stss_indices] if self.has_stss else [])
        runs = (self.chunks, self.stts) + ((self.ctts,) if self.ctts is not None else ())
        return sum(_owned_nbytes(a) for a in arrays) + sum(r.nbytes for r in runs)
