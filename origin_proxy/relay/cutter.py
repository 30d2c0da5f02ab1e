"""GOP cutter: reader events in, the relay's own stream header and Clusters out (pure; issue 12 items 2-3).

The output is one Matroska stream a viewer can join at any GOP: `StreamHeader.data` is the EBML header, a
Segment of unknown size, Info without Duration and Tracks (no SeekHead, Cues or Tags: they would point at bytes
that never come). Then Clusters, re-made: a new Cluster begins at every key frame of the first video track (or,
for audio-only feeds, at the first block 1 s after the GOP's start), at every input Cluster end (so low_latency
forwards what arrived) and wherever a block's relative timestamp would leave int16. Blocks are copied whole with
only their 2-byte relative timestamp rewritten, so the payload, lacing and flags are the feed's own. Blocks
before the first key frame are dropped.

Timestamps are the feed's, in TimestampScale units. When the input starts a new Segment with the same Tracks
(a looping file, a reconnecting pull), its timestamps are shifted to continue after the last one sent (one
frame gap), so every track stays monotonic; different Tracks give a new StreamHeader with `changed=True`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import MalformedIngest
from ..mkv import ebml
from ..mkv.reader import TRACK_TYPE_VIDEO, Block, ClusterEnd, EndOfStream, Event, Header, SegmentEnd

AUDIO_SEGMENT_S = 1.0
MAX_GOP_BYTES = 64 << 20
_UNKNOWN_SEGMENT_SIZE = b"\x01\xff\xff\xff\xff\xff\xff\xff"


@dataclass(frozen=True)
class StreamHeader:
    data: bytes
    header: Header
    changed: bool  # False for the first header of a feed and for a new Segment with the same Tracks


@dataclass(frozen=True)
class ClusterOut:
    """One output Cluster. `gop_start`: it begins a GOP (first video block a key frame). Times in seconds."""

    data: bytes
    gop_start: bool
    start_s: float
    end_s: float


@dataclass(frozen=True)
class StreamEnd:
    truncated: bool


Output = StreamHeader | ClusterOut | StreamEnd


def relay_header(header: Header) -> bytes:
    """EBML header + Segment (unknown size) + Info without Duration + Tracks, as bytes."""
    info = b""
    if header.info:
        head = _head_len(header.info)
        kept = b"".join(ebml.encode_element(child_id, bytes(data))
                        for child_id, data in ebml.children(memoryview(header.info)[head:], "Info")
                        if child_id not in (ebml.DURATION, ebml.VOID, ebml.CRC32))
        info = ebml.encode_element(ebml.INFO, kept)
    segment_id = ebml.SEGMENT.to_bytes(4, "big")
    return header.ebml + segment_id + _UNKNOWN_SEGMENT_SIZE + info + header.tracks


class GopCutter:
    """push(event) -> outputs. Raises MalformedIngest for a GOP over `max_gop_bytes` or a Cluster before a header."""

    def __init__(self, max_gop_bytes: int = MAX_GOP_BYTES) -> None:
        self.max_gop_bytes = max_gop_bytes
        self.header: Header | None = None
        self.scale_s = 1e-3
        self._video_track: int | None = None
        self._offset = 0
        self._rebase = False
        self._last_ts: int | None = None  # output ticks
        self._gap = 1
        self._last_by_track: dict[int, int] = {}
        self._started = False
        self._gop_start_ts = 0
        self._gop_bytes = 0
        self._cluster_ts: int | None = None
        self._cluster_last = 0
        self._blocks: list[bytes] = []
        self._cluster_gop_start = False

    def push(self, event: Event) -> list[Output]:
        if isinstance(event, Header):
            return self._on_header(event)
        if isinstance(event, Block):
            return self._on_block(event)
        if isinstance(event, (ClusterEnd, SegmentEnd)):
            return self._close()
        if isinstance(event, EndOfStream):
            return [*self._close(), StreamEnd(event.truncated)]
        return []

    def _on_header(self, header: Header) -> list[Output]:
        out = self._close()
        same = self.header is not None and self.header.tracks == header.tracks \
            and self.header.timestamp_scale_ns == header.timestamp_scale_ns
        if self.header is not None and same:
            self._rebase = self._last_ts is not None
            return out
        self.header = header
        self.scale_s = header.timestamp_scale_ns / 1e9
        self._video_track = next((t.number for t in header.track_list if t.track_type == TRACK_TYPE_VIDEO), None)
        changed = self._started or self._last_ts is not None
        self._offset, self._rebase, self._last_ts, self._started = 0, False, None, False
        self._last_by_track.clear()
        return [*out, StreamHeader(relay_header(header), header, changed)]

    def _on_block(self, block: Block) -> list[Output]:
        if self.header is None:
            raise MalformedIngest("a block before the stream header")
        if self._rebase:
            self._offset = self._last_ts + self._gap - block.timestamp
            self._rebase = False
        ts = block.timestamp + self._offset
        previous = self._last_by_track.get(block.track)
        if previous is not None and 0 < ts - previous:
            self._gap = max(self._gap, min(ts - previous, int(1 / self.scale_s)))
        self._last_by_track[block.track] = ts
        self._last_ts = ts if self._last_ts is None else max(self._last_ts, ts)
        if self._video_track is not None:
            new_gop = block.track == self._video_track and block.keyframe
        else:
            new_gop = not self._started or (ts - self._gop_start_ts) * self.scale_s >= AUDIO_SEGMENT_S
        if not self._started and not new_gop:
            return []  # wait for the first key frame
        out: list[Output] = []
        if new_gop:
            out += self._close()
            self._started = True
            self._gop_start_ts = ts
            self._gop_bytes = 0
            self._cluster_gop_start = True
        elif self._cluster_ts is not None and not -32768 <= ts - self._cluster_ts <= 32767:
            out += self._close()
        self._gop_bytes += len(block.data)
        if self._gop_bytes > self.max_gop_bytes:
            raise MalformedIngest(f"a GOP over the cap of {self.max_gop_bytes} bytes (no key frame)")
        if self._cluster_ts is None:
            self._cluster_ts = ts
        data = bytearray(block.data)
        data[block.timestamp_pos:block.timestamp_pos + 2] = (ts - self._cluster_ts).to_bytes(2, "big", signed=True)
        self._blocks.append(bytes(data))
        self._cluster_last = max(self._cluster_last, ts)
        return out

    def _close(self) -> list[Output]:
        if self._cluster_ts is None:
            return []
        ts_data = self._cluster_ts.to_bytes(8, "big").lstrip(b"\0") or b"\0"
        body = ebml.encode_element(ebml.TIMESTAMP, ts_data) + b"".join(self._blocks)
        cluster = ClusterOut(ebml.encode_element(ebml.CLUSTER, body), self._cluster_gop_start,
                             self._cluster_ts * self.scale_s, self._cluster_last * self.scale_s)
        self._cluster_ts, self._blocks, self._cluster_gop_start, self._cluster_last = None, [], False, 0
        return [cluster]


def _head_len(element: bytes) -> int:
    head = ebml.read_id(element, 0)
    return head[1] + ebml.read_size(element, head[1])[1]
