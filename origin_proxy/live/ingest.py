"""Incremental ingest parser, h11-style: bytes in, events out. Pure (no aiohttp, no files, no clock).

Reads what encoders push to a publishing point (issue 11, DESIGN.md §6):
- Smooth ingest (MS-SSTR live ingest, `ffmpeg -f ismv -movflags isml+frag_keyframe`): `ftyp`, the live server
  manifest `uuid` box (SMIL), `moov`, then `moof`/`mdat` pairs (tfxd and/or tfdt), ended by an `mfra`.
- CMAF ingest (DASH-IF Live Media Ingest, interface 1): CMAF header (`ftyp` + `moov` with `mvex`), then `styp`?
  `moof` `mdat` fragments; an `lmsg` brand in a `styp` or a final `mfra` ends the track. Per-segment POST/PUT bodies
  are parsed by one parser each, given the header the point already holds.

```python
parser = IngestParser()
parser.feed(chunk)            # as bytes arrive
while (event := parser.next_event()) is not NEED_DATA:
    ...                       # Header, Fragment, EndOfStream
parser.feed(b"")              # end of body: next_event() then says EndOfStream or raises (truncated)
```

Memory is bounded by one box (a moof, or its mdat) plus `max_box_bytes`; anything that cannot be ingest is
refused at its first box header, so a large body of garbage costs only its first bytes. Errors (errors.py):
MalformedIngest (400), IngestOutOfOrder (412, a fragment before any header), UnsupportedIngest (415).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Final

from ..errors import IngestOutOfOrder, MalformedBox, MalformedIngest, UnsupportedIngest
from ..isobmff.boxes.hdlr import parse_hdlr
from ..isobmff.boxes.mdhd import parse_mdhd
from ..isobmff.boxes.tkhd import parse_tkhd
from ..isobmff.build import box
from ..isobmff.codecs import describe_sample_entry, first_sample_entry, sample_entry_boxes
from ..isobmff.fragment import MovieFragment, TrackExtends, parse_moof
from ..isobmff.header import iter_boxes

MAX_HEADER_BYTES: Final = 1 << 20  # ftyp + SMIL + moov
MAX_BOX_BYTES: Final = 64 << 20  # one moof or mdat
PACKAGEABLE_CODECS: Final = frozenset({b"avc1", b"avc3", b"hvc1", b"hev1", b"mp4a", b"ac-3", b"ec-3", b"Opus",
                                       b"av01"})
HEADER_BOXES: Final = frozenset({b"ftyp", b"uuid", b"moov", b"free", b"skip", b"pdin", b"meta"})
SMOOTH_MANIFEST_UUID: Final = bytes.fromhex("a5d40b30e81411ddba2f0800200c9a66")  # MS-SSTR live server manifest


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = _NeedData()


@dataclass(frozen=True, eq=False)
class IngestTrack:
    """One track of an ingest header.

    Attributes:
        track_id: tkhd.track_ID; handler_type: b"vide"/b"soun"; codec: sample entry 4CC; codecs: RFC 6381 string.
        timescale: mdhd ticks per second; language: ISO 639-2/T.
        extends: its trex defaults. bitrate_bps: from the SMIL systemBitrate, else btrt avgBitrate, else None.
        width, height (video); sample_rate_hz, channel_count (audio).
        trak: the trak box (header included), for the per-track CMAF header.
    """

    track_id: int
    handler_type: bytes
    codec: bytes
    codecs: str
    timescale: int
    language: str
    extends: TrackExtends
    bitrate_bps: int | None
    width: int | None
    height: int | None
    sample_rate_hz: int | None
    channel_count: int | None
    trak: bytes
    sample_entry: bytes

    @property
    def kind(self) -> str:
        return "video" if self.handler_type == b"vide" else "audio"


@dataclass(frozen=True, eq=False)
class Header:
    """The stream header: raw `ftyp` and `moov` boxes, the SMIL server manifest (or b""), its media tracks."""

    ftyp: bytes
    moov: bytes
    smil: bytes
    mvhd: bytes
    tracks: tuple[IngestTrack, ...]

    def same_as(self, other: Header) -> bool:
        """An identical header (an encoder reconnecting): the same moov bytes."""
        return self.moov == other.moov

    def track(self, track_id: int) -> IngestTrack | None:
        return next((t for t in self.tracks if t.track_id == track_id), None)

    def cmaf_header(self, track_id: int) -> bytes:
        """A single-track CMAF header (ftyp + moov(mvhd, trak, mvex(trex))) from the ingest header (§8.8.1)."""
        track = self.track(track_id)
        if track is None:
            raise KeyError(track_id)
        e = track.extends
        trex = box(b"trex", struct.pack(">IIIIII", 0, e.track_id, 1, e.default_sample_duration,
                                        e.default_sample_size, e.default_sample_flags))
        ftyp = box(b"ftyp", b"cmfc" + struct.pack(">I", 0) + b"cmfciso6iso8")
        return ftyp + box(b"moov", self.mvhd + track.trak + box(b"mvex", trex))


@dataclass(frozen=True, eq=False)
class Fragment:
    """One `moof` + `mdat` (both whole boxes, headers included), its parsed moof, and whether a preceding `styp`
    said `lmsg` (the last segment of the track)."""

    moof: bytes
    mdat: bytes
    parsed: MovieFragment
    last: bool = False

    @property
    def nbytes(self) -> int:
        return len(self.moof) + len(self.mdat)


@dataclass(frozen=True)
class EndOfStream:
    """The body ended cleanly. `signalled`: an `mfra` or an `lmsg` segment said the stream is over (else the
    request merely ended: a per-segment POST/PUT, or an encoder that will reconnect)."""

    signalled: bool


Event = Header | Fragment | EndOfStream | _NeedData


class IngestParser:
    """Sans-I/O parser of one ingest request body.

    Args:
        header: the header a per-segment request continues (None: the body must start with one).
        max_box_bytes: cap on one moof or mdat (MalformedIngest beyond it).
    """

    def __init__(self, header: Header | None = None, max_box_bytes: int = MAX_BOX_BYTES) -> None:
        self.header = header
        self._max_box = max_box_bytes
        self._buf = bytearray()
        self._eof = False
        self._pending_header: dict[bytes, bytes] = {}
        self._header_bytes = 0
        self._moof: bytes | None = None
        self._lmsg = False
        self._done = False
        self.bytes_seen = 0

    @property
    def buffered_bytes(self) -> int:
        return len(self._buf)

    @property
    def finished(self) -> bool:
        """An `mfra` or `lmsg` segment ended the stream: nothing more is expected."""
        return self._done

    def feed(self, data: bytes) -> None:
        """Add body bytes; b"" = the body ended."""
        if not data:
            self._eof = True
            return
        if self._done:
            raise MalformedIngest("data after the end of the stream")
        self._buf += data
        self.bytes_seen += len(data)

    def next_event(self) -> Event:
        """The next event, or NEED_DATA. Raises MalformedIngest, IngestOutOfOrder or UnsupportedIngest."""
        while True:
            if self._done:
                return NEED_DATA
            span = self._box_header()
            if span is None:
                if self._eof:
                    if self._buf or self._moof is not None:
                        raise MalformedIngest("body ended inside a box (truncated fragment dropped)")
                    if self._pending_header:
                        raise MalformedIngest("body ended inside the header (no moov)")
                    self._done = True
                    return EndOfStream(False)
                return NEED_DATA
            fourcc, size = span
            if len(self._buf) < size:
                if self._eof:
                    raise MalformedIngest("body ended inside a box (truncated fragment dropped)")
                return NEED_DATA
            data = bytes(self._buf[:size])
            del self._buf[:size]
            event = self._on_box(fourcc, data)
            if event is not None:
                return event

    def _box_header(self) -> tuple[bytes, int] | None:
        if len(self._buf) < 8:
            return None
        size, fourcc = struct.unpack_from(">I4s", self._buf, 0)
        header = 8
        if size == 1:
            if len(self._buf) < 16:
                return None
            (size,) = struct.unpack_from(">Q", self._buf, 8)
            header = 16
        elif size == 0:
            raise MalformedIngest(f"box {fourcc!r} of size 0 (to end of body) in a live stream")
        if size < header:
            raise MalformedIngest(f"box {fourcc!r} claims {size} bytes, less than its header")
        known = HEADER_BOXES | {b"styp", b"moof", b"mdat", b"mfra", b"sidx", b"prft", b"emsg"}
        if fourcc not in known:
            raise MalformedIngest(f"unexpected top-level box {fourcc!r} in ingest")
        in_header = fourcc in HEADER_BOXES and (self.header is None or self._pending_header)
        limit = MAX_HEADER_BYTES if in_header else self._max_box
        if fourcc == b"mfra":
            limit = MAX_HEADER_BYTES
        if size > limit:
            raise MalformedIngest(f"box {fourcc!r} of {size} bytes exceeds the cap of {limit}")
        if fourcc in (b"moof", b"mdat") and self.header is None:
            raise IngestOutOfOrder(f"{fourcc.decode('latin-1')} before any header (ftyp/moov)")
        return fourcc, size

    def _on_box(self, fourcc: bytes, data: bytes) -> Event | None:
        if fourcc == b"moof":
            if self._moof is not None:
                raise MalformedIngest("moof without its mdat")
            self._moof = data
            return None
        if fourcc == b"mdat":
            if self._moof is None:
                raise MalformedIngest("mdat without a moof")
            moof, self._moof = self._moof, None
            return self._fragment(moof, data)
        if self._moof is not None:
            raise MalformedIngest(f"{fourcc!r} between a moof and its mdat")
        if fourcc == b"mfra":
            self._done = True
            return EndOfStream(True)
        if fourcc == b"styp":
            self._lmsg = b"lmsg" in [data[i : i + 4] for i in range(8, len(data) - 3, 4) if i != 12]
            return None
        if fourcc in (b"sidx", b"prft", b"emsg", b"free", b"skip"):
            return None
        if fourcc == b"ftyp" and self.header is not None and not self._pending_header:
            self._pending_header = {}  # a header sent again (per-segment ingest, reconnect): parsed anew
        self._header_bytes += len(data)
        if self._header_bytes > MAX_HEADER_BYTES:
            raise MalformedIngest("header larger than the cap")
        self._pending_header.setdefault(fourcc, data)
        if fourcc != b"moov":
            return None
        boxes, self._pending_header, self._header_bytes = self._pending_header, {}, 0
        self.header = parse_header(boxes.get(b"ftyp", b""), boxes[b"moov"], boxes.get(b"uuid", b""))
        return self.header

    def _fragment(self, moof: bytes, mdat: bytes) -> Fragment:
        assert self.header is not None
        extends = {t.track_id: t.extends for t in self.header.tracks}
        try:
            parsed = parse_moof(moof, extends)
        except MalformedBox as exc:
            raise MalformedIngest(f"bad moof: {exc}") from None
        payload = len(mdat) - (16 if struct.unpack_from(">I", mdat, 0)[0] == 1 else 8)
        for traf in parsed.trafs:
            if self.header.track(traf.track_id) is None:
                raise MalformedIngest(f"fragment of track {traf.track_id}, which the header does not declare")
            if traf.decode_time is None:
                raise MalformedIngest(f"fragment of track {traf.track_id} has neither tfdt nor tfxd")
            if len(traf.samples) == 0:
                raise MalformedIngest(f"fragment of track {traf.track_id} has no samples")
            if traf.data_offset < len(moof) or traf.data_offset + traf.data_bytes > len(moof) + len(mdat):
                raise MalformedIngest(f"fragment of track {traf.track_id}: sample data outside its mdat")
        if sum(t.data_bytes for t in parsed.trafs) > payload:
            raise MalformedIngest("sample sizes exceed the mdat")
        last, self._lmsg = self._lmsg, False
        if last:
            self._done = True
        return Fragment(moof, mdat, parsed, last)


_BITRATE = re.compile(rb'<(video|audio)[^>]*?systemBitrate="(\d+)"[^>]*>(.*?)</\1>', re.S)
_TRACK_ID = re.compile(rb'name="trackID"\s+value="(\d+)"')


def smil_bitrates(smil: bytes) -> dict[int, int]:
    """trackID -> systemBitrate (> 0) of a live server manifest's SMIL (MS-SSTR live ingest, the uuid box)."""
    found: dict[int, int] = {}
    for match in _BITRATE.finditer(smil):
        rate = int(match.group(2))
        track = _TRACK_ID.search(match.group(3))
        if track and rate > 0:
            found[int(track.group(1))] = rate
    return found


