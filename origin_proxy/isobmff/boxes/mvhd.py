"""mvhd: MovieHeaderBox, ISO/IEC 14496-12 §8.2.2 (in moov, mandatory).

We read the movie timescale and duration, and write the payload back with a new duration; every other
field (matrix, rate, next_track_ID) is carried through byte for byte.
"""

from __future__ import annotations

from construct import Int8ub, Int24ub, Int32ub, Int64ub, Struct, Switch, this

from ._parse import parse_payload

MovieHeaderBox = Struct(
    "version" / Int8ub,
    "flags" / Int24ub,
    "creation_time" / Switch(this.version, {1: Int64ub}, default=Int32ub),
    "modification_time" / Switch(this.version, {1: Int64ub}, default=Int32ub),
    "timescale" / Int32ub,
    "duration" / Switch(this.version, {1: Int64ub}, default=Int32ub),
)


def parse_mvhd(payload: bytes, box_path: str) -> tuple[int, int]:
    """(timescale, duration in that timescale). Raises MalformedBox."""
    box = parse_payload(MovieHeaderBox, payload, box_path)
    return box.timescale, box.duration


MVHD_DURATION_OFFSETS = (16, 24)  # duration field offset in the payload for version (0, 1)
