"""Write the clipped file's head: ftyp + moov + mdat header, and the one source range behind it.

Layout: the mdat payload is the source bytes from the lowest to the highest byte any kept sample
occupies, copied as one range (as nginx's mp4 module does), so every chunk offset shifts by one
constant. Bytes of dropped samples inside that span stay in the mdat, unreferenced.

The moov is the source skeleton with, per kept track: tkhd/mdhd durations patched, a new edts/elst,
and regenerated stts, ctts, stss, stsc (first and last chunk split mid-chunk), stsz and stco —
upgraded to co64 when any offset needs 64 bits, which is decided after the moov size is known.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..isobmff.boxes._duration import patch_duration
from ..isobmff.boxes.ctts import build_ctts
from ..isobmff.boxes.elst import build_elst
from ..isobmff.boxes.mdhd import MDHD_DURATION_OFFSETS
from ..isobmff.boxes.mvhd import MVHD_DURATION_OFFSETS
from ..isobmff.boxes.stco import build_chunk_offsets
from ..isobmff.boxes.stsc import build_stsc
from ..isobmff.boxes.stss import build_stss
from ..isobmff.boxes.stsz import build_stsz
from ..isobmff.boxes.stts import build_stts
from ..isobmff.boxes.tkhd import TKHD_DURATION_OFFSETS
from ..isobmff.build import box, box_header
from ..isobmff.movie import STBL_DROPPED, MovieFile, Node
from ..plan import SourceRange
from .clip import TrackCut

_CHUNK_OFFSET_MARKERS = (b"stco", b"co64")


@dataclass
class _Chunks:
    """The kept chunks of one track: absolute source offsets, sample counts, description indices."""

    offset_bytes: np.ndarray
    sample_count: np.ndarray
    description_index: np.ndarray


def _kept_chunks(cut: TrackCut) -> tuple[_Chunks, int, int]:
    """Chunks of samples [first, stop), the first and last split mid-chunk; plus the lowest and
    highest (exclusive) source byte the samples occupy."""
    table = cut.track.table
    first, stop = cut.first, cut.stop
    chunk_first = table.chunk_first_sample
    ca = int(np.searchsorted(chunk_first, first, side="right")) - 1
    cb = int(np.searchsorted(chunk_first, stop - 1, side="right")) - 1
    counts = table.chunk_sample_count[ca : cb + 1].copy()
    counts[0] -= first - chunk_first[ca]
    counts[-1] -= chunk_first[cb] + table.chunk_sample_count[cb] - stop
    offsets = table.chunk_offset_bytes[ca : cb + 1].copy()
    offsets[0] = table.offset_bytes[first]
    indices = table.chunk_description_index[ca : cb + 1]
    keep = counts > 0
    sample_offsets = table.offset_bytes[first:stop]
    low = int(sample_offsets.min())
    high = int((sample_offsets + table.size_bytes[first:stop]).max())
    return _Chunks(offsets[keep], counts[keep], indices[keep]), low, high


def _stbl_payloads(cut: TrackCut) -> dict[bytes, bytes]:
    table = cut.track.table
    window = slice(cut.first, cut.stop)
    out = {b"stts": build_stts(table.duration_ticks[window]), b"stsz": build_stsz(table.size_bytes[window])}
    cts = table.cts_offset_ticks[window]
    if table.has_ctts or cut.cts_shift:
        out[b"ctts"] = build_ctts(cts + cut.cts_shift)
    if table.has_stss:
        out[b"stss"] = build_stss(np.flatnonzero(table.is_sync[window]))
    return out


def _serialize(node: Node, replace) -> list:
    """Flatten a skeleton node into bytes pieces; `replace(node)` may return a list of pieces
    (possibly deferred callables) to stand in for a child, or None to keep it."""
    pieces: list = []
    for child in node.children or ():
        substitute = replace(child)
        if substitute is not None:
            pieces.extend(substitute)
        elif child.children is not None:
            pieces.extend(_container(child.fourcc, _serialize(child, replace)))
        else:
            pieces.append(child.payload)
    return pieces


class _Deferred:
    """A chunk-offset box whose bytes depend on where the mdat lands; its size is known up front."""

    def __init__(self, chunks: _Chunks, wide: bool):
        self.chunks = chunks
        self.wide = wide

    def size(self) -> int:
        return 16 + len(self.chunks.offset_bytes) * (8 if self.wide else 4)

    def render(self, shift: int) -> bytes:
        return box(*build_chunk_offsets(self.chunks.offset_bytes + shift, wide=self.wide))


def _piece_size(piece) -> int:
    return piece.size() if isinstance(piece, _Deferred) else len(piece)


def _container(fourcc: bytes, pieces: list) -> list:
    payload_bytes = sum(_piece_size(p) for p in pieces)
    return [box_header(fourcc, payload_bytes), *pieces]


def _trak(cut: TrackCut, chunks: _Chunks, wide: bool) -> tuple[list, _Deferred]:
    tables = _stbl_payloads(cut)
    deferred = _Deferred(chunks, wide)
    table = cut.track.table
    media_duration = int(table.duration_ticks[cut.first : cut.stop].sum())
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
            return [box(b"stsc", build_stsc(chunks.sample_count, chunks.description_index))]
        if name in _CHUNK_OFFSET_MARKERS:
            return [deferred]
        if name == b"stts" and not table.has_ctts and b"ctts" in tables:
            return [box(b"stts", tables.pop(b"stts")), box(b"ctts", tables.pop(b"ctts"))]
        if name in tables:
            return [box(name, tables.pop(name))]
        if name in STBL_DROPPED or (name in (b"ctts", b"stss") and node.payload == b""):
            return []
        return None

    pieces = _container(b"trak", _serialize(cut.track.trak, replace))
    return pieces, deferred


def _header_payload(node: Node) -> bytes:
    """A leaf's payload without its box header (8 bytes, or 16 with largesize)."""
    return node.payload[16:] if node.payload[:4] == b"\0\0\0\1" else node.payload[8:]


