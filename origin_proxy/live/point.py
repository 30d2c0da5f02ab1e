"""A publishing point: index, archive and state of one NAME.isml (DESIGN.md §6). Synchronous file I/O, no aiohttp.

The server glue (server/live.py) feeds it parser events; it keeps per track a `TrackIndex` whose locations are
(archive file, offset, size) when archiving, else the fragment bytes (held only while in the DVR window).

Archive: per stream and event, fragmented-MP4 files `E{event}-{stream}-{part}.mp4` in the point's directory:
the ingest header, then every accepted fragment, appended, flushed (fsync when configured) before it is indexed,
so nothing is listed that is not on disk; a new part starts every `archive_segment_s` of media; at end of stream
each file gets an `mfra` (tfra per track, mfro) so it reads as a VOD file. `point.json` keeps the event number
and its availability start time. On restart `load()` scans the newest event's files (box headers and moofs only,
never an mdat) and rebuilds the index; a file cut inside a fragment is truncated back to its last whole fragment.

Reconnect with `restart_on_encoder_reconnect`: when a reconnected stream's first fragment of a track is before that
track's indexed end (a restarted encoder's timeline from 0), the track's ingest times are shifted from then on by
an offset (`LiveTrack.offset`, track timescale ticks) so they continue from the end, and the index marks a
discontinuity there. A new archive part starts at the jump with a sidecar `E{event}-{stream}-{part}.json`
({"offsets": {track_id: ticks}}), written before the part's first fragment; `load()` applies it, so a restart
rebuilds the same times, numbers and discontinuities. The part files keep the encoder's own times.
"""

from __future__ import annotations

import json
import logging
import os
import re
import struct
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ..errors import MalformedIngest, NotFound
from ..isobmff.boxes.mfra import mfra_box
from ..isobmff.fragment import parse_moof
from .egress import TrackView, egress_span
from .index import Appended, TrackIndex
from .ingest import EndOfStream, Fragment, Header, parse_header
from .state import PointEvent, PointState, next_state

log = logging.getLogger("origin_proxy.live")

NAME = re.compile(r"[A-Za-z0-9_.-]+")
STREAM_SAFE = re.compile(r"[^A-Za-z0-9_.-]")
_BITRATE_HINT = re.compile(r"(\d+)k", re.I)


@dataclass
class LiveTrack:
    """One track of the point: which stream it came from, its header, index, bitrate and counters."""

    stream_id: str
    track_id: int
    header: Header
    index: TrackIndex
    rendition_id: str = ""
    bitrate_bps: int = 0
    last_arrival: float = 0.0
    bytes_in: int = 0
    offset: int = 0  # ticks added to the ingest times (restart_on_encoder_reconnect); indexed = ingest + offset
    restart_pending: bool = False  # reconnected, no fragment since: a jump back starts a discontinuity

    @property
    def track(self):
        return self.header.track(self.track_id)


@dataclass
class ArchiveFile:
    path: Path
    handle: object
    size: int
    first_time: int
    tfra: dict[int, list[tuple[int, int]]] = field(default_factory=dict)


@dataclass
class LiveStream:
    stream_id: str
    header: Header
    connections: int = 0
    ended: bool = False
    part: int = 0
    archive: ArchiveFile | None = None


