"""hdlr: HandlerBox, ISO/IEC 14496-12 §8.4.3 (in mdia; QuickTime also puts one in minf).

QuickTime files carry two: mdia/hdlr (component type "mhlr", subtype vide/soun) and minf/hdlr
(component type "dhlr", subtype "alis" or "url "). Only mdia/hdlr says what the track is.
"""

from __future__ import annotations

from construct import Bytes, Int8ub, Int24ub, Struct

from ._parse import parse_payload

HandlerBox = Struct(
    "version" / Int8ub,
    "flags" / Int24ub,
    "pre_defined" / Bytes(4),  # QuickTime: component type ("mhlr"/"dhlr")
    "handler_type" / Bytes(4),
)


def parse_hdlr(payload: bytes, box_path: str) -> bytes:
    """The handler_type 4CC: b"vide", b"soun", b"meta", b"text", ... Raises MalformedBox (a payload shorter than
    HandlerBox's 12 bytes goes through it, whose error names the field; else the 4CC is sliced out)."""
    if len(payload) >= 12:
        return bytes(payload[8:12])
    return parse_payload(HandlerBox, payload, box_path).handler_type
