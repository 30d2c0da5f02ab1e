"""stsz: SampleSizeBox, ISO/IEC 14496-12 §8.7.3.2 (in stbl; stz2 is not supported).

When `sample_size` is non-zero every sample has that size and there is no table, so the count is
not bounded by the box size: callers bound it with max_samples.
"""

from __future__ import annotations

import struct

import numpy as np

from ...errors import MalformedBox
from ._table import build_table, parse_entries

STSZ_ENTRY = np.dtype([("entry_size", ">u4")])


def parse_stsz(payload: bytes, box_path: str) -> tuple[int, int, np.ndarray | None]:
    """(sample_size, sample_count, entry_size view or None when sample_size is uniform).

    Raises:
        MalformedBox: truncated prefix, or a table shorter than sample_count.
    """
    if len(payload) < 12:
        raise MalformedBox(box_path, f"{len(payload)}-byte payload is shorter than its 12-byte header")
    sample_size, sample_count = struct.unpack_from(">II", payload, 4)
    if sample_size:
        return sample_size, sample_count, None
    return 0, sample_count, parse_entries(payload, STSZ_ENTRY, box_path, prefix_bytes=12)[1]["entry_size"]


def build_stsz(sample_size_bytes: np.ndarray) -> bytes:
    """stsz payload from per-sample sizes (bytes, shape (N,)); uniform sizes use the table-less form."""
    if len(sample_size_bytes) and int(sample_size_bytes.min()) == int(sample_size_bytes.max()) > 0:
        return struct.pack(">B3xII", 0, int(sample_size_bytes[0]), len(sample_size_bytes))
    return build_table(0, [sample_size_bytes], STSZ_ENTRY, prefix=struct.pack(">I", 0))
