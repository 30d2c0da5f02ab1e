"""EBML variable-size integers and element ids (RFC 8794 §4, §5), and the Matroska ids the relay reads.

`read_id` keeps the length-marker bits (Matroska ids are written that way: Cluster = 0x1F43B675);
`read_size` strips them and returns UNKNOWN_SIZE for the all-ones value (RFC 8794 §6.2). Both return None when
`buf[pos:]` is too short to tell, so incremental callers can wait for more bytes.
"""

from __future__ import annotations

from ..errors import MalformedIngest

UNKNOWN_SIZE = -1

EBML = 0x1A45DFA3
DOC_TYPE = 0x4282
SEGMENT = 0x18538067
SEEK_HEAD = 0x114D9B74
INFO = 0x1549A966
TIMESTAMP_SCALE = 0x2AD7B1
DURATION = 0x4489
TRACKS = 0x1654AE6B
TRACK_ENTRY = 0xAE
TRACK_NUMBER = 0xD7
TRACK_TYPE = 0x83
CODEC_ID = 0x86
CLUSTER = 0x1F43B675
TIMESTAMP = 0xE7
SIMPLE_BLOCK = 0xA3
BLOCK_GROUP = 0xA0
BLOCK = 0xA1
REFERENCE_BLOCK = 0xFB
VOID = 0xEC
CRC32 = 0xBF
CUES = 0x1C53BB6B
TAGS = 0x1254C367

#: Segment children (level 1): an unknown-size Cluster ends where one of these (or a new EBML header) begins.
LEVEL1_IDS = frozenset({SEEK_HEAD, INFO, TRACKS, CLUSTER, CUES, TAGS, 0x1043A770, 0x1941A469})


def read_id(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int, int] | None:
    """(element id with marker bits, its length 1..4) at `buf[pos]`, or None if more bytes are needed.

    Raises MalformedIngest for a first byte 0x00 or one announcing an id longer than 4 bytes.
    """
    if pos >= len(buf):
        return None
    first = buf[pos]
    length = 8 - first.bit_length() + 1 if first else 9
    if length > 4:
        raise MalformedIngest(f"invalid EBML element id byte 0x{first:02x}")
    if pos + length > len(buf):
        return None
    return int.from_bytes(buf[pos:pos + length], "big"), length


def read_size(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int, int] | None:
    """(data size in bytes or UNKNOWN_SIZE, length of the vint 1..8), or None if more bytes are needed."""
    if pos >= len(buf):
        return None
    first = buf[pos]
    if not first:
        raise MalformedIngest("invalid EBML size: vint longer than 8 bytes")
    length = 8 - first.bit_length() + 1
    if pos + length > len(buf):
        return None
    value = int.from_bytes(buf[pos:pos + length], "big") & ((1 << (7 * length)) - 1)
    return (UNKNOWN_SIZE if value == (1 << (7 * length)) - 1 else value), length


def read_uint(data: bytes | memoryview) -> int:
    """An EBML unsigned integer element's data (0-8 bytes, big-endian)."""
    if len(data) > 8:
        raise MalformedIngest(f"EBML unsigned integer of {len(data)} bytes")
    return int.from_bytes(data, "big")


def encode_size(size: int) -> bytes:
    """The shortest EBML vint for `size` (never the reserved all-ones value)."""
    for length in range(1, 9):
        if size < (1 << (7 * length)) - 1:
            return (size | (1 << (7 * length))).to_bytes(length, "big")
    raise ValueError(f"EBML size {size} does not fit 8 bytes")


def encode_element(element_id: int, data: bytes) -> bytes:
    """One EBML element: id (marker bits included), size vint, data."""
    return element_id.to_bytes((element_id.bit_length() + 7) // 8, "big") + encode_size(len(data)) + data


def children(data: bytes | memoryview, path: str) -> list[tuple[int, memoryview]]:
    """The (id, data) children of a master element's complete data; raises MalformedIngest on bad framing."""
    view = memoryview(data)
    out, pos = [], 0
    while pos < len(view):
        head = read_id(view, pos)
        size = read_size(view, pos + head[1]) if head is not None else None
        if head is None or size is None:
            raise MalformedIngest(f"truncated element header in {path}")
        start = pos + head[1] + size[1]
        if size[0] == UNKNOWN_SIZE or start + size[0] > len(view):
            raise MalformedIngest(f"element 0x{head[0]:X} overruns {path}")
        out.append((head[0], view[start:start + size[0]]))
        pos = start + size[0]
    return out
