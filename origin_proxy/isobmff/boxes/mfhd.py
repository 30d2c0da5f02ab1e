"""mfhd: MovieFragmentHeaderBox, ISO/IEC 14496-12 §8.8.5 (first in moof): the fragment's sequence_number."""

from __future__ import annotations

import struct

from ..build import full_box


def build_mfhd(sequence_number: int) -> bytes:
    """The whole mfhd box (version 0) of fragment `sequence_number` (1-based, increasing)."""
    return full_box(b"mfhd", 0, 0, struct.pack(">I", sequence_number))
