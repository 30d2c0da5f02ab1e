"""mfra: MovieFragmentRandomAccessBox, ISO/IEC 14496-12 §8.8.9-§8.8.11 (tfra per track, then mfro). Writer and
reader of what we write (version 1 tfra, 1-byte traf/trun/sample numbers).
"""

from __future__ import annotations

import struct

from ..build import box


def mfra_box(entries: dict[int, list[tuple[int, int]]]) -> bytes:
    """An mfra of `entries`: track_ID -> [(time in track ticks, moof offset in bytes from the file start)], each
    pointing at the first sample of the fragment's first traf and trun. The mfro's size is the whole mfra's."""
    body = b""
    for track_id, points in sorted(entries.items()):
        records = b"".join(struct.pack(">QQBBB", time, offset, 1, 1, 1) for time, offset in points)
        body += box(b"tfra", struct.pack(">IIII", 1 << 24, track_id, 0, len(points)) + records)
    mfro_size = 16
    total = 8 + len(body) + mfro_size
    return box(b"mfra", body + box(b"mfro", struct.pack(">II", 0, total)))


def parse_tfra(payload: bytes) -> tuple[int, list[tuple[int, int]]]:
    """(track_ID, [(time, moof offset)]) of a tfra payload (after its box header). Raises ValueError if short."""
    if len(payload) < 16:
        raise ValueError("tfra truncated")
    version_flags, track_id, sizes, count = struct.unpack_from(">IIII", payload, 0)
    version = version_flags >> 24
    field = 8 if version == 1 else 4
    lengths = [((sizes >> shift) & 3) + 1 for shift in (4, 2, 0)]
    record = 2 * field + sum(lengths)
    if 16 + count * record > len(payload):
        raise ValueError("tfra entries overrun the box")
    fmt = ">QQ" if version == 1 else ">II"
    points = [struct.unpack_from(fmt, payload, 16 + i * record) for i in range(count)]
    return track_id, [(int(t), int(o)) for t, o in points]
