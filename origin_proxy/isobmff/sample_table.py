"""SampleTable: one track's samples as parallel numpy columns, built from stbl (ISO/IEC 14496-12 §8.6–8.7).

Strategy: every table is viewed (not copied) as a big-endian structured array, totals are checked
against each other before anything is expanded, and expansion is vectorized (np.repeat/np.cumsum);
there is no Python loop over samples or chunks. Cached columns are read-only.

Kept for the moov writer: stts and ctts again in their canonical run-length form as big-endian box entries, stsz
as its big-endian table and stsc as runs of chunks, so a rewritten moov is assembled from slices of them in
O(log N) plus the bytes it copies (rewrite/moov_writer.py), instead of being encoded from per-sample columns.

Totals enforced: stts counts sum to the stsz sample_count; stsc, walked over the stco chunks,
places at least that many samples; every sample lies inside the file. ctts that covers fewer
samples than stsz is padded with offset 0 (players do the same); more is cut.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import MalformedBox, UnsupportedMedia
from .boxes.ctts import CTTS_ENTRY
from .boxes.stsc import STSC_ENTRY
from .boxes.stts import STTS_ENTRY


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
    def from_entries(cls, counts: np.ndarray, values: np.ndarray, entry: np.dtype) -> Runs:
        """Canonical runs of a box's (sample_count, value) entries (int64 arrays, shape (R,)): zero counts dropped,
        equal neighbours merged. O(R)."""
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
    def nbytes(self) -> int:
        return self.entries.nbytes + self.first_sample.nbytes


@dataclass(frozen=True, eq=False)
class ChunkMap:
    """Where samples sit: stco/co64 (§8.7.5) and stsc (§8.7.4) over the C chunks that hold samples.

    Attributes:
        offset_bytes: file offset of each chunk, shape (C,): uint32 for files under 4 GiB, else int64.
        first_sample: uint32 index of each chunk's first sample, shape (C + 1,), ending with N.
        description_first_chunk, description_index: int64, shape (D,): from chunk description_first_chunk[d] on,
            samples are described by stsd entry description_index[d] (1-based); D is 1 in nearly every file.
        ascending: chunks are laid out in order and do not overlap, so samples [a, b) span the bytes from the
            start of a to the end of b - 1.
        run_starts: uint32 chunks where a run of chunks with equal sample count and description begins (stsc's
            canonical first_chunk values, 0-based), shape (R,), starting with 0.
    """

    offset_bytes: np.ndarray
    first_sample: np.ndarray
    description_first_chunk: np.ndarray
    description_index: np.ndarray
    ascending: bool
    run_starts: np.ndarray

    @property
    def chunk_count(self) -> int:
        return len(self.offset_bytes)

    def chunk_of(self, samples: np.ndarray | int) -> np.ndarray | int:
        """The chunk holding each sample (0 <= sample < N)."""
        # The needle in the array's own dtype: a mixed-type search would convert the whole array first.
        if isinstance(samples, (int, np.integer)):
            return int(self.first_sample.searchsorted(np.uint32(samples), side="right")) - 1
        needle = np.asarray(samples).astype(self.first_sample.dtype)
        return self.first_sample.searchsorted(needle, side="right").astype(np.int64) - 1

    def sample_description_index(self, chunk_from: int, chunk_to: int) -> np.ndarray:
        """int64 1-based stsd entry of chunks [chunk_from, chunk_to], shape (chunk_to - chunk_from + 1,)."""
        if len(self.description_index) == 1:
            return np.full(chunk_to - chunk_from + 1, int(self.description_index[0]), np.int64)
        chunks = np.arange(chunk_from, chunk_to + 1)
        return self.description_index[np.searchsorted(self.description_first_chunk, chunks, side="right") - 1]

    def stsc_window(self, first: int, stop: int) -> tuple[int, int, int, Callable[[], np.ndarray]]:
        """stsc (§8.7.4) of samples [first, stop) (0 <= first < stop <= N): (first chunk, last chunk, entry count,
        a function making the entries), in O(log C); the entries are made in O(entries) when called.

        Entries (structured STSC_ENTRY, first_chunk renumbered from 1) start at the first kept chunk, at every run
        start inside the window, and at the chunks a cut changes: the one after a first chunk cut mid-chunk and
        a last chunk cut mid-chunk. Neighbouring entries may carry equal values (the box allows it)."""
        ca, cb = self.chunk_of(first), self.chunk_of(stop - 1)
        runs = self.run_starts
        lo = int(np.searchsorted(runs, np.uint32(ca), side="right"))
        hi = int(np.searchsorted(runs, np.uint32(cb), side="right"))
        first_count = min(int(self.first_sample[ca + 1]), stop) - first
        last_count = stop - int(self.first_sample[cb])
        extra = set()
        if ca + 1 <= cb and first_count != int(self.first_sample[ca + 1]) - int(self.first_sample[ca]):
            extra.add(ca + 1)
        if cb > ca and last_count != int(self.first_sample[cb + 1]) - int(self.first_sample[cb]):
            extra.add(cb)
        extra = {c for c in extra if not self._is_run_start(c)}  # run starts are entries already

        def entries() -> np.ndarray:
            chunks = np.empty(1 + (hi - lo) + len(extra), dtype=np.int64)
            chunks[0] = ca
            chunks[1 : 1 + hi - lo] = runs[lo:hi]
            if extra:  # at most two chunks, not run starts: put them in place
                chunks[1 + hi - lo :] = sorted(extra)
                chunks.sort()
            first_sample = self.first_sample
            counts = first_sample[chunks + 1] - first_sample[chunks]  # uint32: first_sample ascends
            counts[0] = first_count
            if cb > ca and chunks[-1] == cb:
                counts[-1] = last_count
            out = np.empty(len(chunks), dtype=STSC_ENTRY)
            chunks -= ca - 1
            out["first_chunk"] = chunks
            out["samples_per_chunk"] = counts
            if len(self.description_index) == 1:
                out["sample_description_index"] = self.description_index[0]
            else:
                out["sample_description_index"] = self.description_index[
                    np.searchsorted(self.description_first_chunk, chunks + (ca - 1), side="right") - 1]
            return out

        return ca, cb, 1 + (hi - lo) + len(extra), entries

    def _is_run_start(self, chunk: int) -> bool:
        at = int(np.searchsorted(self.run_starts, np.uint32(chunk)))
        return at < len(self.run_starts) and int(self.run_starts[at]) == chunk

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.offset_bytes, self.first_sample, self.description_first_chunk,
                                      self.description_index, self.run_starts))


def _owned_nbytes(array: np.ndarray) -> int:
    """Memory an array holds: 0 for a broadcast constant (stride 0)."""
    return 0 if array.ndim and array.strides[0] == 0 else array.nbytes


@dataclass(frozen=True, eq=False)
class SampleTable:
    """One track's samples as parallel columns, each of shape (N,), in decode order, plus the run-length forms the
    moov writer slices (rewrite/moov_writer.py). Columns are read-only; dtypes are chosen for memory (the cache
    holds thousands of these): arithmetic with them promotes to int64.

    Attributes:
        timescale: mdhd.timescale, ticks per second.
        dts_ticks: int64 decode times, first sample at 0.
        duration_ticks: int32 sample durations (stts deltas); int64 when one exceeds 2**31 - 1.
        cts_offset_ticks: int32 composition offsets (ctts; may be negative); a broadcast 0 without ctts.
        size_bytes: big-endian uint32 sample sizes, byte-for-byte stsz's table (§8.7.3.2).
        is_sync: bool; a broadcast True when stss is absent.
        stss_indices: int64 0-based indices of the sync samples, shape (K,); None without stss.
        chunks: the chunk offsets and sample-to-chunk map (ChunkMap); sample offsets are computed from it
            (sample_offsets) rather than kept per sample.
        stts: Runs of duration_ticks. ctts: Runs of cts_offset_ticks, None without ctts.
        uniform_size_bytes: the size every sample has, or 0 when sizes differ.
        cts_min_ticks, cts_max_ticks: extremes of cts_offset_ticks (0 without samples).
        composition_end_ticks: latest dts + cts + duration: where the media's presentation ends before any edit.
        has_ctts, has_stss: whether the source carried those boxes.
    """

    timescale: int
    dts_ticks: np.ndarray
    duration_ticks: np.ndarray
    cts_offset_ticks: np.ndarray
    size_bytes: np.ndarray
    is_sync: np.ndarray
    stss_indices: np.ndarray | None
    chunks: ChunkMap
    stts: Runs
    ctts: Runs | None
    uniform_size_bytes: int
    cts_min_ticks: int
    cts_max_ticks: int
    composition_end_ticks: int
    has_ctts: bool

    @property
    def has_stss(self) -> bool:
        return self.stss_indices is not None

    @property
    def sync_indices(self) -> np.ndarray:
        """int64 0-based indices of the sync samples, shape (K,): stss, or every sample without it."""
        return self.stss_indices if self.stss_indices is not None else np.arange(len(self.dts_ticks), dtype=np.int64)

    def sample_offsets(self, first: int, stop: int) -> np.ndarray:
        """int64 file offsets of samples [first, stop) (0 <= first <= stop <= N), shape (stop - first,), from the
        chunk offsets and the sizes of the samples before them in their chunk: O(stop - first + samples of the
        first chunk)."""
        if stop <= first:
            return np.zeros(0, np.int64)
        if stop == first + 1:
            return np.array([self.sample_offset(first)], dtype=np.int64)
        chunks = self.chunks
        lo = int(chunks.first_sample[chunks.chunk_of(first)])
        before = np.zeros(stop - lo + 1, dtype=np.int64)
        np.cumsum(self.size_bytes[lo:stop].astype(np.int64), out=before[1:])
        samples = np.arange(first, stop, dtype=np.int64)
        chunk = chunks.chunk_of(samples)
        return (chunks.offset_bytes[chunk].astype(np.int64) + before[samples - lo]
                - before[chunks.first_sample[chunk].astype(np.int64) - lo])

    def sample_offset(self, sample: int) -> int:
        """File offset of one sample (0 <= sample < N): its chunk's offset plus the sizes before it in the chunk."""
        chunks = self.chunks
        chunk = chunks.chunk_of(sample)
        lo = int(chunks.first_sample[chunk])
        before = int(self.size_bytes[lo:sample].sum(dtype=np.int64)) if sample > lo else 0
        return int(chunks.offset_bytes[chunk]) + before

    def byte_span(self, first: int, stop: int) -> tuple[int, int]:
        """(lowest, highest exclusive) file byte that samples [first, stop) occupy (first < stop); O(1) searches
        when the chunks are in file order, else O(stop - first)."""
        if self.chunks.ascending:
            return self.sample_offset(first), self.sample_offset(stop - 1) + int(self.size_bytes[stop - 1])
        offsets = self.sample_offsets(first, stop)
        return int(offsets.min()), int((offsets + self.size_bytes[first:stop]).max())

    @property
    def sample_count(self) -> int:
        return len(self.size_bytes)

    @property
    def media_duration_ticks(self) -> int:
        """Sum of all sample durations (end of the last sample's decode time)."""
        n = len(self.dts_ticks)
        return int(self.dts_ticks[-1] + self.duration_ticks[-1]) if n else 0

    def decode_span_ticks(self, first: int, stop: int) -> int:
        """Sum of the durations of samples [first, stop) (0 <= first < stop <= N), in O(1)."""
        return int(self.dts_ticks[stop - 1]) + int(self.duration_ticks[stop - 1]) - int(self.dts_ticks[first])

    @property
    def nbytes(self) -> int:
        columns = (self.dts_ticks, self.duration_ticks, self.cts_offset_ticks, self.size_bytes, self.is_sync,
                   self.stss_indices if self.stss_indices is not None else np.zeros(0))
        runs = (self.chunks, self.stts) + ((self.ctts,) if self.ctts is not None else ())
        return sum(_owned_nbytes(a) for a in columns) + sum(r.nbytes for r in runs)


