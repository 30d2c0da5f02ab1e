"""tfdt: TrackFragmentBaseMediaDecodeTimeBox, ISO/IEC 14496-12 §8.8.12 (in traf): the decode time of the
fragment's first sample, in the track's media timescale."""

from __future__ import annotations

import struct

from ..build import full_box


def build_tfdt(base_media_decode_time_ticks: int) -> bytes:
    """The whole tfdt box, always version 1 (64-bit time), as CMAF writers do."""
    return full_box(b"tfdt", 1, 0, struct.pack(">Q", base_media_decode_time_ticks))
