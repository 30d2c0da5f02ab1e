"""ctts: CompositionOffsetBox, ISO/IEC 14496-12 §8.6.1.3 (in stbl, optional).

Version 0 offsets are unsigned and version 1 signed, but we read both as signed 32-bit, as
players do: writers emitted "negative" version 0 offsets long before version 1 existed.
"""

from __future__ import annotations

import numpy as np

from ._table import build_table, parse_entries, run_length

CTTS_ENTRY = np.dtype([("sample_count", ">u4"), ("sample_offset", ">i4")])
_CTTS_ENTRY_V0 = np.dtype([("sample_count", ">u4"), ("sample_offset", ">u4")])


def parse_ctts(payload: bytes, box_path: str) -> np.ndarray:
    """Entries, shape (entry_count,), dtype CTTS_ENTRY (signed offsets). Raises MalformedBox."""
    return parse_entries(payload, CTTS_ENTRY, box_path)[1]


def build_ctts(cts_offset_ticks: np.ndarray) -> bytes:
    """ctts payload from per-sample composition offsets (media ticks, shape (N,)).
    Version 0 when every offset is >= 0, else version 1 (§8.6.1.3.1)."""
    counts, offsets = run_length(cts_offset_ticks)
    if len(offsets) == 0 or int(offsets.min()) >= 0:
        return build_table(0, [counts, offsets], _CTTS_ENTRY_V0)
    return build_table(1, [counts, offsets], CTTS_ENTRY)
