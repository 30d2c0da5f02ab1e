"""trun: TrackRunBox, ISO/IEC 14496-12 §8.8.8 (in traf): the samples of one run.

We write version 1 (signed composition offsets) with data-offset and, per sample, duration, size, flags and
composition offset present (flags 0x000F01), so variable frame rates and B-frames need no defaults. Sample flags
(§8.8.3.1): sync samples "depend on no other" (sample_depends_on 2), others "depend on others, non-sync".
"""

from __future__ import annotations

import struct

import numpy as np

from ..build import full_box

DATA_OFFSET_PRESENT = 0x000001
FIRST_SAMPLE_FLAGS_PRESENT = 0x000004
SAMPLE_DURATION_PRESENT = 0x000100
SAMPLE_SIZE_PRESENT = 0x000200
SAMPLE_FLAGS_PRESENT = 0x000400
SAMPLE_COMPOSITION_TIME_OFFSETS_PRESENT = 0x000800
TRUN_FLAGS = (DATA_OFFSET_PRESENT | SAMPLE_DURATION_PRESENT | SAMPLE_SIZE_PRESENT | SAMPLE_FLAGS_PRESENT
              | SAMPLE_COMPOSITION_TIME_OFFSETS_PRESENT)
SYNC_SAMPLE_FLAGS = 0x02000000  # sample_depends_on = 2
NON_SYNC_SAMPLE_FLAGS = 0x01010000  # sample_depends_on = 1, sample_is_non_sync_sample = 1
#: One sample record of our trun, big-endian as in the box.
TRUN_SAMPLE = np.dtype([("duration", ">u4"), ("size", ">u4"), ("flags", ">u4"), ("composition_offset", ">i4")])
#: Bytes of a trun box before its sample records: header, version+flags, sample_count, data_offset.
TRUN_FIXED_BYTES = 8 + 4 + 4 + 4


def trun_size(sample_count: int) -> int:
    """Bytes of the whole trun box for `sample_count` records."""
    return TRUN_FIXED_BYTES + sample_count * TRUN_SAMPLE.itemsize


def build_trun(samples: np.ndarray, data_offset: int) -> bytes:
    """The whole trun box (version 1, TRUN_FLAGS) of `samples` (TRUN_SAMPLE records); `data_offset` in bytes from
    the base (the moof's first byte with default-base-is-moof) to the first sample's data."""
    records = np.ascontiguousarray(samples, dtype=TRUN_SAMPLE)
    return full_box(b"trun", 1, TRUN_FLAGS, struct.pack(">Ii", len(records), data_offset) + records.tobytes())
