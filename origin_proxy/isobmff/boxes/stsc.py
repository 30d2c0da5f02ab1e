"""stsc: SampleToChunkBox, ISO/IEC 14496-12 §8.7.4 (in stbl, mandatory).

Each entry starts a run of chunks (1-based `first_chunk`) that all hold `samples_per_chunk` samples
described by stsd entry `sample_description_index` (1-based), up to the next entry's first_chunk.
"""

from __future__ import annotations

import numpy as np

from ._table import build_table, parse_entries, run_length

STSC_ENTRY = np.dtype(
    [("first_chunk", ">u4"), ("samples_per_chunk", ">u4"), ("sample_description_index", ">u4")]
)


def parse_stsc(payload: bytes, box_path: str) -> np.ndarray:
    """Entries, shape (entry_count,), dtype STSC_ENTRY. Raises MalformedBox."""
    return parse_entries(payload, STSC_ENTRY, box_path)[1]


def build_stsc(samples_per_chunk: np.ndarray, sample_description_index: np.ndarray) -> bytes:
    """stsc payload from per-chunk sample counts and 1-based description indices (shape (C,))."""
    key = samples_per_chunk.astype(np.int64) << 32 | sample_description_index.astype(np.int64)
    counts, _ = run_length(key)
    first_chunk = np.concatenate(([0], np.cumsum(counts)[:-1])) + 1
    starts = first_chunk - 1
    return build_table(0, [first_chunk, samples_per_chunk[starts], sample_description_index[starts]], STSC_ENTRY)
