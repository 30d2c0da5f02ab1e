"""Incremental Matroska reader for live feeds (Matroska spec, RFC 9559; EBML, RFC 8794): bytes in, events out.

Strategy (h11 style): `receive_data(data)` appends to one buffer, `next_event()` returns the next event or
NEED_DATA; `receive_data(b"")` marks the end of the input, after which the last event is EndOfStream.
Top level: EBML header, then a Segment of known or unknown size. In the Segment, Info and Tracks are kept
whole (their raw bytes), SeekHead, Void, Cues, Tags, Chapters, Attachments and anything unknown are skipped by
size without buffering; the first Cluster releases one Header event. Clusters of known or unknown size (an
unknown-size one ends at the next level-1 id or EBML header) give one Block event per SimpleBlock/BlockGroup and
ClusterEnd. Another EBML header after a Segment starts a new stream (SegmentEnd, then a new Header): that is how
a looping file or a reconnecting feed reads as one input.

Bounds: the EBML header + Info + Tracks together at most `max_header_bytes`, one Cluster's blocks at most
`max_cluster_bytes`; over either -> MalformedIngest (400). Input that does not start with the EBML id ->
UnsupportedIngest (415) after its first 4 bytes. Worst-case memory is one buffered element plus one read chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import MalformedIngest, UnsupportedIngest
from . import ebml
from .ebml import UNKNOWN_SIZE

MAX_HEADER_BYTES = 1 << 20
MAX_CLUSTER_BYTES = 32 << 20

TRACK_TYPE_VIDEO = 1
TRACK_TYPE_AUDIO = 2


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = _NeedData()


@dataclass(frozen=True)
class TrackInfo:
    """One TrackEntry: TrackNumber, TrackType (1 video, 2 audio, 17 subtitle ...), CodecID."""

    number: int
    track_type: int
    codec_id: str


@dataclass(frozen=True)
class Header:
    """What precedes the first Cluster of a Segment, as raw elements (id + size + data)."""

    ebml: bytes
    info: bytes
    tracks: bytes
    track_list: tuple[TrackInfo, ...]
    timestamp_scale_ns: int
    doc_type: str


@dataclass(frozen=True)
class Block:
    """A SimpleBlock or BlockGroup element, whole. `timestamp` = Cluster Timestamp + the block's relative one,
    in TimestampScale units; the signed 16-bit relative timestamp sits at `data[timestamp_pos:+2]`. `frames`:
    how many laced frames it holds (the lace count byte; lace sizes are never parsed)."""

    track: int
    timestamp: int
    keyframe: bool
    data: bytes
    timestamp_pos: int
    frames: int = 1


@dataclass(frozen=True)
class ClusterEnd:
    pass


@dataclass(frozen=True)
class SegmentEnd:
    pass


@dataclass(frozen=True)
class EndOfStream:
    """The input ended; `truncated` when it stopped inside an element."""

    truncated: bool


Event = Header | Block | ClusterEnd | SegmentEnd | EndOfStream


class MatroskaReader:
    """See the module docstring. Errors: MalformedIngest, UnsupportedIngest (errors.py)."""

    def __init__(self, max_header_bytes: int = MAX_HEADER_BYTES, max_cluster_bytes: int = MAX_CLUSTER_BYTES) -> None:
        self.max_header_bytes = max_header_bytes
        self.max_cluster_bytes = max_cluster_bytes
        self._buf = bytearray()
        self._pos = 0
        self._base = 0  # stream offset of _buf[0]
        self._eof = False
        self._done = False
        self._skip = 0
        self._seen_ebml = False
        self._ebml = b""
        self._doc_type = ""
        self._in_segment = False
        self._segment_end: int | None = None
        self._info = b""
        self._tracks = b""
        self._header_sent = False
        self._in_cluster = False
        self._cluster_end: int | None = None
        self._cluster_ts: int | None = None
        self._cluster_bytes = 0

    @property
    def offset(self) -> int:
        """Stream offset of the next unread byte."""
        return self._base + self._pos

    def receive_data(self, data: bytes) -> None:
        """Append input bytes; b"" means the input ended."""
        if not data:
            self._eof = True
            return
        if self._pos and (self._pos >= 1 << 16 or self._pos * 2 >= len(self._buf)):
            del self._buf[:self._pos]
            self._base += self._pos
            self._pos = 0
        self._buf += data

    def next_event(self) -> Event | _NeedData:
        """The next event, NEED_DATA, or (once the input ended and was read) EndOfStream, then NEED_DATA."""
        while True:
            event = self._step()
            if event is not None:
                return event

    def _need(self) -> Event | _NeedData:
        if not self._eof or self._done:
            return NEED_DATA
        self._done = True
        return EndOfStream(truncated=self._pos < len(self._buf) or self._skip > 0)

    def _step(self) -> Event | _NeedData | None:
        buf = self._buf
        if self._skip:
            take = min(self._skip, len(buf) - self._pos)
            self._pos += take
            self._skip -= take
            if self._skip:
                return self._need()
        here = self.offset
        if self._in_cluster and self._cluster_end is not None and here >= self._cluster_end:
            self._in_cluster = False
            return ClusterEnd()
        if self._in_segment and self._segment_end is not None and here >= self._segment_end:
            self._in_segment = False
            return SegmentEnd()
        if not self._seen_ebml and len(buf) - self._pos >= 4 and buf[self._pos:self._pos + 4] != b"\x1a\x45\xdf\xa3":
            raise UnsupportedIngest("not Matroska/WebM: the input does not start with an EBML header")
        head = ebml.read_id(buf, self._pos)
        if head is None:
            return self._need()
        element_id, id_len = head
        size_info = ebml.read_size(buf, self._pos + id_len)
        if size_info is None:
            return self._need()
        size, size_len = size_info
        header_len = id_len + size_len
        if self._in_cluster and self._cluster_end is None and (element_id in ebml.LEVEL1_IDS
                                                               or element_id == ebml.EBML):
            self._in_cluster = False
            return ClusterEnd()
        if self._in_segment and self._segment_end is None and element_id == ebml.EBML:
            self._in_segment = False
            return SegmentEnd()
        if not self._in_segment:
            return self._top_level(element_id, header_len, size)
        if self._in_cluster:
            return self._cluster_child(element_id, header_len, size)
        return self._segment_child(element_id, header_len, size)

    # -- levels ------------------------------------------------------------------------------------------------

    def _top_level(self, element_id: int, header_len: int, size: int) -> Event | _NeedData | None:
        if element_id == ebml.EBML:
            element = self._take(header_len, size, self.max_header_bytes, "EBML header")
            if element is None:
                return self._need()
            self._seen_ebml = True
            self._ebml = element
            self._doc_type = ""
            for child_id, data in ebml.children(memoryview(element)[header_len:], "EBML"):
                if child_id == ebml.DOC_TYPE:
                    self._doc_type = bytes(data).rstrip(b"\0").decode("ascii", "replace")
            if self._doc_type not in ("matroska", "webm"):
                raise UnsupportedIngest(f"EBML DocType {self._doc_type!r} is not matroska or webm")
            return None
        if element_id == ebml.SEGMENT:
            if not self._ebml:
                raise MalformedIngest("Segment before the EBML header")
            self._pos += header_len
            self._in_segment = True
            self._segment_end = None if size == UNKNOWN_SIZE else self.offset + size
            self._info = self._tracks = b""
            self._header_sent = False
            return None
        if size == UNKNOWN_SIZE:
            raise MalformedIngest(f"top-level element 0x{element_id:X} of unknown size")
        self._pos += header_len
        self._skip = size
        return None

    def _segment_child(self, element_id: int, header_len: int, size: int) -> Event | _NeedData | None:
        if element_id == ebml.CLUSTER:
            if not self._header_sent:
                self._header_sent = True
                return self._header()
            if size != UNKNOWN_SIZE and size > self.max_cluster_bytes:
                raise MalformedIngest(f"Cluster of {size} bytes over the cap of {self.max_cluster_bytes}")
            self._pos += header_len
            self._in_cluster = True
            self._cluster_end = None if size == UNKNOWN_SIZE else self.offset + size
            self._cluster_ts = None
            self._cluster_bytes = 0
            return None
        if size == UNKNOWN_SIZE:
            raise MalformedIngest(f"Segment child 0x{element_id:X} of unknown size")
        if element_id in (ebml.INFO, ebml.TRACKS) and not self._header_sent:
            room = self.max_header_bytes - len(self._ebml) - len(self._info) - len(self._tracks)
            element = self._take(header_len, size, room, "stream header (EBML + Info + Tracks)")
            if element is None:
                return self._need()
            if element_id == ebml.INFO:
                self._info = element
            else:
                self._tracks = element
            return None
        self._pos += header_len
        self._skip = size
        return None

    def _cluster_child(self, element_id: int, header_len: int, size: int) -> Event | _NeedData | None:
        if size == UNKNOWN_SIZE:
            raise MalformedIngest(f"Cluster child 0x{element_id:X} of unknown size")
        if element_id not in (ebml.TIMESTAMP, ebml.SIMPLE_BLOCK, ebml.BLOCK_GROUP):
            self._pos += header_len
            self._skip = size
            return None
        element = self._take(header_len, size, self.max_cluster_bytes - self._cluster_bytes, "Cluster")
        if element is None:
            return self._need()
        self._cluster_bytes += len(element)
        if element_id == ebml.TIMESTAMP:
            self._cluster_ts = ebml.read_uint(element[header_len:])
            return None
        if self._cluster_ts is None:
            raise MalformedIngest("a block before its Cluster's Timestamp")
        return self._block(element_id, element, header_len)

    # -- pieces ------------------------------------------------------------------------------------------------

    def _take(self, header_len: int, size: int, cap: int, what: str) -> bytes | None:
        """The whole element at _pos (consumed), None if not all here yet; MalformedIngest over `cap`."""
        if size == UNKNOWN_SIZE:
            raise MalformedIngest(f"{what}: element of unknown size")
        if header_len + size > cap:
            raise MalformedIngest(f"{what} over the cap ({header_len + size} bytes, room for {max(cap, 0)})")
        end = self._pos + header_len + size
        if end > len(self._buf):
            return None
        element = bytes(self._buf[self._pos:end])
        self._pos = end
        return element

    def _header(self) -> Header:
        if not self._tracks:
            raise MalformedIngest("a Cluster before the Tracks element")
        scale = 1_000_000
        if self._info:
            head = len(self._info) - _data_len(self._info)
            for child_id, data in ebml.children(memoryview(self._info)[head:], "Info"):
                if child_id == ebml.TIMESTAMP_SCALE:
                    scale = ebml.read_uint(data)
        if scale <= 0:
            raise MalformedIngest("TimestampScale 0")
        tracks = []
        head = len(self._tracks) - _data_len(self._tracks)
        for child_id, entry in ebml.children(memoryview(self._tracks)[head:], "Tracks"):
            if child_id != ebml.TRACK_ENTRY:
                continue
            number = track_type = 0
            codec = ""
            for field_id, data in ebml.children(entry, "Tracks/TrackEntry"):
                if field_id == ebml.TRACK_NUMBER:
                    number = ebml.read_uint(data)
                elif field_id == ebml.TRACK_TYPE:
                    track_type = ebml.read_uint(data)
                elif field_id == ebml.CODEC_ID:
                    codec = bytes(data).rstrip(b"\0").decode("ascii", "replace")
            tracks.append(TrackInfo(number, track_type, codec))
        if not tracks:
            raise MalformedIngest("Tracks without a TrackEntry")
        return Header(self._ebml, self._info, self._tracks, tuple(tracks), scale, self._doc_type)

    def _block(self, element_id: int, element: bytes, header_len: int) -> Block:
        keyframe = True
        block_start = header_len
        block_len = len(element) - header_len
        if element_id == ebml.BLOCK_GROUP:
            found = None
            pos = header_len
            while pos < len(element):
                head = ebml.read_id(element, pos)
                size = ebml.read_size(element, pos + head[1]) if head is not None else None
                if head is None or size is None or size[0] == UNKNOWN_SIZE:
                    raise MalformedIngest("bad element framing in a BlockGroup")
                start = pos + head[1] + size[1]
                if start + size[0] > len(element):
                    raise MalformedIngest("BlockGroup child overruns its group")
                if head[0] == ebml.BLOCK:
                    found = (start, size[0])
                elif head[0] == ebml.REFERENCE_BLOCK:
                    keyframe = False
                pos = start + size[0]
            if found is None:
                raise MalformedIngest("BlockGroup without a Block")
            block_start, block_len = found
        track = ebml.read_size(element, block_start)
        if track is None or track[0] == UNKNOWN_SIZE or track[1] + 3 > block_len:
            raise MalformedIngest("Block too short for its track number, timestamp and flags")
        ts_pos = block_start + track[1]
        relative = int.from_bytes(element[ts_pos:ts_pos + 2], "big", signed=True)
        flags = element[ts_pos + 2]
        if element_id == ebml.SIMPLE_BLOCK:
            keyframe = bool(flags & 0x80)
        frames = 1
        if flags & 0x06:
            if track[1] + 4 > block_len:
                raise MalformedIngest("laced Block without its lace count")
            frames = element[ts_pos + 3] + 1
        return Block(track[0], self._cluster_ts + relative, keyframe, element, ts_pos, frames)


def _data_len(element: bytes) -> int:
    head = ebml.read_id(element, 0)
    size = ebml.read_size(element, head[1])
    return size[0]