def build_sample_table(
    *,
    timescale: int,
    stts: np.ndarray,
    ctts: np.ndarray | None,
    stss: np.ndarray | None,
    stsc: np.ndarray,
    stsz: tuple[int, int, np.ndarray | None],
    chunk_offsets: np.ndarray,
    file_size: int,
    max_samples: int,
    box_path: str,
) -> SampleTable:
    """Expand the parsed stbl tables into per-sample columns.

    Args:
        stts, ctts, stsc: structured entry views from boxes/; stss: 1-based sample numbers.
        stsz: (sample_size, sample_count, entry_size or None) from parse_stsz.
        chunk_offsets: stco/co64 offsets, shape (C,).
        file_size: bytes; every sample must lie inside the file.
        max_samples: configured bound on N.
    Raises:
        MalformedBox: tables that contradict each other or point outside the file.
        UnsupportedMedia: N over max_samples.
    """
    sample_size, sample_count, entry_size = stsz
    if sample_count > max_samples:
        raise UnsupportedMedia(f"track has {sample_count} samples, over the limit of {max_samples}", box_path=box_path)
    n = sample_count

    # stts (§8.6.1.2): counts must cover exactly the stsz samples.
    counts = stts["sample_count"].astype(np.int64)
    if int(counts.sum()) != n:
        raise MalformedBox(box_path + "/stts", f"covers {int(counts.sum())} samples, stsz has {n}")
    deltas = stts["sample_delta"].astype(np.int64)
    stts_runs = Runs.from_entries(counts, deltas, STTS_ENTRY)
    narrow = not len(deltas) or int(deltas.max()) < 2**31
    duration = np.repeat(deltas.astype(np.int32) if narrow else deltas, counts)
    dts = np.zeros(n, dtype=np.int64)
    if n > 1:
        np.cumsum(duration[:-1], dtype=np.int64, out=dts[1:])

    # ctts (§8.6.1.3): cut at N samples, or padded with offset 0 up to N.
    ctts_runs = None
    if ctts is not None:
        ccounts = ctts["sample_count"].astype(np.int64)
        offsets = ctts["sample_offset"].astype(np.int64)
        ends = np.cumsum(ccounts)
        if len(ends) and int(ends[-1]) > n:  # cut the surplus from the end of the run list
            keep = ends - ccounts < n
            ccounts, offsets = ccounts[keep], offsets[keep]
            if len(ccounts):  # none is kept for a track without samples
                ccounts[-1] -= int(ccounts.sum()) - n
        covered = int(ccounts.sum())
        if covered < n:
            ccounts, offsets = np.append(ccounts, n - covered), np.append(offsets, 0)
        ctts_runs = Runs.from_entries(ccounts, offsets, CTTS_ENTRY)
        cts = np.repeat(offsets.astype(np.int32), ccounts)
        cts_min, cts_max = (int(offsets[ccounts > 0].min()), int(offsets[ccounts > 0].max())) if n else (0, 0)
    else:
        cts = np.broadcast_to(np.int32(0), (n,))
        cts_min = cts_max = 0

    # stsz (§8.7.3.2): a broadcast constant, or an owned copy in stsz's own byte order.
    if entry_size is None:
        size = np.broadcast_to(np.array(sample_size, ">u4"), (n,))
    else:
        size = np.array(entry_size, dtype=">u4")

    # stss (§8.6.2): 1-based, each in 1..N.
    if stss is not None:
        numbers = stss.astype(np.int64)
        if len(numbers) and (int(numbers.min()) < 1 or int(numbers.max()) > n):
            raise MalformedBox(box_path + "/stss", f"sample number outside 1..{n}")
        is_sync = np.zeros(n, dtype=bool)
        is_sync[numbers - 1] = True
    else:
        is_sync = np.broadcast_to(True, (n,))

    chunks = _chunk_map(stsc, chunk_offsets, size, n, file_size, box_path)
    if ctts is None:  # presentation ends with the last decode
        composition_end = int(dts[-1]) + int(duration[-1]) if n else 0
    else:
        composition_end = int((dts + cts + duration).max()) if n else 0
    return SampleTable(
        timescale=timescale,
        dts_ticks=_frozen(dts),
        duration_ticks=_frozen(duration),
        cts_offset_ticks=_frozen(cts) if ctts is not None else cts,
        size_bytes=_frozen(size) if entry_size is not None else size,
        is_sync=_frozen(is_sync) if stss is not None else is_sync,
        stss_indices=_frozen(np.flatnonzero(is_sync).astype(np.int64)) if stss is not None else None,
        chunks=chunks,
        stts=stts_runs,
        ctts=ctts_runs,
        uniform_size_bytes=sample_size if entry_size is None else 0,
        cts_min_ticks=cts_min,
        cts_max_ticks=cts_max,
        composition_end_ticks=composition_end,
        has_ctts=ctts is not None,
    )


