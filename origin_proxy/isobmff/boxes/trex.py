"""trex: TrackExtendsBox, ISO/IEC 14496-12 §8.8.3 (in moov/mvex): a track's fragment defaults."""

from __future__ import annotations

import struct

from ..build import full_box


def build_trex(track_id: int, default_sample_description_index: int = 1, default_sample_duration: int = 0,
               default_sample_size: int = 0, default_sample_flags: int = 0) -> bytes:
    """The whole trex box of `track_id` (our fragments carry every value in trun, so the defaults stay 0)."""
    return full_box(b"trex", 0, 0, struct.pack(">IIIII", track_id, default_sample_description_index,
                                              default_sample_duration, default_sample_size, default_sample_flags))
