"""stts: TimeToSampleBox, ISO/IEC 14496-12 §8.6.1.2 (in stbl, mandatory).

Run-length decode deltas: each entry says `sample_count` consecutive samples last `sample_delta` ticks.
"""

from __future__ import annotations

import numpy as np

from ._table import build_table, parse_entries, run_length

STTS_ENTRY = np.dtype([("sample_count", ">u4"), ("sample_delta", ">u4")])


def parse_stts(payload: bytes, box_path: str) -> np.ndarray:
    """Entries, shape (entry_count,), dtype STTS_ENTRY. Raises MalformedBox."""
    return parse_entries(payload, STTS_ENTRY, box_path)[1]


def build_stts(duration_ticks: np.ndarray) -> bytes:
    """stts payload from per-sample durations (media ticks, shape (N,))."""
    counts, deltas = run_length(duration_ticks)
    return build_table(0, [counts, deltas], STTS_ENTRY)
