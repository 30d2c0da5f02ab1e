"""parse_payload: the one place a ConstructError becomes MalformedBox (it never leaves isobmff/)."""

from __future__ import annotations

from construct import ConstructError, Struct

from ...errors import MalformedBox


def parse_payload(struct: Struct, payload: bytes, box_path: str):
    """Parse `payload` with `struct`. Returns the construct Container (never cache it).

    Raises:
        MalformedBox: the payload is too short or contradicts the layout.
    """
    try:
        return struct.parse(payload)
    except ConstructError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise MalformedBox(box_path, f"{len(payload)}-byte payload does not parse: {reason}") from None
