"""tkhd: TrackHeaderBox, ISO/IEC 14496-12 §8.3.2 (in trak, mandatory).

We read track_ID and the duration (movie timescale); width/height/matrix are carried through.
"""

from __future__ import annotations

import struct

from construct import Int8ub, Int24ub, Int32ub, Int64ub, Struct, Switch, this

from ._parse import parse_payload

TrackHeaderBox = Struct(
    "version" / Int8ub,
    "flags" / Int24ub,
    "creation_time" / Switch(this.version, {1: Int64ub}, default=Int32ub),
    "modification_time" / Switch(this.version, {1: Int64ub}, default=Int32ub),
    "track_ID" / Int32ub,
    "reserved" / Int32ub,
    "duration" / Switch(this.version, {1: Int64ub}, default=Int32ub),
)

TKHD_DURATION_OFFSETS = (20, 28)  # duration field offset in the payload for version (0, 1)


# TrackHeaderBox's fields up to the duration, unpacked at once: (version, creation_time, modification_time,
# track_ID, reserved, duration) for version 1 and for every other version (32-bit times, the Switch's default).
_FIELDS_V1 = struct.Struct(">B3xQQIIQ")
_FIELDS = struct.Struct(">B3xIIIII")


def parse_tkhd(payload: bytes, box_path: str) -> tuple[int, int]:
    """(track_ID, duration in the movie timescale). Raises MalformedBox.

    A payload long enough for its version's fields is read with one struct unpack (what the construct parse
    gives, at a fraction of its cost); a shorter one goes through TrackHeaderBox, whose error names the field."""
    fields = _FIELDS_V1 if payload[:1] == b"\x01" else _FIELDS
    if len(payload) >= fields.size:
        _, _, _, track_id, _, duration = fields.unpack_from(payload)
        return track_id, duration
    box = parse_payload(TrackHeaderBox, payload, box_path)
    return box.track_ID, box.duration
