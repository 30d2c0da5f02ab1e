"""Shared framing of the sample-table full boxes: version, flags, entry_count, then packed entries.

A hostile entry_count costs nothing: the entry bytes are checked against the payload before numpy
views them (np.frombuffer never copies), so no allocation is driven by a count.
"""

from __future__ import annotations

import struct

import numpy as np

from ...errors import MalformedBox

_PREFIX = struct.Struct(">B3xI")


def parse_entries(payload: bytes, dtype: np.dtype, box_path: str, prefix_bytes: int = 8) -> tuple[int, np.ndarray]:
    """(version, entries) where entries is a read-only structured view of shape (entry_count,).

    `prefix_bytes` is the length of version+flags+...+entry_count (8 for most tables, 12 for stsz).
    Bytes after the table are ignored (some muxers pad).
    Raises:
        MalformedBox: the payload is shorter than its prefix or than entry_count entries.
    """
    if len(payload) < prefix_bytes:
        raise MalformedBox(box_path, f"{len(payload)}-byte payload is shorter than its {prefix_bytes}-byte header")
    version = payload[0]
    (entry_count,) = struct.unpack_from(">I", payload, prefix_bytes - 4)
    need = prefix_bytes + entry_count * dtype.itemsize
    if need > len(payload):
        raise MalformedBox(box_path, f"entry_count {entry_count} needs {need} bytes, payload has {len(payload)}")
    entries = np.frombuffer(payload, dtype=dtype, count=entry_count, offset=prefix_bytes)
    return version, entries


def build_table(version: int, columns: list[np.ndarray], dtype: np.dtype, prefix: bytes = b"") -> bytes:
    """Payload = version, zero flags, [prefix], entry_count, then the columns packed as `dtype`.

    Raises:
        OverflowError: a value does not fit its field (callers choose co64 / version 1 first).
    """
    count = len(columns[0]) if columns else 0
    for name, column in zip(dtype.names, columns):
        info = np.iinfo(dtype[name])
        if count and (int(column.min()) < info.min or int(column.max()) > info.max):
            raise OverflowError(f"{name} does not fit {dtype[name]}")
    if len(columns) == 1:  # one field: a plain byte-swapping cast
        table = columns[0].astype(dtype[0])
    else:
        table = np.empty(count, dtype=dtype)
        for name, column in zip(dtype.names, columns):
            table[name] = column
    return struct.pack(">B3x", version) + prefix + struct.pack(">I", count) + table.tobytes()


def run_length(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run-length encode a 1-D array: (counts int64, values) with no two equal neighbours."""
    if len(values) == 0:
        return np.zeros(0, np.int64), values[:0]
    starts = np.concatenate(([0], np.flatnonzero(values[1:] != values[:-1]) + 1))
    counts = np.diff(np.append(starts, len(values)))
    return counts.astype(np.int64), values[starts]
