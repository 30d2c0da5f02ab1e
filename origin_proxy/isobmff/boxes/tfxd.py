"""tfxd: Smooth Streaming's TfxdBox, MS-SSTR §2.2.4.4 (a uuid box in traf): the fragment's absolute start time
and duration in the manifest's timescale (c@t and c@d)."""

from __future__ import annotations

import struct

from ..build import box

TFXD_UUID = bytes.fromhex("6d1d9b0542d544e680e2141daff757b2")


def build_tfxd(fragment_absolute_time: int, fragment_duration: int) -> bytes:
    """The whole uuid box (version 1: 64-bit times)."""
    return box(b"uuid", TFXD_UUID + struct.pack(">IQQ", 1 << 24, fragment_absolute_time, fragment_duration))
