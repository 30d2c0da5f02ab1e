"""Hand-built and hand-edited ISO-BMFF boxes for hostile-input tests (independent of origin_proxy's parser).

`make_box` frames a payload; `BoxTree` splits a real file into top-level boxes with moov opened down to the
sample tables, lets a test overwrite fields, and serializes it back with recomputed sizes. Edit only
moov-at-end files: the mdat stays where it was, so chunk offsets stay true unless a test breaks them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts"}


def make_box(fourcc: bytes, payload: bytes, *, size: int | None = None, largesize: int | None = None) -> bytes:
    """A box; `size`/`largesize` override the header fields to lie about the length."""
    if largesize is not None:
        return struct.pack(">I4sQ", 1, fourcc, largesize) + payload
    return struct.pack(">I4s", len(payload) + 8 if size is None else size, fourcc) + payload


@dataclass
class Box:
    fourcc: bytes
    payload: bytes = b""
    children: list[Box] | None = None

    def encode(self) -> bytes:
        body = b"".join(child.encode() for child in self.children) if self.children is not None else self.payload
        return make_box(self.fourcc, body)

    def find_all(self, fourcc: bytes) -> list[Box]:
        found = [self] if self.fourcc == fourcc else []
        for child in self.children or ():
            found += child.find_all(fourcc)
        return found

    def find(self, fourcc: bytes) -> Box:
        return self.find_all(fourcc)[0]


def _split(data: bytes, open_containers: bool) -> list[Box]:
    boxes, pos = [], 0
    while pos + 8 <= len(data):
        size, fourcc = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            size, header = struct.unpack_from(">Q", data, pos + 8)[0], 16
        elif size == 0:
            size = len(data) - pos
        payload = data[pos + header : pos + size]
        if open_containers and fourcc in CONTAINERS:
            boxes.append(Box(fourcc, children=_split(payload, True)))
        else:
            boxes.append(Box(fourcc, payload))
        pos += size
    return boxes


@dataclass
class BoxTree:
    boxes: list[Box] = field(default_factory=list)

    @classmethod
    def read(cls, path) -> BoxTree:
        top = _split(path.read_bytes(), open_containers=False)
        for index, box in enumerate(top):
            if box.fourcc == b"moov":
                top[index] = Box(b"moov", children=_split(box.payload, True))
        return cls(top)

    @property
    def moov(self) -> Box:
        return next(box for box in self.boxes if box.fourcc == b"moov")

    def encode(self) -> bytes:
        return b"".join(box.encode() for box in self.boxes)
