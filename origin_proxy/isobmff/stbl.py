"""The stbl box (ISO/IEC 14496-12 §8.5.1) read into a SampleTable: its tables (stts, ctts, stss, stsc, stsz,
stco/co64, already parsed into big-endian views by boxes/) checked against each other and the file, and kept at
run level (sample_table.py holds the type and the questions asked of it).

Totals enforced: stts counts sum to the stsz sample_count; stsc, walked over the stco chunks, places at least
that many samples; every sample lies inside the file, checked from each chunk's exact byte count. ctts that covers
fewer samples than stsz is padded with offset 0 (players do the same); more is cut. Every check is a vector pass
over runs, chunks or sizes: no Python loop over samples, and no per-sample array kept (the chunk check of a
track of short chunks sums them through a temporary of cumulative sizes).
"""

from __future__ import annotations

import numpy as np

from ..errors import MalformedBox, UnsupportedMedia
from .sample_table import ChunkMap, Runs, SampleTable, _frozen


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
    """Check the parsed stbl tables against each other and the file, and keep them at run level. O(R + C + K)
    vector work plus a pass over the sizes (their maximum), and for tracks whose chunks need exact sums their
    cumulative sizes (a temporary); no per-sample array is kept.

    Args:
        stts, ctts, stsc: structured entry views from boxes/; stss: 1-based sample numbers.
        stsz: (sample_size, sample_count, entry_size or None) from parse_stsz; the table view is kept as it is.
        chunk_offsets: stco/co64 offsets, shape (C,); a stco view is kept as it is.
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
    stts_runs, covered, _ = _runs_from_box(stts, n)
    if covered != n:
        raise MalformedBox(box_path + "/stts", f"covers {covered} samples, stsz has {n}")
    deltas = stts_runs.values
    wide = bool(len(deltas)) and int(deltas.max()) >= 2**31
    run_dts = np.zeros(len(deltas) + 1, dtype=np.int64)
    np.cumsum(np.multiply(np.diff(stts_runs.first_sample), deltas, dtype=np.int64), out=run_dts[1:])

    # ctts (§8.6.1.3): cut at N samples, or padded with offset 0 up to N.
    ctts_runs = None
    cts_min = cts_max = 0
    if ctts is not None:
        ctts_runs, _, extremes = _runs_from_box(ctts, n)
        if n:
            cts_min, cts_max = extremes

    # stsz (§8.7.3.2): a broadcast constant, or the table's own big-endian view.
    if entry_size is None:
        size = np.broadcast_to(np.array(sample_size, ">u4"), (n,))
    else:
        size = _frozen(entry_size[:n])

    # stss (§8.6.2): 1-based, each in 1..N; kept sorted and unique as 0-based indices.
    stss_indices = None
    if stss is not None:
        numbers = stss.astype(np.int64)
        if len(numbers) and (int(numbers.min()) < 1 or int(numbers.max()) > n):
            raise MalformedBox(box_path + "/stss", f"sample number outside 1..{n}")
        if len(numbers) > 1 and not bool(np.all(numbers[1:] > numbers[:-1])):
            numbers = np.unique(numbers)
        numbers -= 1
        stss_indices = _frozen(numbers)

    chunks = _chunk_map(stsc, chunk_offsets, size, n, file_size, box_path)
    table = SampleTable(
        timescale=timescale,
        size_bytes=size,
        stss_indices=stss_indices,
        chunks=chunks,
        stts=stts_runs,
        ctts=ctts_runs,
        run_dts_ticks=_frozen(run_dts),
        wide_durations=wide,
        uniform_size_bytes=sample_size if entry_size is None else 0,
        cts_min_ticks=cts_min,
        cts_max_ticks=cts_max,
        composition_end_ticks=0,
        has_ctts=ctts is not None,
    )
    object.__setattr__(table, "composition_end_ticks", _composition_end(table))
    return table


def _runs_from_box(entries: np.ndarray, n: int) -> tuple[Runs, int, tuple[int, int]]:
    """Runs.from_box(entries, n) and the (min, max) of the runs' values, in fewer passes for the common case: the
    box's (sample_count, value) entries (structured big-endian view of two 32-bit fields, shape (R,)) canonical
    and covering N. Then the table is read once into two native uint32 rows (counts, values), the cumulative
    counts and the checks run on those, and the entries are kept as they are (a view); else Runs.from_box does
    it. Returns (runs, the samples the box's counts cover, (min, max) of the values: (0, 0) without runs)."""
    count_field, value_field = entries.dtype.names
    if len(entries) == 0 or entries.dtype.itemsize != 8 or entries.strides[0] != 8:
        runs, covered = Runs.from_box(entries, n)
        kept = runs.values
        return runs, covered, (int(kept.min()), int(kept.max())) if len(kept) else (0, 0)
    rows = entries.view(">u4").reshape(len(entries), 2).T.astype(np.uint32, order="C")  # one pass: (counts, values)
    counts, values = rows[0], rows[1].view(entries.dtype[value_field].newbyteorder("="))
    first_sample = np.zeros(len(entries) + 1, dtype=np.int64)
    np.cumsum(counts, dtype=np.int64, out=first_sample[1:])
    covered = int(first_sample[-1])
    if covered == n and int(counts.min()) > 0 and not bool((values[1:] == values[:-1]).any()):
        return Runs(_frozen(entries), _frozen(first_sample)), covered, (int(values.min()), int(values.max()))
    runs, _ = Runs.from_box(entries, n)
    kept = runs.values
    return runs, covered, (int(kept.min()), int(kept.max())) if len(kept) else (0, 0)


def _composition_end(table: SampleTable) -> int:
    """max(dts + cts + duration) over the samples. The last sample's end is a lower bound of it, and a sample
    whose decode ends more than cts_max - cts(last) before the last one's cannot pass it: so the samples decoded
    in that final stretch (a few frames in real files) are enough, one by one. Else from the run boundaries:
    within a piece where the stts delta and the ctts offset are both constant dts + cts + duration grows with the
    sample, so only the last sample of each piece counts, and the pieces end where a stts or a ctts run ends.
    O(log R + tail), else O(R_stts + R_ctts) searches."""
    n = table.sample_count
    if n == 0:
        return 0
    if table.ctts is None:  # presentation ends with the last decode
        return table.media_duration_ticks
    last = table.media_duration_ticks + table.cts_at(n - 1)
    first = max(table.dts_searchsorted(last - table.cts_max_ticks, side="left") - 1, 0)
    if n - first <= _TAIL_SAMPLES:
        ends = table.dts_window(first, n) + table.stts.expand(first, n) + table.cts_window(first, n)
        return int(ends.max())
    ctts_next = table.ctts.first_sample[1:]  # the sample after each run's last: its dts is that last's dts + duration
    stts_last = table.stts.first_sample[1:] - 1
    if len(table.stts.entries) == 1:  # one duration: dts + duration of sample s - 1 is s x delta
        at_ctts = ctts_next * int(table._stts_deltas[0])
    else:
        at_ctts = table.dts_at(ctts_next - 1) + table.duration_at(ctts_next - 1)
    at_ctts += table.ctts.values
    at_stts = table.run_dts_ticks[1:] + table.cts_at(stts_last)
    return max(int(at_ctts.max()), int(at_stts.max()))


_TAIL_SAMPLES = 4096  # at most this many samples are looked at one by one for the composition end


def _chunk_map(stsc: np.ndarray, chunk_offsets: np.ndarray, size: np.ndarray, n: int, file_size: int,
               box_path: str) -> ChunkMap:
    """stsc + stco/co64 (§8.7.4, §8.7.5) as a ChunkMap, checked: first_chunk increasing from 1, the chunks hold at
    least N samples (phantom samples past N are cut), every chunk lies inside the file. O(R) on the stsc runs, then
    the exact bytes of every chunk (_chunk_bytes) against the offsets in a few vector passes. Raises MalformedBox."""
    chunk_count = len(chunk_offsets)
    if stsc.dtype.itemsize == 12 and stsc.strides[0] == 12:  # the box's view: its three fields in one pass
        first_chunk, per_entry, sdi = stsc.view(">u4").reshape(len(stsc), 3).T.astype(np.int64, order="C")
    else:
        first_chunk, per_entry, sdi = (stsc[field].astype(np.int64) for field in stsc.dtype.names)
    if n and (len(first_chunk) == 0 or chunk_count == 0):
        raise MalformedBox(box_path + "/stsc", f"{n} samples but {len(first_chunk)} stsc entries and {chunk_count} chunks")
    run_chunks = np.diff(first_chunk, append=chunk_count + 1)  # >= 1, except [0] for one entry over no chunk
    if len(first_chunk):  # increasing: every run but the last holds >= 1 chunk
        if first_chunk[0] != 1 or first_chunk[-1] > max(chunk_count, 1) \
                or (len(first_chunk) > 1 and int(run_chunks[:-1].min()) < 1):
            raise MalformedBox(box_path + "/stsc", f"first_chunk values are not increasing from 1 within {chunk_count} chunks")
    if len(per_entry) and int(per_entry.max()) > n:
        # One chunk cannot hold more samples than the track has. (A last chunk that runs past the
        # final sample is tolerated below; this is the hostile form of it, which would turn every
        # later chunk into a phantom.)
        raise MalformedBox(box_path + "/stsc", f"samples_per_chunk {int(per_entry.max())} exceeds the track's {n} samples")
    # Now per_entry <= n and the runs hold chunk_count chunks in all, so the samples they place are at most
    # n x chunk_count: int64 cannot overflow below 2**61. Above, an upper bound in floats first.
    if n * chunk_count > 2**61 and float((per_entry.astype(np.float64) * run_chunks).sum()) > 2**62:
        raise MalformedBox(box_path + "/stsc", "samples_per_chunk values overflow")
    run_first_sample = np.zeros(len(per_entry) + 1, dtype=np.int64)
    np.cumsum(per_entry * run_chunks, out=run_first_sample[1:])
    placed = int(run_first_sample[-1])
    if placed < n:
        raise MalformedBox(box_path + "/stsc", f"chunks hold {placed} samples, stsz has {n}")
    offsets_view = chunk_offsets
    cut = False
    # Chunks that hold no sample are dropped: they have no place in a rewritten stco.
    if len(per_entry) and (int(per_entry.min()) == 0 or int(run_chunks[-1]) == 0):
        holding = (per_entry > 0) & (run_chunks > 0)
        if bool((per_entry[run_chunks > 0] == 0).any()):  # chunks to leave out of the offsets
            offsets_view = chunk_offsets[np.repeat(per_entry > 0, run_chunks)[:chunk_count]]
        per_entry, run_chunks, sdi = per_entry[holding], run_chunks[holding], sdi[holding]
        run_first_sample = np.zeros(len(per_entry) + 1, dtype=np.int64)
        np.cumsum(per_entry * run_chunks, out=run_first_sample[1:])
        cut = True
    if placed > n:  # trailing chunks hold phantom samples: cut them (the last one may become partial)
        last = int(run_first_sample[:-1].searchsorted(n, side="left")) - 1  # the run holding sample n - 1
        inside = n - int(run_first_sample[last])
        whole, partial = divmod(inside, int(per_entry[last]))
        per_entry, run_chunks, sdi = per_entry[: last + 1].copy(), run_chunks[: last + 1].copy(), sdi[: last + 1]
        run_chunks[last] = whole
        if partial:
            per_entry, run_chunks, sdi = np.append(per_entry, partial), np.append(run_chunks, 1), np.append(sdi, sdi[last])
        if whole == 0:  # the run holds only the partial chunk
            per_entry, run_chunks, sdi = np.delete(per_entry, last), np.delete(run_chunks, last), np.delete(sdi, last)
        run_first_sample = np.zeros(len(per_entry) + 1, dtype=np.int64)
        np.cumsum(per_entry * run_chunks, out=run_first_sample[1:])
        cut = True
    if cut:
        run_first_chunk = np.zeros(len(per_entry) + 1, dtype=np.int64)
        np.cumsum(run_chunks, out=run_first_chunk[1:])
    else:  # every run as stsc gives it: its first chunk, 0-based
        run_first_chunk = np.append(first_chunk, chunk_count + 1) - 1
    kept_chunks = int(run_first_chunk[-1])
    # Canonical runs: neighbours with the same sample count and description are one run.
    one_description = len(sdi) == 0 or int(sdi.min()) == int(sdi.max())
    if len(per_entry) > 1:
        same = per_entry[1:] == per_entry[:-1]
        if not one_description:
            same &= sdi[1:] == sdi[:-1]
        if bool(same.any()):
            keep = np.concatenate(([True], ~same, [True]))
            run_first_chunk, run_first_sample = run_first_chunk[keep], run_first_sample[keep]
            per_entry, sdi = per_entry[keep[:-1]], sdi[keep[:-1]]
    chunk_offset = offsets_view[:kept_chunks]  # still a view of the box unless empty chunks were left out
    ascending, offset_bytes = _check_chunks(chunk_offset, size, run_first_chunk, run_first_sample, per_entry,
                                            file_size, box_path)
    return ChunkMap(
        offset_bytes=_frozen(offset_bytes),
        run_first_chunk=_frozen(run_first_chunk),
        run_first_sample=_frozen(run_first_sample),
        # uint32 (stsc's own field width) and, for the one stsd entry nearly every file has, a broadcast: in the
        # cache the run arrays of an audio track with alternating chunk sizes are a fair part of the moov.
        run_samples_per_chunk=_frozen(per_entry.astype(np.uint32)),
        run_description_index=np.broadcast_to(np.array(sdi[:1], np.int64), sdi.shape) if one_description
        else _frozen(sdi.astype(np.int64)),
        ascending=ascending,
    )


def _check_chunks(chunk_offset: np.ndarray, size: np.ndarray, run_first_chunk: np.ndarray,
                  run_first_sample: np.ndarray, per: np.ndarray, file_size: int,
                  box_path: str) -> tuple[bool, np.ndarray]:
    """Check that every chunk (offset, shape (C,), and the bytes of its samples) lies inside the file, and
    whether the chunks are in file order without overlap (ChunkMap.ascending). Returns (ascending, the offsets to
    keep: stco's view, or for co64 uint32 under 4 GiB, else int64). Raises MalformedBox.

    Exact: chunks in order need bytes[i] <= room[i], the room being offset[i + 1] - offset[i] and, for the last
    chunk, the rest of the file (_chunks_fit); else every chunk's end is checked against the file. Sums and rooms
    are uint32 when they cannot overflow it, as are the offsets of a file under 4 GiB: half the memory traffic
    of int64. The sizes are read in their big-endian view (no native copy). O(C) passes, plus O(N) when most
    chunks need sums."""
    outside = MalformedBox(box_path + "/stco", f"sample data lies outside the {file_size}-byte file")
    stco = chunk_offset.dtype.itemsize == 4
    if stco:
        offsets = chunk_offset.astype(np.uint32)  # a native copy: every pass below reads it
    else:  # co64 past 2**63 turns negative here, and is refused
        offsets = chunk_offset.astype(np.int64)
        if len(offsets) and (int(offsets.min()) < 0 or int(offsets.max()) > file_size):
            raise outside
        if file_size < 2**32:  # as stco itself; else int64: arithmetic with it must go through int64
            offsets = offsets.astype(np.uint32)
    kept = chunk_offset if stco else offsets
    if len(offsets) == 0:
        return True, kept
    uniform = size.strides[0] == 0
    bound = int(size[0] if uniform else size.max()) * int(per.max())  # no chunk holds more bytes
    dtype = np.uint32 if offsets.dtype == np.uint32 and bound < 2**32 else np.int64
    last_offset = int(offsets[-1])
    if last_offset <= file_size and bool((offsets[1:] >= offsets[:-1]).all()):  # in order
        room = np.empty(len(offsets), offsets.dtype)
        np.subtract(offsets[1:], offsets[:-1], out=room[:-1])  # exact in the offsets' own type
        # The last chunk's room is the rest of the file (capped for uint32: a uint32 sum never exceeds the cap).
        room[-1] = min(file_size - last_offset, np.iinfo(room.dtype).max)
        if _chunks_fit(room, size, uniform, run_first_chunk, run_first_sample, per, bound, dtype):
            return True, kept
    nbytes = _chunk_bytes(size, uniform, run_first_chunk, run_first_sample, per, dtype)
    ends = offsets.astype(np.int64) + nbytes
    if int(ends.max()) > file_size:
        raise outside
    return bool((offsets[1:] >= ends[:-1]).all()), kept


def _chunks_fit(room: np.ndarray, size: np.ndarray, uniform: bool, run_first_chunk: np.ndarray,
                run_first_sample: np.ndarray, per: np.ndarray, bound: int, dtype) -> bool:
    """Whether every chunk's bytes fit its room (shape (C,), bytes). A chunk whose room is at least `bound` (the
    most bytes a chunk can hold) fits without a sum: when most rooms clear it only the others are summed; else
    each long run of one-sample chunks is its sizes against its rooms (no sum), other long runs are summed from
    slices and the rest of the chunks from the cumulative sizes (_sums). O(C), plus O(N) in the second case."""
    tight = room < bound
    count = int(np.count_nonzero(tight))
    if count == 0:
        return True
    if uniform:
        return bool((np.repeat((per * int(size[0])).astype(dtype), np.diff(run_first_chunk)) <= room).all())
    if count * 8 < len(room):
        chunks = np.flatnonzero(tight)
        return bool((_sums_of(size, False, run_first_chunk, run_first_sample, per, chunks, dtype)
                     <= room[chunks]).all())
    run_chunks = np.diff(run_first_chunk)
    long = _long_runs(run_chunks)
    if len(long) == 0:  # short runs only (audio, mostly): every chunk from the cumulative sizes
        return bool((_bytes_from_totals(size, per, run_chunks, dtype) <= room).all())
    for run in long.tolist():
        a, b = int(run_first_chunk[run]), int(run_first_chunk[run + 1])
        k = int(per[run])
        samples = size[int(run_first_sample[run]) : int(run_first_sample[run + 1])]
        if k == 1:  # the chunks' bytes are the sizes themselves
            fits = bool((samples <= room[a:b]).all())
        else:
            fits = bool((_row_sums(samples.reshape(b - a, k), dtype) <= room[a:b]).all())
        if not fits:
            return False
    if len(long) == len(run_chunks):
        return True
    chunk, firsts, counts = _short_chunks(run_first_chunk, run_first_sample, per, run_chunks, long)
    return bool((_sums(size, firsts, counts, dtype) <= room[chunk]).all())


_LANES = 4  # chunks of at most this many samples are summed by gathers
_LONG_RUN = 64  # a run of at least this many chunks is summed from slices of the sizes
_MAX_SLICED_RUNS = 256  # at most this many such runs (one Python step each); the others as short ones


def _long_runs(run_chunks: np.ndarray) -> np.ndarray:
    """The runs of at least _LONG_RUN chunks, at most _MAX_SLICED_RUNS of them (the longest), in order."""
    long = np.flatnonzero(run_chunks >= _LONG_RUN)
    if len(long) > _MAX_SLICED_RUNS:
        long = np.sort(long[np.argsort(run_chunks[long], kind="stable")[-_MAX_SLICED_RUNS:]])
    return long


def _row_sums(rows: np.ndarray, dtype) -> np.ndarray:
    """Sums along the rows of a (chunks, k) matrix of sizes, in `dtype`: lane by lane for k up to _LANES."""
    if rows.shape[1] > _LANES:
        return np.sum(rows, axis=1, dtype=dtype)
    acc = rows[:, 0].astype(dtype)
    for lane in range(1, rows.shape[1]):
        np.add(acc, rows[:, lane], out=acc, dtype=dtype)
    return acc


def _short_chunks(run_first_chunk: np.ndarray, run_first_sample: np.ndarray, per: np.ndarray,
                  run_chunks: np.ndarray, long: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(chunk, first sample, sample count) of every chunk outside the `long` runs, int64, in chunk order."""
    if len(long):
        short = np.ones(len(run_chunks), dtype=bool)
        short[long] = False
        short = np.flatnonzero(short)
        first_chunk, first_sample, k, count = (run_first_chunk[short], run_first_sample[short], per[short],
                                               run_chunks[short])
        segment = np.zeros(len(short), dtype=np.int64)
        np.cumsum(count[:-1], out=segment[1:])
        chunk = np.arange(int(count.sum()), dtype=np.int64) + np.repeat(first_chunk - segment, count)
    else:
        first_chunk, first_sample, k, count = run_first_chunk[:-1], run_first_sample[:-1], per, run_chunks
        chunk = np.arange(int(run_first_chunk[-1]), dtype=np.int64)
    counts = np.repeat(k, count)
    firsts = np.repeat(first_sample - first_chunk * k, count)
    firsts += chunk * counts
    return chunk, firsts, counts


def _bytes_from_totals(size: np.ndarray, per: np.ndarray, run_chunks: np.ndarray, dtype) -> np.ndarray:
    """The bytes of every chunk, shape (C,), in `dtype` (each sum fits it), as differences of the cumulative
    sizes at the chunks' first samples: O(N + C) in a few passes, however short the chunks. In uint32 the
    cumulative sizes may wrap past 2**32, but two of them differ exactly by the sum between (modulo 2**32, and the
    sum fits)."""
    bounds = np.empty(int(run_chunks.sum()) + 1, np.int64)
    bounds[0] = 0
    np.cumsum(np.repeat(per, run_chunks), out=bounds[1:])
    total = np.empty(len(size) + 1, dtype)
    total[0] = 0
    with np.errstate(over="ignore"):
        np.cumsum(size, dtype=dtype, out=total[1:])
        at = total[bounds]
        return at[1:] - at[:-1]


def _chunk_bytes(size: np.ndarray, uniform: bool, run_first_chunk: np.ndarray, run_first_sample: np.ndarray,
                 per: np.ndarray, dtype) -> np.ndarray:
    """The bytes of each chunk (the sum of its samples' sizes), shape (C,), in `dtype` (the caller makes sure the
    sums fit). size: sample sizes (N,) in any integer dtype, or a broadcast constant (`uniform`). O(N): each long
    run of chunks of k samples (at most _MAX_SLICED_RUNS of them) is a (chunks, k) matrix of the sizes, summed
    along its rows (k = 1: the sizes themselves); the chunks of the other runs go through _sums."""
    run_chunks = np.diff(run_first_chunk)
    if uniform:
        return np.repeat((per * int(size[0])).astype(dtype), run_chunks)
    long = _long_runs(run_chunks)
    if len(long) == 0:
        return _bytes_from_totals(size, per, run_chunks, dtype)
    out = np.empty(int(run_first_chunk[-1]), dtype)
    for run in long.tolist():
        a, b = int(run_first_chunk[run]), int(run_first_chunk[run + 1])
        rows = size[int(run_first_sample[run]) : int(run_first_sample[run + 1])].reshape(b - a, int(per[run]))
        out[a:b] = _row_sums(rows, dtype)
    if len(long) == len(run_chunks):
        return out
    chunk, firsts, counts = _short_chunks(run_first_chunk, run_first_sample, per, run_chunks, long)
    out[chunk] = _sums(size, firsts, counts, dtype)
    return out


def _sums_of(size: np.ndarray, uniform: bool, run_first_chunk: np.ndarray, run_first_sample: np.ndarray,
             per: np.ndarray, chunks: np.ndarray, dtype) -> np.ndarray:
    """The bytes of the given chunks (0 <= chunk < C), in `dtype`, from the runs in O(log R) each."""
    run = run_first_chunk.searchsorted(chunks, side="right") - 1
    counts = per[run]
    if uniform:
        return (counts * int(size[0])).astype(dtype)
    firsts = run_first_sample[run] + (chunks - run_first_chunk[run]) * counts
    return _sums(size, firsts, counts, dtype)


def _sums(size: np.ndarray, firsts: np.ndarray, counts: np.ndarray, dtype) -> np.ndarray:
    """sum(size[firsts[i] : firsts[i] + counts[i]]) for each i (counts >= 1, the ranges inside the table), in
    `dtype` (each sum fits it), O(sum of counts). Many ranges: differences of the cumulative sizes, which for
    uint32 may wrap past 2**32 but differ exactly by each range's sum (arithmetic modulo 2**32 of a sum that
    fits). Few: ranges of up to _LANES samples by one gather per sample position, larger ones by the index of
    their samples."""
    n = len(size)
    if len(counts) * 3 > n:  # many: O(N) once for the cumulative sizes
        total = np.empty(n + 1, dtype)
        total[0] = 0
        with np.errstate(over="ignore"):
            np.cumsum(size, dtype=dtype, out=total[1:])
            out = total[firsts + counts]
            out -= total[firsts]
        return out
    large = np.flatnonzero(counts > _LANES)
    if len(large) * 2 > len(counts):  # mostly large: the small ones on their own
        out = np.empty(len(counts), dtype)
        small = np.flatnonzero(counts <= _LANES)
        if len(small):
            out[small] = _sums(size, firsts[small], counts[small], dtype)
    else:
        lanes = counts
        if len(large):  # clipped, so the gathers stay inside the table; their sums are replaced below
            lanes = np.minimum(counts, int(np.max(counts, where=counts <= _LANES, initial=1)))
        most = int(lanes.max())
        out = size[firsts].astype(dtype)
        for lane in range(1, most):
            out += np.where(lanes > lane, size[np.minimum(firsts + lane, n - 1)], 0).astype(dtype)
    if len(large):
        first, many = firsts[large], counts[large]
        segment = np.zeros(len(large), dtype=np.int64)
        np.cumsum(many[:-1], out=segment[1:])
        index = np.arange(int(many.sum()), dtype=np.int64) + np.repeat(first - segment, many)
        out[large] = np.add.reduceat(size[index], segment, dtype=dtype)
    return out
