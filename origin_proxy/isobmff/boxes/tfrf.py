"""tfrf: Smooth Streaming's TfrfBox, MS-SSTR §2.2.4.5 (a uuid box in traf of a live fragment): the start times and
durations, in the manifest's timescale, of the fragments that follow this one. Live clients that never reload
the manifest (dash.js MSS) grow their timeline from it."""

from __future__ import annotations

import struct

from ..build import box, full_box_prefix

TFRF_UUID = bytes.fromhex("d4807ef2ca3946958e5426cb9e46a79f")


def build_tfrf(next_fragments: list[tuple[int, int]] | tuple[tuple[int, int], ...]) -> bytes:
    """The whole uuid box (version 1: 64-bit times) listing (fragment_absolute_time, fragment_duration) of each
    following fragment, at most 255."""
    if len(next_fragments) > 255:
        raise ValueError("a tfrf lists at most 255 fragments")
    entries = b"".join(struct.pack(">QQ", time, duration) for time, duration in next_fragments)
    return box(b"uuid", TFRF_UUID + full_box_prefix(1, 0) + struct.pack(">B", len(next_fragments)) + entries)
