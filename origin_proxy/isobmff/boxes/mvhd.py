"""mvhd: MovieHeaderBox, ISO/IEC 14496-12 §8.2.2 (in moov, mandatory).

We read the movie timescale and duration, and write the payload back with a new duration; every other
field (matrix, rate, next_track_ID) is carried through byte for byte.
"""

from __future__ import annotations

import struct

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


# MovieHeaderBox's fields up to the duration, unpacked at once: (version, creation_time, modification_time,
# timescale, duration) for version 1 and for every other version (32-bit times, as the Switch's default).
_FIELDS_V1 = struct.Struct(">B3xQQIQ")
_FIELDS = struct.Struct(">B3xIIII")


def parse_mvhd(payload: bytes, box_path: str) -> tuple[int, int]:
    """(timescale, duration in that timescale). Raises MalformedBox.

    A payload long enough for its version's fields is read with one struct unpack (what the construct parse
    gives, at a fraction of its cost); a shorter one goes through MovieHeaderBox, whose error names the field."""
    fields = _FIELDS_V1 if payload[:1] == b"\x01" else _FIELDS
    if len(payload) >= fields.size:
        _, _, _, timescale, duration = fields.unpack_from(payload)
        return timescale, duration
    box = parse_payload(MovieHeaderBox, payload, box_path)
    return box.timescale, box.duration


MVHD_DURATION_OFFSETS = (16, 24)  # duration field offset in the payload for version (0, 1)
