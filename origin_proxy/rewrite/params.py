"""`?start=&end=&mode=` query values -> ClipRequest (DESIGN.md §4).

Seconds are parsed as exact decimals (Fraction), never floats, so "290.12" converts to ticks with
integer maths and one spelled-out rounding (`to_ticks`). Accepted: digits with an optional fraction,
e.g. "290", "290.12", ".5"; at most 12 digits before and 9 after the point. Rejected with 400: signs,
exponents, "nan"/"inf", empty values, repeated parameters, unknown modes, end <= start.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

from ..errors import BadRequest

MODES = ("exact", "keyframe")
_SECONDS = re.compile(r"(\d{0,12})(?:\.(\d{0,9}))?", re.ASCII)  # ASCII: \d alone accepts "١" or "１"


@dataclass(frozen=True)
class ClipRequest:
    """A validated pseudo-streaming request.

    Attributes:
        start_s: presentation time to start at, seconds (exact), or None.
        end_s: presentation time to end at, seconds (exact, > start_s), or None.
        mode: "exact" (lead-in hidden by an edit list) or "keyframe" (start at the key frame).
    """

    start_s: Fraction | None
    end_s: Fraction | None
    mode: str

    def normalized(self) -> str:
        """Canonical text of the parameters for ETags and cache keys, e.g. "start=290.12&end=300&mode=exact"."""
        parts = []
        if self.start_s is not None:
            parts.append(f"start={_decimal(self.start_s)}")
        if self.end_s is not None:
            parts.append(f"end={_decimal(self.end_s)}")
        parts.append(f"mode={self.mode}")
        return "&".join(parts)


def _decimal(value: Fraction) -> str:
    whole, rest = divmod(value.numerator * 10**9 // value.denominator, 10**9)
    return f"{whole}.{rest:09d}".rstrip("0").rstrip(".")


def to_ticks(seconds: Fraction, timescale: int) -> int:
    """Seconds to ticks of `timescale`, rounding half up (exact integer maths)."""
    return int((seconds * timescale + Fraction(1, 2)) // 1)


def parse_seconds(name: str, text: str) -> Fraction:
    """A non-negative decimal number of seconds. Raises BadRequest naming the parameter."""
    match = _SECONDS.fullmatch(text)
    if not match or not (match.group(1) or match.group(2)):
        raise BadRequest(f"{name}={text[:40]!r} is not a non-negative decimal number of seconds")
    whole, frac = match.group(1) or "0", match.group(2) or ""
    return Fraction(int(whole + frac), 10 ** len(frac))


def parse_clip_query(query: Mapping[str, str], default_mode: str = "exact") -> ClipRequest | None:
    """ClipRequest, or None when the query names neither start nor end (serve the file as it is).

    Args:
        query: the request's query parameters; a multidict's getall() is used when present so
            repeated parameters are refused rather than silently picking one.
        default_mode: the rule's mode when `mode` is absent.
    Raises:
        BadRequest: a one-line reason.
    """
    values: dict[str, str] = {}
    for name in ("start", "end", "mode"):
        found = query.getall(name, []) if hasattr(query, "getall") else ([query[name]] if name in query else [])
        if len(found) > 1:
            raise BadRequest(f"{name} is given {len(found)} times")
        if found:
            values[name] = found[0]
    if "start" not in values and "end" not in values:
        return None
    mode = values.get("mode", default_mode)
    if mode not in MODES:
        raise BadRequest(f"mode={mode[:40]!r} is not one of {', '.join(MODES)}")
    start_s = parse_seconds("start", values["start"]) if "start" in values else None
    end_s = parse_seconds("end", values["end"]) if "end" in values else None
    if end_s is not None and end_s <= (start_s or 0):
        raise BadRequest(f"end={_decimal(end_s)} must be greater than start={_decimal(start_s or Fraction(0))}")
    return ClipRequest(start_s, end_s, mode)
