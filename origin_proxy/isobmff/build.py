"""Box serialization (ISO/IEC 14496-12 §4.2): a header in front of a payload; a FullBox adds version and flags."""

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


def full_box_prefix(version: int, flags: int) -> bytes:
    """The 4 bytes a FullBox (§4.2.2) puts before its fields: version (8 bits), flags (24 bits)."""
    return struct.pack(">I", (version & 0xFF) << 24 | (flags & 0xFFFFFF))


def full_box(fourcc: bytes, version: int, flags: int, payload: bytes) -> bytes:
    """A whole FullBox (§4.2.2): header, version, flags, then `payload`."""
    return box(fourcc, full_box_prefix(version, flags) + payload)
