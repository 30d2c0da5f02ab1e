"""patch_duration: rewrite the duration field of mvhd, tkhd or mdhd without re-encoding the box."""

from __future__ import annotations

import struct


def patch_duration(payload: bytes, duration: int, offset_v0: int, offset_v1: int) -> bytes:
    """Replace the duration field of a version 0/1 header box payload (mvhd, tkhd, mdhd).

    v0 fields: version+flags(4) creation(4) modification(4) ... duration(4) at offset_v0;
    v1 widens the two times and the duration to 8 bytes. A v0 duration over 2**32-1 is
    clamped to 0xFFFFFFFF ("unknown" in spirit); callers only ever shrink durations.
    """
    if payload[0] == 1:
        return payload[:offset_v1] + struct.pack(">Q", duration) + payload[offset_v1 + 8 :]
    return payload[:offset_v0] + struct.pack(">I", min(duration, 0xFFFFFFFF)) + payload[offset_v0 + 4 :]
