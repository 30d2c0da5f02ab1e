"""elst: EditListBox, ISO/IEC 14496-12 §8.6.6 (in trak/edts).

Each entry maps `segment_duration` (movie timescale) of the presentation to media starting at
`media_time` (media timescale); media_time -1 is an empty edit. media_rate is 16.16 fixed point.
A hostile entry_count cannot allocate: the entries are read only from bytes the payload holds.
"""

from __future__ import annotations

import struct

from construct import Int8ub, Int24ub, Int32ub, Struct

from ...errors import MalformedBox
from ._parse import parse_payload

_PREFIX = Struct("version" / Int8ub, "flags" / Int24ub, "entry_count" / Int32ub)
_PREFIX_FIELDS = struct.Struct(">B3xI")
_V0 = struct.Struct(">IiHH")   # segment_duration, media_time, media_rate_integer, media_rate_fraction
_V1 = struct.Struct(">QqHH")


def parse_elst(payload: bytes, box_path: str) -> list[tuple[int, int, int]]:
    """Entries as (segment_duration movie ticks, media_time media ticks or -1, media_rate_integer).

    Raises:
        MalformedBox: entry_count needs more bytes than the payload holds.
    """
    if len(payload) >= 8:  # version, flags, entry_count: one unpack (a shorter payload: _PREFIX raises)
        version, entry_count = _PREFIX_FIELDS.unpack_from(payload)
    else:
        prefix = parse_payload(_PREFIX, payload, box_path)
        version, entry_count = prefix.version, prefix.entry_count
    entry = _V1 if version == 1 else _V0
    need = 8 + entry_count * entry.size
    if need > len(payload):
        raise MalformedBox(box_path, f"entry_count {entry_count} needs {need} bytes, payload has {len(payload)}")
    return [entry.unpack_from(payload, 8 + i * entry.size)[:3] for i in range(entry_count)]


def build_elst(entries: list[tuple[int, int]]) -> bytes:
    """elst payload for (segment_duration movie ticks, media_time media ticks or -1) entries at rate 1.
    Version 1 when any value needs 64 bits."""
    wide = any(d > 0xFFFFFFFF or not -(2**31) <= t < 2**31 for d, t in entries)
    entry = _V1 if wide else _V0
    out = bytearray(struct.pack(">B3sI", 1 if wide else 0, b"\0\0\0", len(entries)))
    for duration, media_time in entries:
        out += entry.pack(duration, media_time, 1, 0)
    return bytes(out)
