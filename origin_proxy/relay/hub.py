"""Fan-out hub (async, no aiohttp): one feed's immutable GOP segments shared by every viewer (issue 12 items 3-4).

A `Publisher` is fed bytes synchronously (`receive`), runs the pure reader and cutter, and hands each finished
piece to every viewer with `Viewer.offer`, which never blocks: the feed's reader never waits for a viewer.
Each viewer has one task (its HTTP handler running `Viewer.run(write)`) and a bounded queue of shared chunks:
- GOP mode: a chunk is one whole GOP (`bytes`, joined once per feed); low_latency: a chunk is one Cluster, sent
  as soon as it was read.
- lag = the feed's live edge minus the start of what the viewer is writing or will write next. Over
  `viewer_buffer_s`, the oldest GOPs not yet begun are dropped whole (never the newest, never part of one);
  over `viewer_max_lag_s` the viewer is disconnected (its task cancelled, so a stalled write ends too).
  A viewer's queue therefore holds at most about `viewer_buffer_s` of feed plus one GOP, all shared bytes.
A new viewer gets the stream header, the last `backlog_gops` complete GOPs (low_latency: plus the clusters of
the GOP in progress), then live; with backlog_gops 0 it waits for the next key frame.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from prometheus_client import Counter, Gauge

from ..errors import Conflict
from ..mkv.reader import NEED_DATA, MatroskaReader
from .cutter import ClusterOut, GopCutter, StreamEnd, StreamHeader
from .fmp4 import Fmp4Cutter

FEED_BYTES = Counter("origin_proxy_relay_feed_bytes", "Bytes read from relay feeds.", ["feed"])
VIEWER_BYTES = Counter("origin_proxy_relay_viewer_bytes", "Bytes written to relay viewers.", ["feed"])
DROPPED_GOPS = Counter("origin_proxy_relay_dropped_gops", "Whole GOPs skipped for viewers that fell behind.",
                       ["feed"])
DISCONNECTS = Counter("origin_proxy_relay_lag_disconnects", "Viewers disconnected for being too far behind.",
                      ["feed"])
VIEWERS = Gauge("origin_proxy_relay_viewers", "Viewers connected now.", ["feed"], multiprocess_mode="livesum")
FEED_BITRATE = Gauge("origin_proxy_relay_feed_bitrate_bps", "Feed bitrate over its recent GOPs (bit/s).",
                     ["feed"], multiprocess_mode="livemax")


#: Largest piece handed to a viewer's write: a GOP is shared bytes, but what the transport cannot send at once it
#: copies into its own buffer, so whole-GOP writes would cost a GOP of memory per slow viewer.
WRITE_SLICE = 64 << 10


@dataclass(frozen=True)
class RelayPolicy:
    """The `relay:` settings a feed runs with (config.RelaySettings' fields)."""

    backlog_gops: int = 2
    viewer_buffer_s: float = 10.0
    viewer_max_lag_s: float = 60.0
    low_latency: bool = False


@dataclass(frozen=True)
class Chunk:
    gop_seq: int
    data: bytes
    start_s: float
    end_s: float
    gop_start: bool


@dataclass
class Gop:
    seq: int
    start_s: float
    end_s: float
    clusters: list[bytes] = field(default_factory=list)
    data: bytes = b""

    @property
    def size(self) -> int:
        return len(self.data) if self.data else sum(map(len, self.clusters))


class Viewer:
    """One viewer's queue. `run(write)` writes header, backlog and live chunks until the feed ends."""

    def __init__(self, feed: Feed, header: bytes, backlog: list[Chunk], wait_key: bool) -> None:
        self.feed = feed
        self.header = header
        self.pending: deque[Chunk] = deque(backlog)
        self.wait_key = wait_key
        self.wake = asyncio.Event()
        self.finished = False
        self.disconnected = False
        self.task: asyncio.Task | None = None
        self.writing: Chunk | None = None
        self.sent_gop = -1
        self.dropped_gops = 0
        self.bytes_sent = 0
        self.first_chunk_s: float | None = None
        self.joined_edge_s = feed.edge_s

    def lag_s(self) -> float:
        head = self.writing or (self.pending[0] if self.pending else None)
        return 0.0 if head is None else max(0.0, self.feed.edge_s - head.start_s)

    def offer(self, chunk: Chunk) -> None:
        """Queue a chunk (never blocks); drop whole GOPs or disconnect as the policy says."""
        if self.finished:
            return
        if self.wait_key:
            if not chunk.gop_start:
                return
            self.wait_key = False
        self.pending.append(chunk)
        policy = self.feed.policy
        while self.lag_s() > policy.viewer_buffer_s and self._drop_oldest_gop():
            pass
        if self.lag_s() > policy.viewer_max_lag_s:
            self.disconnect()
        self.wake.set()

    def _drop_oldest_gop(self) -> bool:
        newest = self.pending[-1].gop_seq
        victim = next((c.gop_seq for c in self.pending if c.gop_start and c.gop_seq != newest
                       and c.gop_seq != self.sent_gop), None)
        if victim is None:
            return False
        self.pending = deque(c for c in self.pending if c.gop_seq != victim)
        self.dropped_gops += 1
        self.feed.dropped_gops += 1
        DROPPED_GOPS.labels(self.feed.name).inc()
        return True

    def finish(self) -> None:
        """The feed ended: send what is queued, then end the body."""
        self.finished = True
        self.wake.set()

    def disconnect(self) -> None:
        self.finished = self.disconnected = True
        self.pending.clear()
        self.feed.disconnects += 1
        DISCONNECTS.labels(self.feed.name).inc()
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()
        self.wake.set()

    async def run(self, write: Callable[[bytes], Awaitable[None]]) -> bool:
        """Write until the feed ends (True) or this viewer is disconnected for lag (False)."""
        self.task = asyncio.current_task()
        try:
            await write(self.header)
            while True:
                while not self.pending and not self.finished:
                    self.wake.clear()
                    await self.wake.wait()
                if self.disconnected:
                    return False
                if not self.pending:
                    return True
                chunk = self.writing = self.pending.popleft()
                if self.first_chunk_s is None:
                    self.first_chunk_s = chunk.start_s
                self.sent_gop = chunk.gop_seq
                view = memoryview(chunk.data)
                for pos in range(0, len(view), WRITE_SLICE):  # the transport copies at most a slice per viewer
                    await write(view[pos:pos + WRITE_SLICE])
                self.writing = None
                self.bytes_sent += len(chunk.data)
                self.feed.bytes_out += len(chunk.data)
                VIEWER_BYTES.labels(self.feed.name).inc(len(chunk.data))
        except asyncio.CancelledError:
            if self.disconnected:
                return False
            raise
        finally:
            self.feed.remove_viewer(self)


class Feed:
    """One named feed: header, recent GOPs, viewers, at most one publisher."""

    def __init__(self, name: str, policy: RelayPolicy) -> None:
        self.name = name
        self.policy = policy
        self.header: bytes | None = None
        self.doc_type = "matroska"
        self.tracks: list[dict] = []
        self.gops: deque[Gop] = deque(maxlen=max(policy.backlog_gops, 8))
        self.current: Gop | None = None
        self.viewers: set[Viewer] = set()
        self.publisher: Publisher | None = None
        self.header_ready = asyncio.Event()
        self.state = "waiting"
        self.edge_s = 0.0
        self.seq = 0
        self.bytes_in = self.bytes_out = self.dropped_gops = self.disconnects = self.publishers = 0
        self.viewers_total = 0
        self.started_at = time.time()

    # -- publishing ---------------------------------------------------------------------------------------------

    def open_publisher(self, source: str, container: str = "matroska") -> Publisher:
        """`container`: "matroska" (Matroska/WebM) or "mp4" (fragmented MP4). Raises Conflict when another
        publisher is active."""
        if self.publisher is not None:
            raise Conflict(f"feed {self.name} already has a publisher", feed=self.name, source=source)
        if self.state == "ended":
            self._reset()
        self.publisher = Publisher(self, source, container)
        self.publishers += 1
        self.state = "waiting" if self.header is None else "live"
        return self.publisher

    def _reset(self) -> None:
        self.header = None
        self.header_ready = asyncio.Event()
        self.gops.clear()
        self.current = None
        self.state = "waiting"

    def _on_header(self, out: StreamHeader) -> None:
        if out.changed or self.header is not None:
            for viewer in list(self.viewers):
                viewer.finish()
            self.gops.clear()
            self.current = None
        self.header = out.data
        self.doc_type = out.header.doc_type
        self.tracks = [{"number": t.number, "type": t.track_type, "codec_id": t.codec_id}
                       for t in out.header.track_list]
        self.state = "live"
        self.header_ready.set()

    def _on_cluster(self, out: ClusterOut) -> None:
        self.edge_s = max(self.edge_s, out.end_s)
        if out.gop_start or self.current is None:
            self._complete_gop()
            self.seq += 1
            self.current = Gop(self.seq, out.start_s, out.end_s)
        gop = self.current
        gop.clusters.append(out.data)
        gop.end_s = max(gop.end_s, out.end_s)
        if self.policy.low_latency:
            chunk = Chunk(gop.seq, out.data, out.start_s, out.end_s, len(gop.clusters) == 1)
            for viewer in list(self.viewers):
                viewer.offer(chunk)

    def _complete_gop(self) -> None:
        gop, self.current = self.current, None
        if gop is None:
            return
        gop.data = b"".join(gop.clusters)
        if not self.policy.low_latency:
            gop.clusters = []
            chunk = Chunk(gop.seq, gop.data, gop.start_s, gop.end_s, True)
            for viewer in list(self.viewers):
                viewer.offer(chunk)
        self.gops.append(gop)
        FEED_BITRATE.labels(self.name).set(self.bitrate_bps())

    def _on_end(self, publisher: Publisher) -> None:
        if self.publisher is not publisher:
            return
        self._complete_gop()
        self.publisher = None
        self.state = "ended"
        for viewer in list(self.viewers):
            viewer.finish()

    # -- viewing ------------------------------------------------------------------------------------------------

    def add_viewer(self) -> Viewer:
        """A viewer starting at the backlog (the header must be known: await `header_ready` first)."""
        assert self.header is not None
        count = self.policy.backlog_gops
        complete = list(self.gops)[-count:] if count else []
        backlog = [Chunk(g.seq, g.data, g.start_s, g.end_s, True) for g in complete]
        wait_key = not backlog
        if self.policy.low_latency and count and self.current is not None:
            for index, data in enumerate(self.current.clusters):
                backlog.append(Chunk(self.current.seq, data, self.current.start_s, self.current.end_s, index == 0))
            wait_key = False
        viewer = Viewer(self, self.header, backlog, wait_key)
        if self.state == "ended":
            viewer.finish()
        self.viewers.add(viewer)
        self.viewers_total += 1
        VIEWERS.labels(self.name).inc()
        return viewer

    def remove_viewer(self, viewer: Viewer) -> None:
        if viewer in self.viewers:
            self.viewers.discard(viewer)
            VIEWERS.labels(self.name).dec()

    # -- status -------------------------------------------------------------------------------------------------

    def bitrate_bps(self) -> float:
        gops = list(self.gops)
        if len(gops) < 2:
            return 0.0
        span = gops[-1].start_s - gops[0].start_s
        return sum(g.size for g in gops[:-1]) * 8 / span if span > 0 else 0.0

    def status(self) -> dict:
        """What `GET NAME.mkv/status` answers (docs/relay.md)."""
        return {
            "name": self.name, "state": self.state, "doc_type": self.doc_type, "tracks": self.tracks,
            "publisher": self.publisher.source if self.publisher else None, "publishers": self.publishers,
            "viewers": len(self.viewers), "viewers_total": self.viewers_total,
            "bitrate_bps": round(self.bitrate_bps()), "bytes_in": self.bytes_in, "bytes_out": self.bytes_out,
            "dropped_gops": self.dropped_gops, "lag_disconnects": self.disconnects,
            "live_edge_s": round(self.edge_s, 3), "gops_kept": len(self.gops),
            "low_latency": self.policy.low_latency, "backlog_gops": self.policy.backlog_gops,
            "viewer_lag_s": sorted(round(v.lag_s(), 3) for v in self.viewers),
        }


class Publisher:
    """The one writer of a feed: `receive(data)` (sync, never waits for viewers), then `close()`."""

    def __init__(self, feed: Feed, source: str, container: str = "matroska") -> None:
        self.feed = feed
        self.source = source
        self.reader = MatroskaReader()
        self.cutter = GopCutter()
        self.fmp4 = Fmp4Cutter() if container == "mp4" else None
        self.closed = False

    def receive(self, data: bytes) -> None:
        """Feed input bytes (b"" = end). Raises MalformedIngest / UnsupportedIngest; call close() after."""
        self.feed.bytes_in += len(data)
        FEED_BYTES.labels(self.feed.name).inc(len(data))
        if self.fmp4 is not None:
            self._apply(self.fmp4.receive(data))
            return
        self.reader.receive_data(data)
        while (event := self.reader.next_event()) is not NEED_DATA:
            self._apply(self.cutter.push(event))

    def _apply(self, outputs: list) -> None:
        for out in outputs:
            if isinstance(out, ClusterOut):
                self.feed._on_cluster(out)
            elif isinstance(out, StreamHeader):
                self.feed._on_header(out)
            elif isinstance(out, StreamEnd):
                self.close()

    @property
    def edge_s(self) -> float:
        return self.feed.edge_s

    def close(self) -> None:
        """End of this publisher: viewers get the rest and a clean end of body."""
        if not self.closed:
            self.closed = True
            self.feed._on_end(self)


class RelayHub:
    """Every feed of the process, by (rule prefix, name)."""

    def __init__(self) -> None:
        self.feeds: dict[tuple[str, str], Feed] = {}

    def feed(self, prefix: str, name: str, policy: RelayPolicy, create: bool) -> Feed | None:
        key = (prefix, name)
        feed = self.feeds.get(key)
        if feed is None and create:
            feed = self.feeds[key] = Feed(name, policy)
        elif feed is not None and create and feed.publisher is None:
            feed.policy = policy
        return feed

    def listing(self, prefix: str) -> list[dict]:
        return [feed.status() for (rule, _), feed in sorted(self.feeds.items()) if rule == prefix]
