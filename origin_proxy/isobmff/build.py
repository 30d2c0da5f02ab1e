"""Box serialization (ISO/IEC 14496-12 §4.2): a header in front of a payload."""

from __future__ import annotations

import struct


def box_header(fourcc: bytes, payload_bytes: int) -> bytes:
    """8-byte header, or 16 with a 64-bit largesize when the box exceeds 2**32-1 bytes."""
    if payload_bytes + 8 <= 0xFFFFFFFF:
        return struct.pack(">I4s", payload_bytes + 8, fourcc)
    return struct.pack(">I4sQ", 1, fourcc, payload_bytes + 16)


def box(fourcc: bytes, payload: bytes) -> bytes:
    """A whole box."""
    return box_header(fourcc, len(payload)) + payload
