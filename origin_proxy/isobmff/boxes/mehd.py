"""mehd: MovieExtendsHeaderBox, ISO/IEC 14496-12 §8.8.2 (in moov/mvex): the whole fragmented movie's duration,
in the movie timescale. Optional; a live presentation leaves it out (its duration is not known)."""

from __future__ import annotations

import struct

from ..build import full_box


def build_mehd(fragment_duration_ticks: int) -> bytes:
    """The whole mehd box, version 1 (64-bit) when the duration needs it."""
    if fragment_duration_ticks > 0xFFFFFFFF:
        return full_box(b"mehd", 1, 0, struct.pack(">Q", fragment_duration_ticks))
    return full_box(b"mehd", 0, 0, struct.pack(">I", fragment_duration_ticks))
