"""tkhd: TrackHeaderBox, ISO/IEC 14496-12 §8.3.2 (in trak, mandatory).

We read track_ID and the duration (movie timescale); width/height/matrix are carried through.
"""

from __future__ import annotations

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


def parse_tkhd(payload: bytes, box_path: str) -> tuple[int, int]:
    """(track_ID, duration in the movie timescale). Raises MalformedBox."""
    box = parse_payload(TrackHeaderBox, payload, box_path)
    return box.track_ID, box.duration
