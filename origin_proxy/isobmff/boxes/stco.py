"""stco / co64: ChunkOffsetBox and ChunkLargeOffsetBox, ISO/IEC 14496-12 §8.7.5 (in stbl, one mandatory).

Absolute file offsets of each chunk, 32-bit in stco and 64-bit in co64.
"""

from __future__ import annotations

import struct

import numpy as np

from ._table import build_table, parse_entries

STCO_ENTRY = np.dtype([("chunk_offset", ">u4")])
CO64_ENTRY = np.dtype([("chunk_offset", ">u8")])


def parse_chunk_offsets(fourcc: bytes, payload: bytes, box_path: str) -> np.ndarray:
    """Chunk offsets (bytes), shape (entry_count,), big-endian view. Raises MalformedBox."""
    dtype = CO64_ENTRY if fourcc == b"co64" else STCO_ENTRY
    return parse_entries(payload, dtype, box_path)[1]["chunk_offset"]


def build_shifted_chunk_offsets(offset_bytes: np.ndarray, first_offset_bytes: int, shift: int,
                                wide: bool = False) -> tuple[bytes, bytes]:
    """(fourcc, payload) of the stco (co64 when `wide`) whose entries are `offset_bytes` (shape (C,), C >= 1,
    any integer dtype) moved by `shift` bytes, the first entry being `first_offset_bytes` + shift instead: the
    chunk offsets of a clip whose first chunk starts mid-chunk. Same bytes as build_chunk_offsets of those values,
    without an int64 copy of the table: the range is checked on the source's extremes, the sums are cast once.

    Raises:
        OverflowError: an entry does not fit 32 bits (stco) or is negative.
    """
    count = len(offset_bytes)
    rest = offset_bytes[1:]
    low = min(int(rest.min()), first_offset_bytes) if len(rest) else first_offset_bytes
    high = max(int(rest.max()), first_offset_bytes) if len(rest) else first_offset_bytes
    fourcc, entry, limit = (b"co64", ">u8", 2**64 - 1) if wide else (b"stco", ">u4", 2**32 - 1)
    if low + shift < 0 or high + shift > limit:
        raise OverflowError(f"chunk_offset does not fit {entry}")
    table = np.empty(count, dtype=entry)
    np.add(offset_bytes, np.int64(shift), out=table, casting="unsafe")  # int64 sums, in range: exact
    table[0] = first_offset_bytes + shift
    return fourcc, struct.pack(">B3xI", 0, count) + table.tobytes()


def build_chunk_offsets(chunk_offset_bytes: np.ndarray, wide: bool = False) -> tuple[bytes, bytes]:
    """(fourcc, payload): co64 when `wide`, else stco (OverflowError if an offset needs 64 bits)."""
    if not wide:
        return b"stco", build_table(0, [chunk_offset_bytes], STCO_ENTRY)
    return b"co64", build_table(0, [chunk_offset_bytes], CO64_ENTRY)
