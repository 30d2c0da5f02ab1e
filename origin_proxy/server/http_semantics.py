"""HTTP range and conditional-request rules for a body known in advance (a Plan). Pure: no aiohttp, no I/O.

- Ranges, RFC 9110 §14: `bytes=` first-last / first- / -suffix lists. A header we cannot parse, of another unit,
  with more than MAX_RANGES ranges, or whose ranges add up to more bytes than the body (they overlap) is ignored
  (whole 200, §14.2 allows it); a syntactically valid set where no range is satisfiable raises RangeNotSatisfiable
  (416). Ranges are served in the order asked, not coalesced.
- Conditionals, RFC 9110 §13.2.2 order: If-None-Match (weak comparison) -> 304, else If-Modified-Since -> 304;
  If-Range (strong ETag comparison, or an exact Last-Modified date) decides whether Range applies.
- multipart/byteranges, RFC 9110 §14.6: the body is laid out as Plan parts so its length is exact up front.
"""

from __future__ import annotations

import email.utils
import functools
import hashlib
import re
from collections.abc import Mapping

from ..errors import RangeNotSatisfiable
from ..plan import Part, Plan

MAX_RANGES = 64
ETAG_FORMAT_VERSION = "1"  # bump when the bytes we produce for the same source and query change
_RANGE_SPEC = re.compile(r"^\s*(?:(\d+)\s*-\s*(\d*)|-\s*(\d+))\s*$")


def parse_range(header: str | None, complete_length: int) -> list[tuple[int, int]] | None:
    """Satisfiable byte ranges as inclusive (first, last) positions, or None to serve the whole body.

    Args:
        header: the Range field value, e.g. "bytes=0-99, -100".
        complete_length: body length in bytes.
    Raises:
        RangeNotSatisfiable: every range starts at or past the end (or is an empty suffix), RFC 9110 §15.5.17.
    """
    if header is None:
        return None
    unit, sep, specs = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    items = [item for item in specs.split(",") if item.strip()]  # §5.6.1: empty list elements are allowed
    if not items or len(items) > MAX_RANGES:
        return None
    parsed: list[tuple[int, int | None, int | None]] = []
    for item in items:
        match = _RANGE_SPEC.match(item)
        if not match:
            return None
        first, last, suffix = match.groups()
        if first is not None:
            if last and int(last) < int(first):
                return None  # §14.1.1: invalid range-spec -> ignore the whole field
            parsed.append((int(first), int(last) if last else None, None))
        else:
            parsed.append((None, None, int(suffix)))
    ranges = []
    for first, last, suffix in parsed:
        if suffix is not None:
            if suffix > 0 and complete_length > 0:
                ranges.append((max(0, complete_length - suffix), complete_length - 1))
        elif first < complete_length:
            ranges.append((first, complete_length - 1 if last is None else min(last, complete_length - 1)))
    if not ranges:
        raise RangeNotSatisfiable("range not satisfiable", complete_length=complete_length, range=header)
    if sum(last - first + 1 for first, last in ranges) > complete_length:
        # §14.2 lets a server ignore overlapping ranges: asking for the same bytes many times over would make the
        # body (and the upstream reads behind it) a multiple of the representation. Serve it once, whole.
        return None
    return ranges


def strong_etag(identity: str, validator: str, variant: str) -> str:
    """A quoted strong ETag for one source version and one set of request parameters (`variant`, e.g. the
    normalized clip query, '' for the file as is)."""
    digest = hashlib.sha256("\0".join((ETAG_FORMAT_VERSION, identity, validator, variant)).encode()).hexdigest()
    return f'"{digest[:32]}"'


@functools.lru_cache(maxsize=1024)
def http_date(timestamp_s: float) -> str:
    """IMF-fixdate of a POSIX time (RFC 9110 §5.6.7); remembered, since every request of a file asks again."""
    return email.utils.formatdate(timestamp_s, usegmt=True)


def _parse_http_date(value: str) -> float | None:
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None or parsed.tzinfo is None:
        return None
    return parsed.timestamp()


def _etag_list(value: str) -> list[str]:
    return re.findall(r'(?:W/)?"[^"]*"|\*', value)


def not_modified(headers: Mapping[str, str], etag: str, last_modified_s: float | None) -> bool:
    """True when a GET/HEAD should be answered 304 (RFC 9110 §13.1.2, §13.1.3, order of §13.2.2)."""
    if_none_match = headers.get("If-None-Match")
    if if_none_match is not None:
        tags = _etag_list(if_none_match)
        return "*" in tags or any(tag.removeprefix("W/") == etag for tag in tags)  # weak comparison
    if_modified_since = headers.get("If-Modified-Since")
    if if_modified_since is not None and last_modified_s is not None:
        since = _parse_http_date(if_modified_since)
        return since is not None and int(last_modified_s) <= since
    return False


def if_range_allows(headers: Mapping[str, str], etag: str, last_modified_s: float | None) -> bool:
    """False when If-Range names another version, so the Range must be ignored (RFC 9110 §13.1.5)."""
    value = headers.get("If-Range")
    if value is None:
        return True
    value = value.strip()
    if value.startswith(('"', "W/")):
        return value == etag  # strong comparison; a weak tag never matches
    since = _parse_http_date(value)
    return since is not None and last_modified_s is not None and int(last_modified_s) == int(since)


def multipart_body(plan: Plan, ranges: list[tuple[int, int]], boundary: str) -> Plan:
    """The multipart/byteranges body for several ranges of `plan`, as a Plan (exact total_bytes).

    Each part: `--boundary`, Content-Type, `Content-Range: bytes a-b/N`, a blank line, the bytes; parts are
    separated by CRLF and the body ends with `--boundary--` (RFC 9110 §14.6, RFC 2046 §5.1.1).
    """
    parts: list[Part] = []
    for index, (first, last) in enumerate(ranges):
        head = (
            ("\r\n" if index else "")
            + f"--{boundary}\r\nContent-Type: {plan.content_type}\r\n"
            + f"Content-Range: bytes {first}-{last}/{plan.total_bytes}\r\n\r\n"
        )
        parts.append(head.encode("ascii"))
        parts.extend(plan.slice(first, last))
    parts.append(f"\r\n--{boundary}--\r\n".encode("ascii"))
    return Plan(tuple(parts), content_type=f"multipart/byteranges; boundary={boundary}")