def _chunk_map(stsc: np.ndarray, chunk_offsets: np.ndarray, size: np.ndarray, n: int, file_size: int,
               box_path: str) -> ChunkMap:
    """stsc + stco/co64 (§8.7.4, §8.7.5) as a ChunkMap, checked: first_chunk increasing from 1, the chunks hold at
    least N samples (phantom samples past N are cut), every chunk lies inside the file. O(C + R), no per-sample
    work. Raises MalformedBox."""
    chunk_count = len(chunk_offsets)
    first_chunk = stsc["first_chunk"].astype(np.int64)
    if n and (len(first_chunk) == 0 or chunk_count == 0):
        raise MalformedBox(box_path + "/stsc", f"{n} samples but {len(first_chunk)} stsc entries and {chunk_count} chunks")
    if len(first_chunk):
        if first_chunk[0] != 1 or np.any(np.diff(first_chunk) <= 0) or first_chunk[-1] > max(chunk_count, 1):
            raise MalformedBox(box_path + "/stsc", f"first_chunk values are not increasing from 1 within {chunk_count} chunks")
    runs = np.diff(np.append(first_chunk, chunk_count + 1))
    per_entry = stsc["samples_per_chunk"].astype(np.int64)
    if len(per_entry) and int(per_entry.max()) > n:
        # One chunk cannot hold more samples than the track has. (A last chunk that runs past the
        # final sample is tolerated below; this is the hostile form of it, which would turn every
        # later chunk into a phantom.)
        raise MalformedBox(box_path + "/stsc", f"samples_per_chunk {int(per_entry.max())} exceeds the track's {n} samples")
    # An upper bound in floats first: per_entry * runs could overflow int64 with hostile values.
    if float((per_entry.astype(np.float64) * runs).sum()) > 2**62:
        raise MalformedBox(box_path + "/stsc", "samples_per_chunk values overflow")
    chunk_samples = np.repeat(per_entry, runs)
    chunk_first = np.zeros(chunk_count, dtype=np.int64)
    if chunk_count > 1:
        np.cumsum(chunk_samples[:-1], out=chunk_first[1:])
    placed = int(chunk_first[-1] + chunk_samples[-1]) if chunk_count else 0
    if placed < n:
        raise MalformedBox(box_path + "/stsc", f"chunks hold {placed} samples, stsz has {n}")
    if placed > n:  # trailing chunks hold phantom samples: cut them (the last one may become partial)
        kept = int(np.searchsorted(chunk_first, n, side="left"))
        chunk_first, chunk_samples = chunk_first[:kept], chunk_samples[:kept].copy()
        chunk_samples[-1] = n - chunk_first[-1]
    chunk_offset = chunk_offsets[: len(chunk_first)].astype(np.int64)
    # Which stsd entry describes each chunk: runs of chunks, from the stsc entries where the index changes.
    entry_sdi = stsc["sample_description_index"].astype(np.int64)
    changes = np.concatenate(([0], np.flatnonzero(entry_sdi[1:] != entry_sdi[:-1]) + 1)).astype(np.int64) \
        if len(entry_sdi) else np.zeros(0, np.int64)
    described_from, described = first_chunk[changes] - 1, entry_sdi[changes]
    # Chunks that hold no sample are dropped: they have no place in a rewritten stco.
    empty = chunk_samples == 0
    if empty.any():
        chunk_sdi = described[np.searchsorted(described_from, np.arange(len(chunk_first)), side="right") - 1]
        used = ~empty
        chunk_first, chunk_sdi, chunk_offset = chunk_first[used], chunk_sdi[used], chunk_offset[used]
        changes = np.concatenate(([0], np.flatnonzero(chunk_sdi[1:] != chunk_sdi[:-1]) + 1)).astype(np.int64) \
            if len(chunk_sdi) else np.zeros(0, np.int64)
        described_from, described = changes, chunk_sdi[changes]
    else:
        keep = described_from < len(chunk_first)  # entries for chunks cut as phantoms
        described_from, described = described_from[keep], described[keep]
    # Every chunk (so every sample) inside the file: its samples are contiguous from its offset.
    total = np.zeros(n + 1, dtype=np.int64) if n else np.zeros(1, np.int64)
    if n:
        np.cumsum(size.astype(np.int64), out=total[1:])  # native first: a byte-swapping cumsum is 3x slower
    chunk_end = chunk_offset + total[np.append(chunk_first[1:], n)] - total[chunk_first]
    if len(chunk_offset) and (int(chunk_offset.min()) < 0 or int(chunk_end.max()) > file_size):
        raise MalformedBox(box_path + "/stco", f"sample data lies outside the {file_size}-byte file")
    counts = np.diff(np.append(chunk_first, n))
    count_changes = np.flatnonzero(counts[1:] != counts[:-1]) + 1
    is_start = np.zeros(len(chunk_first), dtype=bool)  # both lists are sorted chunk indices: mark, don't sort
    is_start[count_changes] = True
    is_start[described_from] = True
    is_start[:1] = True
    run_starts = np.flatnonzero(is_start)
    return ChunkMap(
        run_starts=_frozen(run_starts.astype(np.uint32)),
        # uint32 while the file is under 4 GiB (as stco itself), else int64: arithmetic with it must go through
        # int64 (sample_offsets does), never a bare Python int.
        offset_bytes=_frozen(chunk_offset.astype(np.uint32) if file_size < 2**32 else chunk_offset),
        first_sample=_frozen(np.append(chunk_first, n).astype(np.uint32)),
        description_first_chunk=_frozen(described_from),
        description_index=_frozen(described),
        ascending=bool(np.all(chunk_offset[1:] >= chunk_end[:-1])),
    )
