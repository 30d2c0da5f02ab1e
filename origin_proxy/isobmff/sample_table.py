"""SampleTable: one track's samples as parallel numpy columns, built from stbl (ISO/IEC 14496-12 §8.6–8.7).

Strategy: every table is viewed (not copied) as a big-endian structured array, totals are checked
against each other before anything is expanded, and expansion is vectorized (np.repeat/np.cumsum);
there is no Python loop over samples or chunks. Cached columns are read-only.

Totals enforced: stts counts sum to the stsz sample_count; stsc, walked over the stco chunks,
places at least that many samples; every sample lies inside the file. ctts that covers fewer
samples than stsz is padded with offset 0 (players do the same); more is cut.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ..errors import MalformedBox, UnsupportedMedia


def _frozen(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class SampleTable:
    """One track's samples, each column of shape (N,), in decode order.

    Attributes:
        timescale: mdhd.timescale, ticks per second.
        dts_ticks: int64 decode times, first sample at 0.
        duration_ticks: int64 sample durations (stts deltas).
        cts_offset_ticks: int64 composition offsets (ctts; may be negative), zeros without ctts.
        size_bytes: uint32 sample sizes (stsz).
        offset_bytes: int64 absolute file offsets (stsc + stco/co64).
        is_sync: bool; all True when stss is absent.
        chunk_offset_bytes: int64 per chunk, shape (C,).
        chunk_first_sample: int64 index of each chunk's first sample, shape (C,).
        chunk_sample_count: int64 samples in each chunk, shape (C,) (may be 0).
        chunk_description_index: uint32 1-based stsd entry of each chunk, shape (C,).
        has_ctts, has_stss: whether the source carried those boxes.
        sync_indices: int64 0-based indices of sync samples (all when has_stss is False).
    """

    timescale: int
    dts_ticks: np.ndarray
    duration_ticks: np.ndarray
    cts_offset_ticks: np.ndarray
    size_bytes: np.ndarray
    offset_bytes: np.ndarray
    is_sync: np.ndarray
    chunk_offset_bytes: np.ndarray
    chunk_first_sample: np.ndarray
    chunk_sample_count: np.ndarray
    chunk_description_index: np.ndarray
    sync_indices: np.ndarray
    has_ctts: bool
    has_stss: bool

    @property
    def sample_count(self) -> int:
        return len(self.size_bytes)

    @property
    def media_duration_ticks(self) -> int:
        """Sum of all sample durations (end of the last sample's decode time)."""
        n = len(self.dts_ticks)
        return int(self.dts_ticks[-1] + self.duration_ticks[-1]) if n else 0

    @functools.cached_property
    def composition_end_ticks(self) -> int:
        """Latest composition time + duration over all samples (media ticks): where presentation of the
        media ends before any edit list. Computed once per cached table."""
        if not len(self.dts_ticks):
            return 0
        return int((self.dts_ticks + self.cts_offset_ticks + self.duration_ticks).max())

    @property
    def nbytes(self) -> int:
        return sum(
            getattr(self, name).nbytes
            for name in (
                "dts_ticks", "duration_ticks", "cts_offset_ticks", "size_bytes", "offset_bytes", "is_sync",
                "chunk_offset_bytes", "chunk_first_sample", "chunk_sample_count", "chunk_description_index",
                "sync_indices",
            )
        )


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
    duration = np.repeat(stts["sample_delta"].astype(np.int64), counts)
    dts = np.zeros(n, dtype=np.int64)
    if n > 1:
        np.cumsum(duration[:-1], out=dts[1:])

    # ctts (§8.6.1.3)
    if ctts is not None and len(ctts):
        ccounts = ctts["sample_count"].astype(np.int64)
        covered = int(ccounts.sum())
        if covered > n:  # cut the surplus from the end of the run list
            keep = np.cumsum(ccounts) - ccounts < n
            ctts, ccounts = ctts[keep], ccounts[keep].copy()
            ccounts[-1] -= int(ccounts.sum()) - n
            covered = n
        cts = np.repeat(ctts["sample_offset"].astype(np.int64), ccounts)
        if covered < n:
            cts = np.concatenate((cts, np.zeros(n - covered, np.int64)))
    else:
        cts = np.zeros(n, dtype=np.int64)

    # stsz (§8.7.3.2)
    if entry_size is None:
        size = np.full(n, sample_size, dtype=np.uint32)
    else:
        size = entry_size.astype(np.uint32)

    # stss (§8.6.2): 1-based, each in 1..N.
    if stss is not None:
        numbers = stss.astype(np.int64)
        if len(numbers) and (int(numbers.min()) < 1 or int(numbers.max()) > n):
            raise MalformedBox(box_path + "/stss", f"sample number outside 1..{n}")
        is_sync = np.zeros(n, dtype=bool)
        is_sync[numbers - 1] = True
    else:
        is_sync = np.ones(n, dtype=bool)

    # stsc + stco (§8.7.4, §8.7.5): per-chunk sample counts, then per-sample offsets.
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
    if float(np.dot(per_entry.astype(np.float64), runs.astype(np.float64))) > 2**62:
        raise MalformedBox(box_path + "/stsc", "samples_per_chunk values overflow")
    chunk_samples = np.repeat(per_entry, runs)
    chunk_sdi = np.repeat(stsc["sample_description_index"].astype(np.uint32), runs)
    chunk_first = np.zeros(chunk_count, dtype=np.int64)
    if chunk_count > 1:
        np.cumsum(chunk_samples[:-1], out=chunk_first[1:])
    placed = int(chunk_first[-1] + chunk_samples[-1]) if chunk_count else 0
    if placed < n:
        raise MalformedBox(box_path + "/stsc", f"chunks hold {placed} samples, stsz has {n}")
    if placed > n:  # trailing chunks hold phantom samples: cut them (the last one may become partial)
        used = chunk_first < n
        chunk_first, chunk_samples, chunk_sdi = chunk_first[used], chunk_samples[used].copy(), chunk_sdi[used]
        chunk_samples[-1] = n - chunk_first[-1]
        chunk_count = len(chunk_first)
    chunk_offset = chunk_offsets[:chunk_count].astype(np.int64)

    sample_chunk = np.repeat(np.arange(chunk_count, dtype=np.int64), chunk_samples)
    start_of_sample = np.zeros(n, dtype=np.int64)
    if n > 1:
        np.cumsum(size[:-1], dtype=np.int64, out=start_of_sample[1:])
    offset = chunk_offset[sample_chunk] + start_of_sample - start_of_sample[chunk_first[sample_chunk]] if n else np.zeros(0, np.int64)
    if n and (int(offset.min()) < 0 or int((offset + size).max()) > file_size):
        raise MalformedBox(box_path + "/stco", f"sample data lies outside the {file_size}-byte file")

    sync_indices = np.flatnonzero(is_sync).astype(np.int64)
    return SampleTable(
        timescale=timescale,
        dts_ticks=_frozen(dts),
        duration_ticks=_frozen(duration),
        cts_offset_ticks=_frozen(cts),
        size_bytes=_frozen(size),
        offset_bytes=_frozen(offset),
        is_sync=_frozen(is_sync),
        chunk_offset_bytes=_frozen(chunk_offset),
        chunk_first_sample=_frozen(chunk_first),
        chunk_sample_count=_frozen(chunk_samples),
        chunk_description_index=_frozen(chunk_sdi),
        sync_indices=_frozen(sync_indices),
        has_ctts=ctts is not None,
        has_stss=stss is not None,
    )
