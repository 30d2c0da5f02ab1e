"""SampleTable: one track's samples at run level, over the stbl tables (ISO/IEC 14496-12 §8.6–8.7).

Strategy: stsz and stco are numpy views straight over the moov's big-endian table bytes (np.frombuffer, no copy);
stts, ctts and stsc are kept as runs (cumulative run ends), and stss as sorted 0-based indices. Every check is done
on runs and vectors before anything is expanded, with no Python loop over samples or chunks, and no per-sample
array is made while parsing. Questions the clip path asks (the decode time of a sample, the sample at a decode
time, the composition offsets of a window, byte spans, where the presentation ends) are answered from the runs
in O(log R) or O(window), in Python ints: run tables of fewer than _LIST_BELOW runs (stts of constant-rate media,
the stsc of most tracks) are also kept as array('q') copies made on first use and counted in nbytes, so a scalar
question is a bisect and no numpy call; longer ones (ctts, stss, an interleaved track's stsc) are searched with
numpy. The per-sample columns the packager reads (dts_ticks, duration_ticks, cts_offset_ticks,
is_sync) are made on first use and cached; all arrays are read-only.

Kept for the moov writer: stts and ctts in their canonical run-length form as big-endian box entries (the box's
own bytes when they are canonical already), stsz as its big-endian table and stsc as runs of chunks, so a
rewritten moov is assembled from slices of them in O(log N) plus the bytes it copies (rewrite/moov_writer.py).

Made and checked by stbl.py (build_sample_table), which enforces the totals: stts counts sum to the stsz
sample_count, stsc over the stco chunks places at least that many samples, every sample lies inside the file.
"""

from __future__ import annotations

import functools
import struct
import sys
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .boxes.stsc import STSC_ENTRY


_LIST_BELOW = 64  # run tables this short are also kept as int64 arrays of the array module: bisect, no numpy scalars
_SUM_BELOW = 64  # sizes of fewer samples are summed in Python (numpy's sum costs microseconds to start)
_U32 = struct.Struct(">I")


