"""tfhd: TrackFragmentHeaderBox, ISO/IEC 14496-12 §8.8.7 (first in traf): the track and its defaults.

We write only `default-base-is-moof` (0x020000, §8.8.7.1): data offsets count from the moof's first byte, and every
sample carries its own values in trun, so no default_* field is present.
"""

from __future__ import annotations

import struct

from ..build import full_box

BASE_DATA_OFFSET_PRESENT = 0x000001
SAMPLE_DESCRIPTION_INDEX_PRESENT = 0x000002
DEFAULT_SAMPLE_DURATION_PRESENT = 0x000008
DEFAULT_SAMPLE_SIZE_PRESENT = 0x000010
DEFAULT_SAMPLE_FLAGS_PRESENT = 0x000020
DURATION_IS_EMPTY = 0x010000
DEFAULT_BASE_IS_MOOF = 0x020000


def build_tfhd(track_id: int) -> bytes:
    """The whole tfhd box of `track_id`, flags default-base-is-moof and no defaults."""
    return full_box(b"tfhd", 0, DEFAULT_BASE_IS_MOOF, struct.pack(">I", track_id))
