"""stss: SyncSampleBox, ISO/IEC 14496-12 §8.6.2 (in stbl; absent means every sample is a sync sample).

Sample numbers are 1-based in the box and converted to 0-based indices at parse time.
"""

from __future__ import annotations

import numpy as np

from ._table import build_table, parse_entries

STSS_ENTRY = np.dtype([("sample_number", ">u4")])


def parse_stss(payload: bytes, box_path: str) -> np.ndarray:
    """1-based sample numbers, shape (entry_count,), big-endian uint32 view. Raises MalformedBox."""
    return parse_entries(payload, STSS_ENTRY, box_path)[1]["sample_number"]


def build_stss(sync_indices: np.ndarray) -> bytes:
    """stss payload from 0-based sample indices (shape (K,), increasing)."""
    return build_table(0, [sync_indices + 1], STSS_ENTRY)