def _frozen(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def _small_list(values: np.ndarray) -> array | None:
    """The values as an array('q') (8 bytes each, its items read as Python ints, bisect works on it) when there are
    fewer than _LIST_BELOW, else None (the numpy search is used)."""
    return array("q", values.astype(np.int64).tobytes()) if len(values) < _LIST_BELOW else None


def _list_nbytes(values: array | None) -> int:
    """Memory an array('q') made by _small_list holds, its header included."""
    return 0 if values is None else sys.getsizeof(values)


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

    @functools.cached_property
    def _bounds(self) -> array | None:
        """first_sample as an array('q') when R + 1 < _LIST_BELOW, else None."""
        return _small_list(self.first_sample)

    @functools.cached_property
    def _value_list(self) -> array | None:
        """The run values as an array('q') when R < _LIST_BELOW, else None."""
        return _small_list(self.values)

    @functools.cached_property
    def _entry_bytes(self) -> memoryview | None:
        """`entries` as a flat uint8 memoryview (no copy) when an entry is two 4-byte fields (stts, ctts), else
        None."""
        entry = self.entries.dtype
        if entry.itemsize != 8 or entry[0].itemsize != 4 or not self.entries.flags.c_contiguous:
            return None
        return memoryview(self.entries.view(np.uint8))

    def value_of_run(self, run: int) -> int:
        """The value of run `run` (0 <= run < R) as an int."""
        values = self._value_list
        return values[run] if values is not None else int(self.values[run])

    def window(self, first: int, stop: int) -> tuple[int, list]:
        """The entries of samples [first, stop) (0 <= first < stop <= N): (entry_count, payload pieces), the first
        and last runs cut to the window; the middle entries are zero-copy uint8 views of `entries`. O(log R)."""
        ra = self.run_of(first)
        last = len(self.entries) - 1
        if stop - 1 < self.first_sample_of(ra + 1):
            rb = ra
        else:  # a window to the end (no `end`) ends in the last run: no search
            rb = last if stop == self.first_sample_of(last + 1) else self.run_of(stop - 1)
        raw = self._entry_bytes
        if raw is not None:  # the count packed, the value's 4 bytes copied: the entry without a numpy record
            if ra == rb:
                return 1, [_U32.pack(stop - first) + raw[8 * ra + 4 : 8 * ra + 8]]
            head = _U32.pack(self.first_sample_of(ra + 1) - first) + raw[8 * ra + 4 : 8 * ra + 8]
            tail = _U32.pack(stop - self.first_sample_of(rb)) + raw[8 * rb + 4 : 8 * rb + 8]
            return rb - ra + 1, [head, raw[8 * (ra + 1) : 8 * rb], tail]
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

    @functools.cached_property
    def values(self) -> np.ndarray:
        """The run values (big-endian view of the entries' second field), shape (R,); made once (a field of a
        structured array costs microseconds to take), a view: no memory of its own."""
        return self.entries[self.entries.dtype.names[1]]

    def run_of(self, samples: np.ndarray | int) -> np.ndarray | int:
        """The run holding each sample (0 <= sample < N): O(log R) each (an int: a bisect of _bounds when R is
        small)."""
        if isinstance(samples, int):
            bounds = self._bounds
            if bounds is not None:
                return bisect_right(bounds, samples) - 1
            return int(self.first_sample.searchsorted(samples, side="right")) - 1
        if isinstance(samples, np.integer):
            return self.run_of(int(samples))
        return self.first_sample.searchsorted(samples, side="right") - 1

    def first_sample_of(self, run: int) -> int:
        """first_sample[run] (0 <= run <= R) as an int."""
        bounds = self._bounds
        return bounds[run] if bounds is not None else int(self.first_sample[run])

    def expand(self, first: int, stop: int, dtype=np.int64) -> np.ndarray:
        """The per-sample values of samples [first, stop) (0 <= first <= stop <= N), shape (stop - first,), in
        O(stop - first + log R)."""
        if stop <= first:
            return np.zeros(0, dtype)
        ra, rb = self.run_of(first), self.run_of(stop - 1)
        if ra == rb:
            return np.full(stop - first, self.value_of_run(ra), dtype=dtype)
        if rb - ra < 8:  # a few runs: their lengths in Python, one array made
            values = []
            for run in range(ra, rb + 1):
                values += [self.value_of_run(run)] * (min(self.first_sample_of(run + 1), stop)
                                                      - max(self.first_sample_of(run), first))
            return np.array(values, dtype=dtype)
        bounds = self.first_sample[ra : rb + 2].copy()  # the run starts between lie inside: cut the two ends only
        bounds[0], bounds[-1] = first, stop
        return np.repeat(self.values[ra : rb + 1].astype(dtype), np.diff(bounds))

    @property
    def nbytes(self) -> int:
        """The arrays and the array('q') copies made so far (_bounds, _value_list)."""
        lists = sum(_list_nbytes(self.__dict__.get(name)) for name in ("_bounds", "_value_list"))
        return self.entries.nbytes + self.first_sample.nbytes + lists


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

    @functools.cached_property
    def _run_lists(self) -> tuple[array, array, array] | None:
        """(run_first_sample, run_first_chunk, run_samples_per_chunk) as array('q')s (see _small_list) when
        R + 1 < _LIST_BELOW, else None."""
        if len(self.run_first_sample) >= _LIST_BELOW:
            return None
        return (_small_list(self.run_first_sample), _small_list(self.run_first_chunk),
                _small_list(self.run_samples_per_chunk))

    def locate(self, sample: int) -> tuple[int, int, int, int]:
        """(run, chunk, the chunk's first sample, its samples: the run's samples_per_chunk) of one sample
        (0 <= sample < N), from one O(log R) search (a bisect of array('q') copies when R is small). The next
        chunk's first sample is the chunk's first plus its samples (runs are whole chunks)."""
        lists = self._run_lists
        if lists is not None:
            run_sample, run_chunk, per_chunk = lists
            run = bisect_right(run_sample, sample) - 1
            first_sample, first_chunk, per = run_sample[run], run_chunk[run], per_chunk[run]
        else:
            run = int(self.run_first_sample.searchsorted(sample, side="right")) - 1
            first_sample = int(self.run_first_sample[run])
            first_chunk, per = int(self.run_first_chunk[run]), int(self.run_samples_per_chunk[run])
        chunk = first_chunk + (sample - first_sample) // per
        return run, chunk, first_sample + (chunk - first_chunk) * per, per

    def chunk_of(self, samples: np.ndarray | int) -> np.ndarray | int:
        """The chunk holding each sample (0 <= sample < N), from the runs in O(log R) each."""
        if isinstance(samples, (int, np.integer)):
            return self.locate(int(samples))[1]
        samples = np.asarray(samples, np.int64)
        run = self.run_first_sample.searchsorted(samples, side="right") - 1
        return self.run_first_chunk[run] + (samples - self.run_first_sample[run]) // self.run_samples_per_chunk[run]

    def chunk_first_sample(self, chunks: np.ndarray | int) -> np.ndarray | int:
        """Index of each chunk's first sample (0 <= chunk <= C; chunk C gives N), in O(log R) each."""
        last = len(self.run_samples_per_chunk) - 1
        if isinstance(chunks, (int, np.integer)):
            if last < 0:
                return 0
            lists = self._run_lists
            if lists is not None:
                run_sample, run_chunk, per_chunk = lists
                run = min(bisect_right(run_chunk, chunks) - 1, last)
                return run_sample[run] + (int(chunks) - run_chunk[run]) * per_chunk[run]
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

    def stsc_window(self, first: int, stop: int, located: tuple | None = None
                    ) -> tuple[int, int, int, Callable[[], np.ndarray]]:
        """stsc (§8.7.4) of samples [first, stop) (0 <= first < stop <= N): (first chunk, last chunk, entry count,
        a function making the entries), in O(log R); the entries are made in O(entries) when called. `located`:
        (locate(first), locate(stop - 1)) when the caller has them.

        Entries (structured STSC_ENTRY, first_chunk renumbered from 1) start at the first kept chunk, at every run
        start inside the window, and at the chunks a cut changes: the one after a first chunk cut mid-chunk and
        a last chunk cut mid-chunk. Neighbouring entries may carry equal values (the box allows it)."""
        at_first, at_last = located if located is not None else (self.locate(first), self.locate(stop - 1))
        run_a, ca, first_start, first_per = at_first
        run_b, cb, last_start, last_per = at_last
        runs = self.run_starts
        lo, hi = run_a + 1, run_b + 1  # runs.searchsorted(ca / cb, "right"): chunks hold >= 1 sample, runs >= 1 chunk
        after_first = first_start + first_per
        first_count = min(after_first, stop) - first
        last_count = stop - last_start
        extra = set()
        # a chunk is a run start when it is the first of its run: ca + 1 when the next run starts there, cb when
        # its run starts there
        if ca + 1 <= cb and first_count != first_per and not (
                run_a + 1 < len(runs) and self._run_first_chunk_of(run_a + 1) == ca + 1):
            extra.add(ca + 1)
        if cb > ca and last_count != last_per and self._run_first_chunk_of(run_b) != cb:
            extra.add(cb)

        def entries() -> np.ndarray:
            chunks = np.empty(1 + (hi - lo) + len(extra), dtype=np.int64)
            chunks[0] = ca
            chunks[1 : 1 + hi - lo] = runs[lo:hi]
            if extra:  # at most two chunks, not run starts: put them in place
                chunks[1 + hi - lo :] = sorted(extra)
                chunks.sort()
            run = runs.searchsorted(chunks, side="right") - 1
            counts = self.run_samples_per_chunk[run]  # a chunk holds its run's samples_per_chunk (a new array)
            counts[0] = first_count
            if cb > ca and chunks[-1] == cb:
                counts[-1] = last_count
            out = np.empty(len(chunks), dtype=STSC_ENTRY)
            out["samples_per_chunk"] = counts
            out["sample_description_index"] = self.run_description_index[run]
            out["first_chunk"] = chunks - (ca - 1)
            return out

        return ca, cb, 1 + (hi - lo) + len(extra), entries

    def _run_first_chunk_of(self, run: int) -> int:
        lists = self._run_lists
        return lists[1][run] if lists is not None else int(self.run_first_chunk[run])

    def chunk_offset(self, chunk: int) -> int:
        """File offset (bytes) of one chunk (0 <= chunk < C) as an int."""
        return int(self.offset_bytes[chunk])

    @property
    def nbytes(self) -> int:
        """The arrays (the cached first_sample too once made) and the array('q') copies of the runs made so far."""
        arrays = [self.offset_bytes, self.run_first_chunk, self.run_first_sample, self.run_samples_per_chunk,
                  self.run_description_index] + ([self.__dict__["first_sample"]] if "first_sample" in self.__dict__
                                                 else [])
        lists = self.__dict__.get("_run_lists") or ()
        return sum(_owned_nbytes(a) for a in arrays) + sum(map(_list_nbytes, lists))


def _owned_nbytes(array: np.ndarray) -> int:
    """Memory an array holds: 0 for a broadcast constant (stride 0)."""
    return 0 if array.ndim and array.strides[0] == 0 else array.nbytes


def _is_view(array: np.ndarray) -> bool:
    """Whether the array's bytes belong to another object (here: the moov buffer)."""
    return array.base is not None and _owned_nbytes(array) > 0


_COLUMNS = ("dts_ticks", "duration_ticks", "cts_offset_ticks", "is_sync", "_sync_all", "_stts_deltas")


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

    @functools.cached_property
    def _run_dts_list(self) -> array | None:
        """run_dts_ticks as an array('q') when the stts runs are few (see Runs._bounds), else None."""
        return _small_list(self.run_dts_ticks)

    def _stts_run(self, samples):
        """stts run of each sample index in 0..N (N is placed in the last run)."""
        last = len(self.stts.entries) - 1
        if isinstance(samples, int):
            return min(self.stts.run_of(samples), last)
        if isinstance(samples, np.integer):
            return min(self.stts.run_of(int(samples)), last)
        if last == 0:
            return np.zeros(len(samples), dtype=np.int64)
        return np.minimum(self.stts.first_sample.searchsorted(samples, side="right") - 1, last)

    def dts_at(self, samples):
        """Decode time (media ticks) of each sample index in 0..N, an int for an int, else int64 of the same shape;
        index N gives media_duration_ticks. O(log R) each, from the stts runs."""
        if self.sample_count == 0:
            return 0 if isinstance(samples, (int, np.integer)) else np.zeros(len(samples), np.int64)
        run = self._stts_run(samples)
        if isinstance(run, int):
            stts = self.stts
            run_dts = self._run_dts_list
            start = run_dts[run] if run_dts is not None else int(self.run_dts_ticks[run])
            return start + (int(samples) - stts.first_sample_of(run)) * stts.value_of_run(run)
        first_sample, deltas, run_dts = self.stts.first_sample, self._stts_deltas, self.run_dts_ticks
        return run_dts[run] + (np.asarray(samples, np.int64) - first_sample[run]) * deltas[run]

    def duration_at(self, samples):
        """Duration (media ticks) of each sample index in 0..N-1: an int for an int, else int64."""
        run = self._stts_run(samples)
        return self.stts.value_of_run(run) if isinstance(run, int) else self._stts_deltas[run]

    def cts_at(self, samples):
        """Composition offset (media ticks) of each sample index in 0..N-1: an int for an int, else int64."""
        if self.ctts is None:
            return 0 if isinstance(samples, (int, np.integer)) else np.zeros(len(samples), np.int64)
        run = self.ctts.run_of(samples)
        return self.ctts.value_of_run(run) if isinstance(run, int) else self.ctts.values[run].astype(np.int64)

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

    def pts_list(self, first: int, stop: int) -> list[int]:
        """pts_window(first, stop) as a list of ints, for windows of a few samples (0 <= first <= stop <= N): two
        O(log R) searches, then O(stop - first) steps along the runs in Python, no array."""
        if stop <= first:
            return []
        stts, ctts = self.stts, self.ctts
        dts = self.dts_at(first)
        run = self._stts_run(first)
        run_end, delta = stts.first_sample_of(run + 1), stts.value_of_run(run)
        if ctts is not None:
            crun = ctts.run_of(first)
            crun_end, offset = ctts.first_sample_of(crun + 1), ctts.value_of_run(crun)
        else:
            crun_end, offset = stop, 0
        out = []
        for sample in range(first, stop):
            if sample >= run_end:
                run += 1
                run_end, delta = stts.first_sample_of(run + 1), stts.value_of_run(run)
            if sample >= crun_end:
                crun += 1
                crun_end, offset = ctts.first_sample_of(crun + 1), ctts.value_of_run(crun)
            out.append(dts + offset)
            dts += delta
        return out

    def dts_searchsorted(self, ticks: int, side: str = "left") -> int:
        """np.searchsorted(dts_ticks, ticks, side) without the column: the number of samples decoded before
        `ticks` ("left") or at or before it ("right"), from the stts runs in O(log R)."""
        if self.sample_count == 0:
            return 0
        starts = self._run_dts_list  # non-decreasing: deltas are unsigned
        if starts is not None:
            last = len(starts) - 1  # the run starts are starts[:-1]
            run = (bisect_left(starts, ticks, 0, last) if side == "left" else bisect_right(starts, ticks, 0, last)) - 1
        else:
            run = int(self.run_dts_ticks[:-1].searchsorted(ticks, side=side)) - 1
        if run < 0:
            return 0
        stts = self.stts
        first = stts.first_sample_of(run)
        count = stts.first_sample_of(run + 1) - first
        delta = stts.value_of_run(run)
        past = ticks - (starts[run] if starts is not None else int(self.run_dts_ticks[run]))  # > 0 "left", >= 0 "right"
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

    def sample_offset(self, sample: int, located: tuple | None = None) -> int:
        """File offset of one sample (0 <= sample < N): its chunk's offset plus the sizes before it in the chunk;
        one O(log R) search (none when `located`, chunks.locate(sample), is given) plus O(samples before it in the
        chunk)."""
        _, chunk, lo, _ = located if located is not None else self.chunks.locate(int(sample))
        if sample <= lo:
            before = 0
        elif self.uniform_size_bytes:
            before = (sample - lo) * self.uniform_size_bytes
        elif sample - lo < _SUM_BELOW:
            before = sum(self.size_bytes[lo:sample].tolist())
        else:
            before = int(self.size_bytes[lo:sample].sum(dtype=np.int64))
        return int(self.chunks.offset_bytes[chunk]) + before

    def sample_end(self, sample: int, located: tuple | None = None) -> int:
        """File offset (bytes) just past one sample (0 <= sample < N); `located` as for sample_offset."""
        return self.sample_offset(sample, located) + int(self.size_bytes[sample])

    def byte_span(self, first: int, stop: int, first_offset: int | None = None) -> tuple[int, int]:
        """(lowest, highest exclusive) file byte that samples [first, stop) occupy (first < stop); O(1) searches
        when the chunks are in file order, else O(stop - first). `first_offset`: sample_offset(first) when the
        caller has it."""
        if self.chunks.ascending:
            low = self.sample_offset(first) if first_offset is None else first_offset
            return low, self.sample_end(stop - 1)
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
        """Memory the table holds, views of the moov buffer included, and the columns and the array('q') copies of
        the runs made so far."""
        made = [self.__dict__[name] for name in _COLUMNS if name in self.__dict__]
        arrays = [self.size_bytes, self.run_dts_ticks, *made] + ([self.stss_indices] if self.has_stss else [])
        runs = (self.chunks, self.stts) + ((self.ctts,) if self.ctts is not None else ())
        return (sum(_owned_nbytes(a) for a in arrays) + sum(r.nbytes for r in runs)
                + _list_nbytes(self.__dict__.get("_run_dts_list")))