class PublishingPoint:
    """State of NAME.isml. `settings` is the rule's LiveSettings; `directory` its storage/NAME.isml."""

    def __init__(self, name: str, directory: Path, settings) -> None:
        self.name = name
        self.directory = directory
        self.settings = settings
        self.state = PointState.IDLE
        self.event = 0
        self.availability_start: datetime | None = None
        self.streams: dict[str, LiveStream] = {}
        self.tracks: dict[tuple[str, int], LiveTrack] = {}
        self.fragments_in = 0

    # ---- ingest ----------------------------------------------------------------------------------------------

    def on_header(self, stream_id: str, header: Header) -> None:
        """A stream's header. A stopped point starts a new event; an identical header continues the stream."""
        if self.state in (PointState.STOPPED, PointState.STOPPING):
            self._new_event()
        if self.state is PointState.IDLE and self.event == 0:
            self._new_event()
        stream = self.streams.get(stream_id)
        if stream is not None and not stream.header.same_as(header):
            if not self.settings.restart_on_encoder_reconnect:
                raise MalformedIngest(f"stream {stream_id} reconnected with a different header")
            stream.header = header  # its fragments are read with the new trex defaults and sample entries
            for track in header.tracks:
                live = self.tracks.get((stream_id, track.track_id))
                if live is not None:
                    live.header = header
            if any((stream_id, t.track_id) not in self.tracks for t in header.tracks):
                self._add_tracks(stream_id, header)
                self._write_server_manifest()
        if stream is None:
            stream = self.streams[stream_id] = LiveStream(stream_id, header)
            self._add_tracks(stream_id, header)
            self._write_server_manifest()
        elif self.settings.restart_on_encoder_reconnect:
            for live in self.tracks.values():
                if live.stream_id == stream_id:
                    live.restart_pending = True
        stream.ended = False
        stream.connections += 1
        self.state = next_state(self.state, PointEvent.HEADER)

    def disconnect(self, stream_id: str) -> None:
        stream = self.streams.get(stream_id)
        if stream is not None:
            stream.connections = max(stream.connections - 1, 0)

    def _new_event(self) -> None:
        self.close_archives()
        self.event += 1
        self.streams.clear()
        self.tracks.clear()
        self.availability_start = None
        self.state = PointState.IDLE
        self._save_meta()

    def _add_tracks(self, stream_id: str, header: Header) -> None:
        hints = [int(m) * 1000 for m in _BITRATE_HINT.findall(stream_id)]
        for position, track in enumerate(header.tracks):
            key = (stream_id, track.track_id)
            if key in self.tracks:  # a track a reconnect's different header keeps (restart_on_encoder_reconnect)
                continue
            live = LiveTrack(stream_id, track.track_id, header, TrackIndex(track.timescale))
            bitrate = track.bitrate_bps or (hints[position] if position < len(hints) else 0)
            if bitrate:
                self._name(live, bitrate)
            self.tracks[key] = live

    def _name(self, live: LiveTrack, bitrate: int) -> None:
        kind = live.track.kind
        taken = {t.bitrate_bps for t in self.tracks.values() if t is not live and t.track.kind == kind}
        while bitrate in taken:
            bitrate += 1
        live.bitrate_bps = bitrate
        live.rendition_id = f"{kind}{bitrate}"

    def on_fragment(self, stream_id: str, fragment: Fragment, now: float) -> int:
        """Index (after archiving) one fragment. Returns how many trafs were added (0 = exact duplicate).

        Raises MalformedIngest (400) for a jump back (nothing written or indexed), except, with
        `restart_on_encoder_reconnect`, at a reconnected stream's first fragment of a track: its times are then
        shifted to continue from the track's end (a discontinuity; see the module docstring)."""
        stream = self.streams[stream_id]
        verdicts = []
        restarts: dict[int, int] = {}  # track id -> new offset (a jump back of a reconnected stream)
        for traf in fragment.parsed.trafs:
            live = self.tracks[(stream_id, traf.track_id)]
            index = live.index
            time = traf.decode_time + live.offset
            if live.restart_pending and len(index) and time < index.end_time and time != index.times[-1]:
                restarts[traf.track_id] = index.end_time - traf.decode_time
                verdicts.append(Appended.ADDED)
            else:
                verdicts.append(index.check(time))
        if all(v is Appended.DUPLICATE for v in verdicts):
            return 0
        if any(v is Appended.DUPLICATE for v in verdicts):
            raise MalformedIngest("fragment partly duplicates what was indexed")
        if restarts:
            self._finish_archive(stream)  # the shifted fragments go to a new part with its offsets sidecar
            for track_id, offset in restarts.items():
                live = self.tracks[(stream_id, track_id)]
                live.offset = offset
                live.index.discontinuities.append(live.index.end_time)
                log.info("%s: stream %s track %d reconnected with a timeline that jumps back; shifted by %d "
                         "ticks (a discontinuity)", self.name, stream_id, track_id, offset)
        first_time = fragment.parsed.trafs[0].decode_time
        location: object
        if self.settings.archive:
            location = self._archive(stream, fragment, first_time)
        else:
            location = fragment.moof + fragment.mdat
        for traf in fragment.parsed.trafs:
            live = self.tracks[(stream_id, traf.track_id)]
            if not live.bitrate_bps:
                seconds = traf.duration / live.track.timescale
                self._name(live, max(int(round(traf.data_bytes * 8 / max(seconds, 1e-3), -3)), 1000))
            live.index.append(traf.decode_time + live.offset, traf.duration, fragment.nbytes, traf.starts_with_sync,
                              location)
            live.restart_pending = False
            live.last_arrival = now
            live.bytes_in += fragment.nbytes
            if self.availability_start is None:
                end_s = (traf.decode_time + live.offset + traf.duration) / live.track.timescale
                self.availability_start = (datetime.fromtimestamp(int(now - end_s), timezone.utc))
                self._save_meta()
        self.fragments_in += 1
        self.state = next_state(self.state, PointEvent.FRAGMENT)
        self._prune()
        return len(fragment.parsed.trafs)

    def on_end(self, stream_id: str, event: EndOfStream) -> None:
        """A stream's body ended; an `mfra`/`lmsg` ends the stream, and when every stream ended, the event."""
        if not event.signalled or stream_id not in self.streams:
            return
        stream = self.streams[stream_id]
        stream.ended = True
        self._finish_archive(stream)
        if all(s.ended for s in self.streams.values()) and self.state in (PointState.STARTED, PointState.STARTING):
            self.state = next_state(self.state, PointEvent.ALL_ENDED)
            self.close_archives()
            if self.settings.archive and any(live.index.first_number > 1 for live in self.tracks.values()):
                self._reload_event()  # the VOD covers the whole archived event, not only the DVR window
            self.state = next_state(self.state, PointEvent.ARCHIVED)

    def _reload_event(self) -> None:
        """Rebuild every track's index from this event's archive files (moof headers only), keeping the tracks'
        rendition names, so fragments pruned from memory while live are listed and servable again."""
        for live in self.tracks.values():
            live.index = TrackIndex(live.index.timescale)
            live.offset = 0
        for path in sorted(self.directory.glob(f"E{self.event:03d}-*.mp4"), key=lambda p: p.name):
            self._load_file(path)

    def _prune(self) -> None:
        """Drop from memory what left the DVR window. Archived fragments stay on disk (for the VOD at end of
        stream and for a restart), but a pruned fragment's URL answers 404 while the event is live."""
        for live in self.tracks.values():
            end = live.index.end_time
            if end is not None:
                live.index.prune(end - int(self.settings.dvr_window_s * live.index.timescale))

    # ---- archive ---------------------------------------------------------------------------------------------

    def _archive(self, stream: LiveStream, fragment: Fragment, time: int) -> tuple[str, int, int]:
        current = stream.archive
        timescale = stream.header.tracks[0].timescale
        rotate = self.settings.archive_segment_s
        if current is not None and rotate and time - current.first_time >= rotate * timescale:
            self._finish_archive(stream)
            current = None
        if current is None:
            stream.part += 1
            safe = STREAM_SAFE.sub("_", stream.stream_id)
            path = self.directory / f"E{self.event:03d}-{safe}-{stream.part:03d}.mp4"
            offsets = {live.track_id: live.offset for live in self.tracks.values()
                       if live.stream_id == stream.stream_id and live.offset}
            if offsets:  # before any fragment is in the part, so a reload never reads it without its offsets
                tmp = path.with_name(f".{path.stem}.json.tmp")
                tmp.write_text(json.dumps({"offsets": {str(k): v for k, v in sorted(offsets.items())}}))
                os.replace(tmp, path.with_suffix(".json"))
            handle = open(path, "ab")
            if handle.tell() == 0:
                h = stream.header
                smil = b"" if not h.smil else struct.pack(">I4s", 24 + len(h.smil), b"uuid") + \
                    bytes.fromhex("a5d40b30e81411ddba2f0800200c9a66") + h.smil
                handle.write(h.ftyp + smil + h.moov)
            current = stream.archive = ArchiveFile(path, handle, handle.tell(), time)
        offset = current.size
        current.handle.write(fragment.moof)
        current.handle.write(fragment.mdat)
        current.handle.flush()
        if self.settings.fsync:
            os.fsync(current.handle.fileno())
        current.size += fragment.nbytes
        for traf in fragment.parsed.trafs:
            current.tfra.setdefault(traf.track_id, []).append((max(traf.decode_time, 0), offset))
        return (str(current.path), offset, fragment.nbytes)

    def _finish_archive(self, stream: LiveStream) -> None:
        current = stream.archive
        if current is None:
            return
        current.handle.write(mfra_box(current.tfra))
        current.handle.flush()
        if self.settings.fsync:
            os.fsync(current.handle.fileno())
        current.handle.close()
        stream.archive = None

    def close_archives(self) -> None:
        for stream in self.streams.values():
            if stream.archive is not None:
                stream.archive.handle.close()  # left without mfra: the stream may reconnect after a restart
                stream.archive = None

    def read(self, location: object) -> bytes:
        """The moof + mdat bytes of an indexed fragment."""
        if isinstance(location, bytes):
            return location
        path, offset, size = location  # type: ignore[misc]
        with open(path, "rb") as handle:
            data = os.pread(handle.fileno(), size, offset)
        if len(data) != size:
            raise NotFound("archived fragment is gone")
        return data

    def _save_meta(self) -> None:
        meta = {"event": self.event, "availability_start": self.availability_start.isoformat()
                if self.availability_start else None}
        tmp = self.directory / ".point.json.tmp"
        tmp.write_text(json.dumps(meta))
        os.replace(tmp, self.directory / "point.json")

    def _write_server_manifest(self) -> None:
        """NAME.ism: the SMIL server manifest listing the streams and their tracks (as Unified Origin keeps it)."""
        lines = ['<?xml version="1.0" encoding="utf-8"?>', '<smil xmlns="http://www.w3.org/2001/SMIL20/Language">',
                 "  <head>", f'    <meta name="event" content="{self.event}" />', "  </head>", "  <body>",
                 "    <switch>"]
        for live in self.tracks.values():
            t = live.track
            tag = "video" if t.kind == "video" else "audio"
            lines.append(f'      <{tag} src="{live.stream_id}" systemBitrate="{live.bitrate_bps}">')
            lines.append(f'        <param name="trackID" value="{t.track_id}" valuetype="data" />')
            lines.append(f'        <param name="codecs" value="{t.codecs}" valuetype="data" />')
            lines.append(f"      </{tag}>")
        lines += ["    </switch>", "  </body>", "</smil>", ""]
        tmp = self.directory / f".{self.name}.ism.tmp"
        tmp.write_text("\n".join(lines))
        os.replace(tmp, self.directory / f"{self.name.removesuffix('.isml')}.ism")

    # ---- restart ---------------------------------------------------------------------------------------------

    def load(self) -> None:
        """Rebuild from point.json and the newest event's archive files (moof headers only)."""
        meta_path = self.directory / "point.json"
        if not meta_path.is_file():
            return
        meta = json.loads(meta_path.read_text())
        self.event = int(meta.get("event", 0))
        if meta.get("availability_start"):
            self.availability_start = datetime.fromisoformat(meta["availability_start"])
        files = sorted(self.directory.glob(f"E{self.event:03d}-*.mp4"), key=lambda p: p.name)
        ended_all = bool(files)
        for path in files:
            ended_all &= self._load_file(path)
        if files:
            self.state = PointState.STOPPED if ended_all else PointState.STARTED
            if not ended_all:
                self._prune()

    def _load_file(self, path: Path) -> bool:
        stream_id = path.name.split("-", 1)[1].rsplit("-", 1)[0]
        ended = False
        sidecar = path.with_suffix(".json")
        offsets = {int(k): int(v) for k, v in json.loads(sidecar.read_text()).get("offsets", {}).items()} \
            if sidecar.is_file() else {}
        with open(path, "r+b") as handle:
            size = os.fstat(handle.fileno()).st_size
            boxes: dict[bytes, bytes] = {}
            pos = 0
            good = 0
            header = self.streams[stream_id].header if stream_id in self.streams else None
            while pos + 8 <= size:
                raw = os.pread(handle.fileno(), 16, pos)
                box_size, fourcc = struct.unpack_from(">I4s", raw)
                if box_size == 1:
                    (box_size,) = struct.unpack_from(">Q", raw, 8)
                if box_size < 8 or pos + box_size > size:
                    break
                if fourcc in (b"ftyp", b"uuid", b"moov"):
                    boxes[fourcc] = os.pread(handle.fileno(), box_size, pos)
                    if fourcc == b"moov" and header is None:
                        header = parse_header(boxes.get(b"ftyp", b""), boxes[b"moov"], boxes.get(b"uuid", b""))
                        self.streams[stream_id] = LiveStream(stream_id, header)
                        self._add_tracks(stream_id, header)
                    good = pos + box_size
                elif fourcc == b"moof" and header is not None:
                    moof = os.pread(handle.fileno(), box_size, pos)
                    mdat_head = os.pread(handle.fileno(), 16, pos + box_size)
                    if len(mdat_head) < 8:
                        break
                    mdat_size, mdat_type = struct.unpack_from(">I4s", mdat_head)
                    if mdat_size == 1:
                        (mdat_size,) = struct.unpack_from(">Q", mdat_head, 8)
                    if mdat_type != b"mdat" or pos + box_size + mdat_size > size:
                        break
                    extends = {t.track_id: t.extends for t in header.tracks}
                    parsed = parse_moof(moof, extends)
                    total = box_size + mdat_size
                    for traf in parsed.trafs:
                        live = self.tracks[(stream_id, traf.track_id)]
                        if not live.bitrate_bps:
                            seconds = traf.duration / live.track.timescale
                            self._name(live, max(int(round(traf.data_bytes * 8 / max(seconds, 1e-3), -3)), 1000))
                        offset = offsets.get(traf.track_id, 0)
                        time = traf.decode_time + offset
                        if offset != live.offset:  # the part a jump back started (see on_fragment)
                            live.offset = offset
                            if len(live.index):
                                live.index.discontinuities.append(time)
                        live.index.append(time, traf.duration, total, traf.starts_with_sync,
                                          (str(path), pos, total))
                    box_size = total
                    good = pos + total
                elif fourcc == b"mfra":
                    ended = True
                    good = pos + box_size
                pos += box_size
            if good < size:
                log.warning("%s: truncated after byte %d of %d (a fragment cut by a crash); dropped", path, good,
                            size)
                handle.truncate(good)
        if stream_id in self.streams:
            stream = self.streams[stream_id]
            stream.ended = ended
            stream.part = max(stream.part, int(path.stem.rsplit("-", 1)[1]))
        return ended

    # ---- egress ----------------------------------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        return self.state is PointState.STOPPED

    def views(self, window_s: float | None) -> list[TrackView]:
        """What manifests list: per named track, the fragments within `window_s` of its end (all when None)."""
        out = []
        for live in sorted(self.tracks.values(), key=lambda t: (t.track.kind != "video", t.bitrate_bps)):
            index = live.index
            if not live.rendition_id or not len(index):
                continue
            since = None
            if window_s is not None:
                since = index.end_time - int(window_s * index.timescale)
            positions = index.window(since)
            spans = tuple(egress_span(index.times[i], index.durations[i]) for i in positions)
            first_time = index.times[positions.start] if positions else None
            splits = tuple(p - positions.start for p in (index.position(d) for d in index.discontinuities)
                           if p is not None and p > positions.start)
            passed = sum(1 for d in index.discontinuities if first_time is None or d <= first_time)
            out.append(TrackView(live.rendition_id, live.track, live.bitrate_bps, spans,
                                 index.first_number + positions.start, splits, passed))
        return out

    def track_by_rendition(self, rendition_id: str) -> LiveTrack:
        for live in self.tracks.values():
            if live.rendition_id == rendition_id:
                return live
        raise NotFound(f"no track {rendition_id} in {self.name}")

    def fragment_duration_s(self) -> float:
        durations = [live.index.durations[-1] / live.index.timescale for live in self.tracks.values()
                     if len(live.index)]
        return max(durations, default=2.0)

    def statistics(self, now: float) -> dict:
        tracks = []
        for live in self.tracks.values():
            index, t = live.index, live.track
            first = index.times[0] / index.timescale if len(index) else None
            last = index.end_time / index.timescale if len(index) else None
            seconds = (last - first) if first is not None and last is not None and last > first else None
            tracks.append({
                "stream": live.stream_id, "track_id": t.track_id, "rendition": live.rendition_id, "type": t.kind,
                "codec": t.codecs, "bitrate": live.bitrate_bps, "fragments": index.total_fragments,
                "bytes": index.total_bytes, "first_time_s": first, "last_time_s": last,
                "incoming_bitrate": int(index.total_bytes * 8 / seconds) if seconds else None,
                "last_arrival_age_s": round(now - live.last_arrival, 3) if live.last_arrival else None,
                "encoder_connections": self.streams[live.stream_id].connections,
                "indexed_fragments": len(index), "first_number": index.first_number,
            })
        return {"name": self.name, "state": self.state.value, "event": self.event, "tracks": tracks}

    def availability_start_time(self) -> datetime:
        return self.availability_start or datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(0)
