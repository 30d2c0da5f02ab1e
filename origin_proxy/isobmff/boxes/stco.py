"""stco / co64: ChunkOffsetBox and ChunkLargeOffsetBox, ISO/IEC 14496-12 §8.7.5 (in stbl, one mandatory).

Absolute file offsets of each chunk, 32-bit in stco and 64-bit in co64.
"""

from __future__ import annotations

import numpy as np

from ._table import build_table, parse_entries

STCO_ENTRY = np.dtype([("chunk_offset", ">u4")])
CO64_ENTRY = np.dtype([("chunk_offset", ">u8")])


def parse_chunk_offsets(fourcc: bytes, payload: bytes, box_path: str) -> np.ndarray:
    """Chunk offsets (bytes), shape (entry_count,), big-endian view. Raises MalformedBox."""
    dtype = CO64_ENTRY if fourcc == b"co64" else STCO_ENTRY
    return parse_entries(payload, dtype, box_path)[1]["chunk_offset"]


def build_chunk_offsets(chunk_offset_bytes: np.ndarray, wide: bool = False) -> tuple[bytes, bytes]:
    """(fourcc, payload): co64 when `wide`, else stco (OverflowError if an offset needs 64 bits)."""
    if not wide:
        return b"stco", build_table(0, [chunk_offset_bytes], STCO_ENTRY)
    return b"co64", build_table(0, [chunk_offset_bytes], CO64_ENTRY)
