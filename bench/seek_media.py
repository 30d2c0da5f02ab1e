"""The > 4 GiB co64 file of the seek bench (bench/seek.py), made from any moov-at-end MP4. No dependency beyond
numpy, so tests can make one too (tests/unit/isobmff/test_co64_large_file.py)."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

CO64_HOLE_BYTES = 9 << 29  # 4.5 GiB of hole before the samples: every chunk offset is over 2^32


def _boxes(data: bytes, start: int, end: int):
    """(offset, header size, size, type) of the boxes in data[start:end]."""
    at = start
    while at + 8 <= end:
        size, kind = int.from_bytes(data[at:at + 4], "big"), data[at + 4:at + 8]
        header = 8
        if size == 1:
            size, header = int.from_bytes(data[at + 8:at + 16], "big"), 16
        elif size == 0:
            size = end - at
        yield at, header, size, kind
        at += size


def _co64_moov(moov: bytes, shift: int) -> bytes:
    """The moov with every stco turned into a co64 whose offsets are `shift` bytes later (§8.7.5)."""
    containers = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}

    def walk(box: bytes) -> bytes:
        kind, header = box[4:8], 8
        if kind == b"stco":
            count = int.from_bytes(box[12:16], "big")
            offsets = np.frombuffer(box, ">u4", count, 16).astype(np.uint64) + np.uint64(shift)
            body = box[8:16] + offsets.astype(">u8").tobytes()
            return (8 + len(body)).to_bytes(4, "big") + b"co64" + body
        if kind not in containers:
            return box
        children = b"".join(walk(box[o:o + s]) for o, _, s, _ in _boxes(box, header, len(box)))
        return (header + len(children)).to_bytes(4, "big") + kind + children

    return walk(moov)


def make_co64(source: Path, out: Path) -> None:
    """A > 4 GiB file from `source` (moov at the end): ftyp, an mdat with a 64-bit size whose first 4.5 GiB are a
    hole (sparse on disk), then source's sample bytes, then its moov with co64 chunk offsets."""
    data = source.read_bytes()
    top = {kind: (o, h, s) for o, h, s, kind in _boxes(data, 0, len(data))}
    (fo, _, fs), (mo, mh, ms), (vo, _, vs) = top[b"ftyp"], top[b"mdat"], top[b"moov"]
    payload = data[mo + mh:mo + ms]
    new_payload_at = fs + 16 + CO64_HOLE_BYTES
    tmp = out.with_suffix(".tmp.mp4")
    with tmp.open("wb") as f:
        f.write(data[fo:fo + fs])
        f.write((1).to_bytes(4, "big") + b"mdat" + (16 + CO64_HOLE_BYTES + len(payload)).to_bytes(8, "big"))
        f.seek(CO64_HOLE_BYTES, io.SEEK_CUR)
        f.write(payload)
        f.write(_co64_moov(data[vo:vo + vs], new_payload_at - (mo + mh)))
    tmp.rename(out)
