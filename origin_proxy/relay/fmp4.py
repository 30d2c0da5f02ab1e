"""Fragmented MP4 feeds for the relay (issue 12 item 5; ISO/IEC 14496-12 §8.8): bytes in, the same outputs as
the Matroska cutter out (pure).

Top-level boxes are framed incrementally: ftyp and moov (at most MAX_HEADER_BYTES together) make the viewers'
header; each moof is parsed with isobmff/fragment.py (trex defaults from the moov's mvex) and goes out with its
mdat as one ClusterOut; a GOP begins at a fragment whose first video sample is a sync sample (audio-only: every
fragment 1 s after the GOP's start). styp, sidx, prft, emsg, free and unknown boxes are dropped; fragments before
the first sync sample too. Bad framing -> MalformedIngest (400); not starting with ftyp/styp/moov -> 415.
"""

from __future__ import annotations

import struct

from ..errors import MalformedIngest, MalformedMedia, UnsupportedIngest
from ..isobmff.fragment import TrackExtends, parse_moof
from ..isobmff.header import iter_boxes
from ..mkv.reader import TRACK_TYPE_AUDIO, TRACK_TYPE_VIDEO, Header, TrackInfo
from .cutter import AUDIO_SEGMENT_S, ClusterOut, Output, StreamEnd, StreamHeader

MAX_HEADER_BYTES = 1 << 20
MAX_FRAGMENT_BYTES = 32 << 20
_FIRST_BOXES = (b"ftyp", b"styp", b"moov", b"free", b"skip")


class Fmp4Cutter:
    """receive(data) -> outputs; b"" ends the input."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._ftyp = b""
        self._header: bytes | None = None
        self._extends: dict[int, TrackExtends] = {}
        self._timescales: dict[int, int] = {}
        self._video: int | None = None
        self._moof: bytes | None = None
        self._gop_start_s: float | None = None
        self._checked = False

    def receive(self, data: bytes) -> list[Output]:
        out: list[Output] = []
        if not data:
            return [StreamEnd(truncated=bool(self._buf))]
        self._buf += data
        while len(self._buf) >= 8:
            size, fourcc = struct.unpack_from(">I4s", self._buf, 0)
            if not self._checked:
                if fourcc not in _FIRST_BOXES:
                    raise UnsupportedIngest("not fragmented MP4: the input does not start with ftyp, styp or moov")
                self._checked = True
            head = 8
            if size == 1:
                if len(self._buf) < 16:
                    break
                (size,) = struct.unpack_from(">Q", self._buf, 8)
                head = 16
            if size < head:
                raise MalformedIngest(f"box {fourcc!r} of size {size}")
            cap = MAX_HEADER_BYTES if fourcc in (b"ftyp", b"moov") else MAX_FRAGMENT_BYTES
            if size > cap:
                raise MalformedIngest(f"box {fourcc.decode('latin-1')} of {size} bytes over the cap of {cap}")
            if len(self._buf) < size:
                break
            box = bytes(self._buf[:size])
            del self._buf[:size]
            out += self._box(fourcc, box)
        return out

    def _box(self, fourcc: bytes, box: bytes) -> list[Output]:
        if fourcc == b"ftyp":
            self._ftyp = box
        elif fourcc == b"moov":
            return self._on_moov(box)
        elif fourcc == b"moof":
            if self._header is None:
                raise MalformedIngest("a moof before the moov")
            self._moof = box
        elif fourcc == b"mdat" and self._moof is not None:
            moof, self._moof = self._moof, None
            return self._on_fragment(moof, box)
        return []

    def _on_moov(self, moov: bytes) -> list[Output]:
        tracks = []
        try:
            for trak in _children(moov, b"trak"):
                track_id = _track_id(_child(trak, b"tkhd"))
                mdia = _child(trak, b"mdia")
                mdhd = _child(mdia, b"mdhd")
                version = mdhd[8]
                (timescale,) = struct.unpack_from(">I", mdhd, 28 if version == 1 else 20)
                handler = _child(mdia, b"hdlr")[16:20]
                kind = {b"vide": TRACK_TYPE_VIDEO, b"soun": TRACK_TYPE_AUDIO}.get(handler, 0)
                self._timescales[track_id] = timescale or 1
                tracks.append(TrackInfo(track_id, kind, handler.decode("latin-1")))
            for trex in _children(_child(moov, b"mvex"), b"trex"):
                track_id, _, duration, size, flags = struct.unpack_from(">5I", trex, 12)
                self._extends[track_id] = TrackExtends(track_id, duration, size, flags)
        except (struct.error, IndexError, MalformedMedia) as exc:
            raise MalformedIngest(f"moov of a fragmented MP4 feed: {exc}") from None
        if not tracks:
            raise MalformedIngest("moov without tracks")
        self._video = next((t.number for t in tracks if t.track_type == TRACK_TYPE_VIDEO), None)
        changed = self._header is not None
        self._header = self._ftyp + moov
        self._gop_start_s = None
        header = Header(b"", b"", moov, tuple(tracks), 1_000_000, "mp4")
        return [StreamHeader(self._header, header, changed)]

    def _on_fragment(self, moof: bytes, mdat: bytes) -> list[Output]:
        try:
            fragment = parse_moof(moof, self._extends)
        except MalformedMedia as exc:
            raise MalformedIngest(f"moof: {exc}") from None
        trafs = {t.track_id: t for t in fragment.trafs}
        lead = trafs.get(self._video) if self._video is not None else fragment.trafs[0]
        if lead is None:
            lead, sync = fragment.trafs[0], False
        else:
            sync = lead.starts_with_sync
        start_s = (lead.decode_time or 0) / self._timescales.get(lead.track_id, 1)
        end_s = start_s + lead.duration / self._timescales.get(lead.track_id, 1)
        if self._video is None:
            sync = self._gop_start_s is None or start_s - self._gop_start_s >= AUDIO_SEGMENT_S
        if self._gop_start_s is None and not sync:
            return []
        if sync:
            self._gop_start_s = start_s
        return [ClusterOut(moof + mdat, sync, start_s, end_s)]


def _children(box: bytes, fourcc: bytes) -> list[bytes]:
    head = 16 if struct.unpack_from(">I", box, 0)[0] == 1 else 8
    return [box[s.offset:s.end] for s in iter_boxes(box, head, len(box), fourcc.decode("latin-1"))
            if s.fourcc == fourcc]


def _child(box: bytes, fourcc: bytes) -> bytes:
    found = _children(box, fourcc)
    if not found:
        raise MalformedIngest(f"no {fourcc.decode('latin-1')} box")
    return found[0]


def _track_id(tkhd: bytes) -> int:
    return struct.unpack_from(">I", tkhd, 28 if tkhd[8] == 1 else 20)[0]