def _moov_pieces(movie_file: MovieFile, cuts: list[TrackCut], chunks: list[_Chunks], wide: bool):
    movie_duration = max(c.empty_movie_ticks + c.segment_duration for c in cuts)
    traks: dict[int, list] = {}
    deferred: list[_Deferred] = []
    for cut, kept in zip(cuts, chunks):
        pieces, chunk_box = _trak(cut, kept, wide)
        traks[id(cut.track.trak)] = pieces
        deferred.append(chunk_box)

    def replace(node: Node):
        if node.fourcc == b"mvhd":
            return [box(b"mvhd", patch_duration(_header_payload(node), movie_duration, *MVHD_DURATION_OFFSETS))]
        if node.fourcc == b"trak":
            return traks.get(id(node), [])  # tracks not cut (metadata, empty) are dropped
        return None

    return _container(b"moov", _serialize(movie_file.movie.moov, replace))


def write_clip(movie_file: MovieFile, cuts: list[TrackCut]) -> tuple[bytes, SourceRange]:
    """(ftyp + moov + mdat header, the source range that is the mdat payload).

    Args:
        cuts: at least one TrackCut, from clip.select.
    """
    chunks, low, high = [], movie_file.file_size, 0
    for cut in cuts:
        kept, cut_low, cut_high = _kept_chunks(cut)
        chunks.append(kept)
        low, high = min(low, cut_low), max(high, cut_high)
    mdat_header = box_header(b"mdat", high - low)
    for wide in (False, True):
        pieces = _moov_pieces(movie_file, cuts, chunks, wide)
        head_bytes = len(movie_file.ftyp) + sum(_piece_size(p) for p in pieces) + len(mdat_header)
        if high + head_bytes - low <= 0xFFFFFFFF:  # every new chunk offset fits stco
            break
    shift = head_bytes - low
    out = bytearray(movie_file.ftyp)
    for piece in pieces:
        out += piece.render(shift) if isinstance(piece, _Deferred) else piece
    out += mdat_header
    if len(out) != head_bytes:
        raise AssertionError("moov size promised to its parents differs from what was written")
    return bytes(out), SourceRange(low, high - low)
