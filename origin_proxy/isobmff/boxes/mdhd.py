"""mdhd: MediaHeaderBox, ISO/IEC 14496-12 §8.4.2 (in mdia, mandatory).

The media timescale (ticks per second of every sample-table time in the track), the media duration
and the ISO-639-2/T language packed as three 5-bit letters (offset by 0x60).
"""

from __future__ import annotations

import struct

from construct import Int8ub, Int16ub, Int24ub, Int32ub, Int64ub, Struct, Switch, this

from ...errors import MalformedBox
from ._parse import parse_payload

MediaHeaderBox = Struct(
    "version" / Int8ub,
    "flags" / Int24ub,
    "creation_time" / Switch(this.version, {1: Int64ub}, default=Int32ub),
    "modification_time" / Switch(this.version, {1: Int64ub}, default=Int32ub),
    "timescale" / Int32ub,
    "duration" / Switch(this.version, {1: Int64ub}, default=Int32ub),
    "language" / Int16ub,
)

# MediaHeaderBox's fields, unpacked at once: (version, creation_time, modification_time, timescale, duration,
# language) for version 1 and for every other version (32-bit times, as the Switch's default).
_FIELDS_V1 = struct.Struct(">B3xQQIQH")
_FIELDS = struct.Struct(">B3xIIIIH")

MDHD_DURATION_OFFSETS = (16, 24)  # duration field offset in the payload for version (0, 1)


def parse_mdhd(payload: bytes, box_path: str) -> tuple[int, int, str]:
    """(timescale, duration in ticks, language e.g. "eng" or "und").

    Raises:
        MalformedBox: truncated, or timescale 0 (every time in the track would divide by it).
    """
    fields = _FIELDS_V1 if payload[:1] == b"\x01" else _FIELDS
    if len(payload) >= fields.size:  # one struct unpack, what the construct parse gives at a fraction of its cost
        _, _, _, timescale, duration, packed = fields.unpack_from(payload)
    else:  # too short: MediaHeaderBox raises, naming the field
        box = parse_payload(MediaHeaderBox, payload, box_path)
        timescale, duration, packed = box.timescale, box.duration, box.language
    if timescale == 0:
        raise MalformedBox(box_path, "timescale is 0")
    letters = [((packed >> shift) & 0x1F) + 0x60 for shift in (10, 5, 0)]
    language = bytes(letters).decode("latin-1") if all(0x61 <= c <= 0x7A for c in letters) else "und"
    return timescale, duration, language