def parse_header(ftyp: bytes, moov: bytes, uuid: bytes = b"") -> Header:
    """Parse an ingest header's moov (with mvex; ISO/IEC 14496-12 §8.8.1) into its tracks.

    Raises MalformedIngest (bad boxes, no track, no mvex) or UnsupportedIngest (a codec we cannot package).
    """
    smil = uuid[24:] if uuid[8:24] == SMOOTH_MANIFEST_UUID else b""
    try:
        return _parse_header(ftyp, moov, smil)
    except MalformedBox as exc:
        raise MalformedIngest(f"bad ingest header: {exc}") from None


def _parse_header(ftyp: bytes, moov: bytes, smil: bytes) -> Header:
    children = {s.fourcc: s for s in iter_boxes(moov, 8, len(moov), "moov")}
    if b"mvhd" not in children:
        raise MalformedIngest("moov without mvhd")
    mvhd_span = children[b"mvhd"]
    mvhd = moov[mvhd_span.offset : mvhd_span.end]
    extends: dict[int, TrackExtends] = {}
    if b"mvex" not in children:
        raise MalformedIngest("header moov has no mvex: not a fragmented ingest stream")
    mvex = children[b"mvex"]
    for span in iter_boxes(moov, mvex.payload_offset, mvex.end, "moov/mvex"):
        if span.fourcc == b"trex" and span.size >= 32:
            _, track_id, _, d, s, f = struct.unpack_from(">IIIIII", moov, span.payload_offset)
            extends[track_id] = TrackExtends(track_id, d, s, f)
    bitrates = smil_bitrates(smil)
    tracks = []
    for span in iter_boxes(moov, 8, len(moov), "moov"):
        if span.fourcc == b"trak":
            track = _parse_trak(moov, span.offset, span.end, extends, bitrates)
            if track is not None:
                tracks.append(track)
    if not tracks:
        raise MalformedIngest("header has no audio or video track")
    return Header(ftyp, moov, smil, mvhd, tuple(tracks))


