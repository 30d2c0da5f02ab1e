"""Box framing, ISO/IEC 14496-12 §4.2: headers, bounded child iteration, and the top-level moov scan.

Hand-written `struct.unpack_from` rather than construct: it runs for every box and must be fast and
bounded. A child never extends past its parent; size 1 means a 64-bit largesize follows the type,
size 0 means "to the end of the enclosing space" (the file at top level, the parent otherwise).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import MalformedBox

_HEADER = struct.Struct(">I4s")
_LARGESIZE = struct.Struct(">Q")


def fourcc_name(fourcc: bytes) -> str:
    """A 4CC for messages: printable ASCII as is, anything else as \\xNN (error text reaches clients)."""
    return "".join(chr(b) if 0x20 < b < 0x7F and b != 0x5C else f"\\x{b:02x}" for b in fourcc)


@dataclass(frozen=True, slots=True)
class BoxSpan:
    """One box: its 4CC, where it starts (bytes, in the buffer or file it was found in),
    its header length (8, 16, or +16 for uuid) and its total size in bytes."""

    fourcc: bytes
    offset: int
    header_size: int
    size: int

    @property
    def payload_offset(self) -> int:
        return self.offset + self.header_size

    @property
    def end(self) -> int:
        return self.offset + self.size


@dataclass(frozen=True, slots=True)
class NeedBytes:
    """The scan needs `size` bytes of the file at `offset` to go on."""

    offset: int
    size: int


def read_header(buf: bytes | memoryview, pos: int, end: int, path: str) -> BoxSpan:
    """Decode the box header at buf[pos:], bounded by `end` (the parent's end).

    Raises:
        MalformedBox: truncated header, size < header, or a box that overruns its parent.
    """
    if end - pos < 8:
        raise MalformedBox(path, f"truncated box header at offset {pos}")
    size, fourcc = _HEADER.unpack_from(buf, pos)
    header_size = 8
    if size == 1:
        if end - pos < 16:
            raise MalformedBox(path, f"truncated largesize at offset {pos}")
        (size,) = _LARGESIZE.unpack_from(buf, pos + 8)
        header_size = 16
    elif size == 0:
        size = end - pos
    if fourcc == b"uuid":
        header_size += 16
    if size < header_size:
        raise MalformedBox(f"{path}/{fourcc_name(fourcc)}", f"size {size} at offset {pos} is smaller than its header")
    if pos + size > end:
        raise MalformedBox(
            f"{path}/{fourcc_name(fourcc)}", f"size {size} at offset {pos} overruns its container (ends at {end})"
        )
    return BoxSpan(fourcc, pos, header_size, size)


def iter_boxes(buf: bytes | memoryview, start: int, end: int, path: str) -> Iterator[BoxSpan]:
    """The child boxes laid end to end in buf[start:end]. Up to 7 trailing bytes (padding, some muxers
    write a 4-byte zero terminator) are ignored; more than that must frame as a box."""
    pos = start
    while end - pos >= 8:
        span = read_header(buf, pos, end, path)
        yield span
        pos = span.end


def scan_top_level(data: bytes, data_offset: int, offset: int, file_size: int) -> BoxSpan | NeedBytes:
    """Decode the top-level box header at file `offset`, using `data` (file bytes from `data_offset`).

    Returns the BoxSpan (file offsets) when `data` holds the header, else NeedBytes for it.
    Raises:
        MalformedBox: a header that is cut by the end of the file, or a box that runs past it.
    """
    want = min(16, file_size - offset)
    rel = offset - data_offset
    if rel < 0 or rel + want > len(data):
        return NeedBytes(offset, want)
    if want < 8:
        raise MalformedBox("/", f"{want} stray bytes at end of file (offset {offset})")
    size, fourcc = _HEADER.unpack_from(data, rel)
    header_size = 8
    if size == 1:
        if want < 16:
            raise MalformedBox("/", f"truncated largesize at offset {offset}")
        (size,) = _LARGESIZE.unpack_from(data, rel + 8)
        header_size = 16
    elif size == 0:
        size = file_size - offset
    if size < header_size:
        raise MalformedBox("/" + fourcc_name(fourcc), f"size {size} at offset {offset} is smaller than its header")
    if offset + size > file_size:
        raise MalformedBox(
            "/" + fourcc_name(fourcc), f"size {size} at offset {offset} runs past end of file ({file_size} bytes)"
        )
    return BoxSpan(fourcc, offset, header_size, size)
