"""The clipped file's head by a walk of the moov skeleton: the reference that moov_writer.py's template must
equal byte for byte (tests/unit/rewrite/test_moov_template.py), and its fallback for moovs the template does not lay
out. Also the per-box pieces both share (the stbl tables, the chunk-offset box).

Layout: the mdat payload is the source bytes from the lowest to the highest byte any kept sample
occupies, copied as one range (as nginx's mp4 module does), so every chunk offset shifts by one
constant. Bytes of dropped samples inside that span stay in the mdat, unreferenced.

The moov is the source skeleton with, per kept track: tkhd/mdhd durations patched, a new edts/elst,
and regenerated stts, ctts, stss, stsc (first and last chunk split mid-chunk), stsz and stco —
upgraded to co64 when any offset needs 64 bits, which is decided after the moov size is known.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..isobmff.boxes._duration import patch_duration
from ..isobmff.boxes.ctts import build_ctts
from ..isobmff.boxes.elst import build_elst
from ..isobmff.boxes.mdhd import MDHD_DURATION_OFFSETS
from ..isobmff.boxes.mvhd import MVHD_DURATION_OFFSETS
from ..isobmff.boxes.stco import build_shifted_chunk_offsets
from ..isobmff.boxes.stsc import STSC_ENTRY
from ..isobmff.boxes.stss import STSS_ENTRY
from ..isobmff.boxes.tkhd import TKHD_DURATION_OFFSETS
from ..isobmff.build import box, box_header
from ..isobmff.movie import STBL_DROPPED, MovieFile, Node
from ..plan import Generated, LazyBytes, SourceRange
from .select import TrackCut

_CHUNK_OFFSET_MARKERS = (b"stco", b"co64")
_JOIN_BELOW_BYTES = 64 * 1024  # generated pieces shorter than this are joined with their neighbours


@dataclass
class _Chunks:
    """The kept chunks of one track: their source offsets (a view of the table's, the first replaced by the first
    kept sample's offset) and their stsc entries (made on demand), the first and last chunk cut mid-chunk."""

    offset_bytes: np.ndarray
    first_offset_bytes: int
    stsc_entry_count: int
    stsc_entries: Callable[[], np.ndarray]


def _kept_chunks(cut: TrackCut) -> tuple[_Chunks, int, int]:
    """Chunks of samples [first, stop); plus the lowest and highest (exclusive) source byte the samples occupy.
    O(log N): nothing here depends on the number of samples or chunks kept."""
    table = cut.track.table
    chunks, first, last = table.chunks, cut.first, cut.stop - 1
    at_first, at_last = chunks.locate(first), chunks.locate(last)  # each sample's chunk searched for once
    ca, cb, stsc_count, stsc_entries = chunks.stsc_window(first, cut.stop, (at_first, at_last))
    first_offset = table.sample_offset(first, at_first)
    if chunks.ascending:
        low, high = first_offset, table.sample_end(last, at_last)
    else:
        low, high = table.byte_span(first, cut.stop)
    return _Chunks(chunks.offset_bytes[ca : cb + 1], first_offset, stsc_count, stsc_entries), low, high


def _table_box(fourcc: bytes, version: int, entry_count: int, pieces: list, prefix: bytes = b"") -> list:
    """A full box of a sample table from its entries' bytes (pieces: bytes or uint8 memoryviews)."""
    head = struct.pack(">B3x", version) + prefix + struct.pack(">I", entry_count)
    return [box_header(fourcc, len(head) + sum(map(len, pieces))), head, *pieces]


def _stbl_boxes(cut: TrackCut) -> dict[bytes, list]:
    """stts, stsz, and ctts/stss where the output has them, for samples [first, stop): slices of the table's
    cached big-endian entries, so the cost is O(log N) searches plus the bytes copied."""
    table = cut.track.table
    first, stop = cut.first, cut.stop
    out = {b"stts": _table_box(b"stts", 0, *table.stts.window(first, stop))}
    if table.uniform_size_bytes:
        out[b"stsz"] = [box(b"stsz", struct.pack(">B3xII", 0, table.uniform_size_bytes, stop - first))]
    else:
        sizes = memoryview(table.size_bytes[first:stop].view(np.uint8))
        out[b"stsz"] = _table_box(b"stsz", 0, stop - first, [sizes], prefix=struct.pack(">I", 0))
    if table.ctts is not None and cut.cts_shift == 0:
        # cts_shift is 0 only when no kept offset is negative, so version 0 reads these entries the same.
        out[b"ctts"] = _table_box(b"ctts", 0, *table.ctts.window(first, stop))
    elif table.has_ctts or cut.cts_shift:
        offsets = table.cts_window(first, stop) + cut.cts_shift
        out[b"ctts"] = [box(b"ctts", build_ctts(offsets))]
    if table.has_stss:
        sync = table.stss_indices
        kept = sync[sync.searchsorted(first) : sync.searchsorted(stop)]
        numbers = (kept - (first - 1)).astype(STSS_ENTRY["sample_number"])
        out[b"stss"] = _table_box(b"stss", 0, len(numbers), [memoryview(numbers.view(np.uint8))])
    return out


def _serialize(node: Node, replace) -> tuple[list, int]:
    """Flatten a skeleton node's children into (pieces, their total bytes); `replace(child)` may return a list of
    pieces to stand in for a child, a (pieces, size) pair when the size is known, or None to keep the child.
    Every piece's size is taken once."""
    pieces: list = []
    size = 0
    for child in node.children or ():
        substitute = replace(child)
        if isinstance(substitute, tuple):
            pieces.extend(substitute[0])
            size += substitute[1]
        elif substitute is not None:
            pieces.extend(substitute)
            size += sum(map(len, substitute))  # bytes, uint8 memoryviews, LazyBytes and _Deferred all have len
        elif child.children is not None:
            inner, inner_size = _container(child.fourcc, *_serialize(child, replace))
            pieces.extend(inner)
            size += inner_size
        else:
            pieces.append(child.payload)
            size += len(child.payload)
    return pieces, size


class _Deferred:
    """A chunk-offset box (stco, or co64 when `wide`, §8.7.5) whose bytes depend on where the mdat lands; its
    size is known up front."""

    def __init__(self, chunks: _Chunks, wide: bool):
        self.chunks = chunks
        self.wide = wide

    def size(self) -> int:
        return 16 + len(self.chunks.offset_bytes) * (8 if self.wide else 4)

    __len__ = size

    def render(self, shift: int) -> bytes:
        """The box with every offset moved by `shift` bytes. Raises OverflowError when an offset does not fit."""
        return box(*build_shifted_chunk_offsets(self.chunks.offset_bytes, self.chunks.first_offset_bytes, shift,
                                                wide=self.wide))


def _container(fourcc: bytes, pieces: list, payload_bytes: int) -> tuple[list, int]:
    """(a box's pieces, its size) from its payload's pieces and their total size."""
    header = box_header(fourcc, payload_bytes)
    return [header, *pieces], len(header) + payload_bytes


def _trak(cut: TrackCut, chunks: _Chunks, wide: bool) -> tuple[tuple[list, int], _Deferred]:
    tables = _stbl_boxes(cut)
    deferred = _Deferred(chunks, wide)
    table = cut.track.table
    media_duration = table.decode_span_ticks(cut.first, cut.stop)
    track_duration = cut.empty_movie_ticks + cut.segment_duration
    edits = ([(cut.empty_movie_ticks, -1)] if cut.empty_movie_ticks else []) + [(cut.segment_duration, cut.media_time)]
    edts = box(b"edts", box(b"elst", build_elst(edits)))

    def replace(node: Node):
        name = node.fourcc
        if name == b"tkhd":
            payload = patch_duration(_header_payload(node), track_duration, *TKHD_DURATION_OFFSETS)
            return [box(b"tkhd", payload), edts]
        if name == b"edts":
            return []
        if name == b"mdhd":
            return [box(b"mdhd", patch_duration(_header_payload(node), media_duration, *MDHD_DURATION_OFFSETS))]
        if name == b"stsc":
            entries = LazyBytes(chunks.stsc_entry_count * STSC_ENTRY.itemsize, lambda: chunks.stsc_entries().tobytes())
            return _table_box(b"stsc", 0, chunks.stsc_entry_count, [entries])
        if name in _CHUNK_OFFSET_MARKERS:
            return [deferred]
        if name == b"stts" and not table.has_ctts and b"ctts" in tables:
            return tables.pop(b"stts") + tables.pop(b"ctts")
        if name in tables:
            return tables.pop(name)
        if name in STBL_DROPPED or (name in (b"ctts", b"stss") and node.payload == b""):
            return []
        return None

    return _container(b"trak", *_serialize(cut.track.trak, replace)), deferred


def _header_payload(node: Node) -> bytes:
    """A leaf's payload without its box header (8 bytes, or 16 with largesize)."""
    return node.payload[16:] if node.payload[:4] == b"\0\0\0\1" else node.payload[8:]


def _moov_pieces(movie_file: MovieFile, cuts: list[TrackCut], chunks: list[_Chunks], wide: bool):
    movie_duration = max(c.empty_movie_ticks + c.segment_duration for c in cuts)
    traks: dict[int, tuple[list, int]] = {}
    deferred: list[_Deferred] = []
    for cut, kept in zip(cuts, chunks):
        pieces, chunk_box = _trak(cut, kept, wide)
        traks[id(cut.track.trak)] = pieces
        deferred.append(chunk_box)

    def replace(node: Node):
        if node.fourcc == b"mvhd":
            return [box(b"mvhd", patch_duration(_header_payload(node), movie_duration, *MVHD_DURATION_OFFSETS))]
        if node.fourcc == b"trak":
            return traks.get(id(node), ([], 0))  # tracks not cut (metadata, empty) are dropped
        return None

    return _container(b"moov", *_serialize(movie_file.movie.moov, replace))


def _kept_span(movie_file: MovieFile, cuts: list[TrackCut]) -> tuple[list, int, int]:
    """Each cut's kept chunks (_kept_chunks) and the file bytes [low, high) the clip's samples span, (0, 0) when
    no cut keeps a chunk (an edit that presents none of the samples: an empty mdat)."""
    chunks, low, high = [], movie_file.file_size, 0
    for cut in cuts:
        kept, cut_low, cut_high = _kept_chunks(cut)
        chunks.append(kept)
        low, high = min(low, cut_low), max(high, cut_high)
    if high < low:
        low = high = 0
    return chunks, low, high


def write_clip_tree(movie_file: MovieFile, cuts: list[TrackCut]) -> tuple[list[Generated], SourceRange]:
    """(the head: ftyp + moov + mdat header as Plan parts, the source range that is the mdat payload), by the
    tree walk.

    The head's parts are bytes, zero-copy memoryviews of the tables' cached entries (stts, ctts, stsz) and
    LazyBytes for the chunk offsets, so its length is known in O(log N + kept chunks) and only the bytes a
    response covers are ever made. Consecutive small pieces are joined.

    Args:
        cuts: at least one TrackCut, from select.select.
    """
    chunks, low, high = _kept_span(movie_file, cuts)
    mdat_header = box_header(b"mdat", high - low)
    for wide in (False, True):
        pieces, moov_bytes = _moov_pieces(movie_file, cuts, chunks, wide)
        head_bytes = len(movie_file.ftyp) + moov_bytes + len(mdat_header)
        if high + head_bytes - low <= 0xFFFFFFFF:  # every new chunk offset fits stco
            break
    shift = head_bytes - low
    parts: list[Generated] = []
    small: list[bytes] = [movie_file.ftyp]
    for piece in pieces:
        if isinstance(piece, bytes) and len(piece) < _JOIN_BELOW_BYTES:
            small.append(piece)
            continue
        if small:
            parts.append(b"".join(small))
            small = []
        parts.append(LazyBytes(piece.size(), functools.partial(piece.render, shift))
                     if isinstance(piece, _Deferred) else piece)
    parts.append(b"".join([*small, mdat_header]))
    if sum(len(p) for p in parts) != head_bytes:
        raise AssertionError("moov size promised to its parents differs from what was written")
    return parts, SourceRange(low, high - low)