def _parse_trak(moov: bytes, start: int, end: int, extends: dict[int, TrackExtends],
                bitrates: dict[int, int]) -> IngestTrack | None:
    def find(parent_start: int, parent_end: int, path: str, fourcc: bytes):
        return next((s for s in iter_boxes(moov, parent_start, parent_end, path) if s.fourcc == fourcc), None)

    tkhd = find(start + 8, end, "trak", b"tkhd")
    mdia = find(start + 8, end, "trak", b"mdia")
    if tkhd is None or mdia is None:
        raise MalformedIngest("trak without tkhd or mdia")
    track_id, _ = parse_tkhd(moov[tkhd.payload_offset : tkhd.end], "trak/tkhd")
    hdlr = find(mdia.payload_offset, mdia.end, "mdia", b"hdlr")
    mdhd = find(mdia.payload_offset, mdia.end, "mdia", b"mdhd")
    minf = find(mdia.payload_offset, mdia.end, "mdia", b"minf")
    if hdlr is None or mdhd is None or minf is None:
        raise MalformedIngest(f"track {track_id}: mdia without hdlr, mdhd or minf")
    handler = parse_hdlr(moov[hdlr.payload_offset : hdlr.end], "mdia/hdlr")
    if handler not in (b"vide", b"soun"):
        return None
    timescale, _, language = parse_mdhd(moov[mdhd.payload_offset : mdhd.end], "mdia/mdhd")
    if timescale <= 0:
        raise MalformedIngest(f"track {track_id}: timescale 0")
    stbl = find(minf.payload_offset, minf.end, "minf", b"stbl")
    stsd = find(stbl.payload_offset, stbl.end, "stbl", b"stsd") if stbl else None
    entry = first_sample_entry(moov[stsd.payload_offset : stsd.end]) if stsd else None
    if not entry:
        raise MalformedIngest(f"track {track_id}: no sample entry")
    info = describe_sample_entry(entry, handler)
    if info.fourcc not in PACKAGEABLE_CODECS:
        raise UnsupportedIngest(f"track {track_id}: codec {info.fourcc.decode('latin-1')!r} cannot be packaged")
    bitrate = bitrates.get(track_id)
    btrt = sample_entry_boxes(entry, handler).get(b"btrt")
    if bitrate is None and btrt is not None and len(btrt) >= 12:
        bitrate = struct.unpack_from(">I", btrt, 8)[0] or None
    return IngestTrack(track_id, handler, info.fourcc, info.codec_string, timescale, language,
                       extends.get(track_id, TrackExtends(track_id)), bitrate, info.width, info.height,
                       info.sample_rate_hz, info.channel_count, moov[start:end], entry)
