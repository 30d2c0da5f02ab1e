"""moov -> Movie: tracks with their sample tables, and a skeleton of the moov for rewriting.

ISO/IEC 14496-12 §8.1–8.7. Only `vide` and `soun` tracks with samples are modelled as media tracks;
other handlers (timed metadata `meta`/`mett`, `mebx`, text, hint, tmcd) are kept out of rewritten
output. The skeleton keeps every box of the moov as raw bytes except the sample tables, which are
regenerated from the run-level tables (isobmff/sample_table.py); construct objects never outlive a parse call.
The sample tables are numpy views of the moov buffer (stsz, stco, canonical stts/ctts), so a parsed Movie keeps
that buffer alive and counts it in its `nbytes`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass


from ..errors import FragmentedMedia, MalformedBox, UnsupportedMedia
from .boxes.ctts import parse_ctts
from .boxes.elst import parse_elst
from .boxes.hdlr import parse_hdlr
from .boxes.mdhd import parse_mdhd
from .boxes.mvhd import parse_mvhd
from .boxes.stco import parse_chunk_offsets
from .boxes.stsc import parse_stsc
from .boxes.stss import parse_stss
from .boxes.stsz import parse_stsz
from .boxes.stts import parse_stts
from .boxes.tkhd import parse_tkhd
from .codecs import first_sample_entry
from .header import fourcc_name, iter_boxes
from .sample_table import SampleTable
from .stbl import build_sample_table

# The containers we descend into, per parent (§8.1-8.7): the walk follows the spec's tree, so its depth is
# bounded (moov/trak/mdia/minf/stbl) however the boxes of a hostile file nest. Anything else is a leaf.
CONTAINERS = {
    b"moov": frozenset({b"trak"}),
    b"trak": frozenset({b"edts", b"mdia"}),
    b"mdia": frozenset({b"minf"}),
    b"minf": frozenset({b"stbl"}),
    b"edts": frozenset(),
    b"stbl": frozenset(),
}
# Per-sample boxes under stbl that are regenerated (tables) or dropped (optional per-sample side data
# that a sliced table would contradict: sdtp, sbgp, subs, saiz, saio, stps, stdp, padb, cslg).
STBL_REGENERATED = frozenset({b"stts", b"ctts", b"stss", b"stsc", b"stsz", b"stco", b"co64"})
STBL_DROPPED = frozenset({b"sdtp", b"sbgp", b"subs", b"saiz", b"saio", b"stps", b"stdp", b"padb", b"cslg", b"stz2"})


@dataclass(frozen=True, eq=False)
class Node:
    """A box of the skeleton: raw payload for leaves, children for containers (CONTAINERS)."""

    fourcc: bytes
    payload: bytes = b""
    children: tuple[Node, ...] | None = None

    def child(self, fourcc: bytes) -> Node | None:
        for node in self.children or ():
            if node.fourcc == fourcc:
                return node
        return None

    @property
    def nbytes(self) -> int:
        return 64 + len(self.payload) + sum(child.nbytes for child in self.children or ())


@dataclass(frozen=True)
class Edit:
    """One elst entry (§8.6.6): segment_duration in movie ticks; media_time in media ticks, -1 = empty."""

    segment_duration: int
    media_time: int


@dataclass(frozen=True, eq=False)
class Track:
    """One media track.

    Attributes:
        track_id: tkhd.track_ID.
        handler_type: mdia/hdlr handler_type, b"vide" or b"soun".
        codec: 4CC of the first stsd sample entry, e.g. b"avc1", b"mp4a", b"Opus".
        language: ISO-639-2/T from mdhd.
        edits: the source edit list, empty when there is none.
        table: the samples.
        trak: skeleton of the trak box.
    """

    track_id: int
    handler_type: bytes
    codec: bytes
    language: str
    edits: tuple[Edit, ...]
    table: SampleTable
    trak: Node

    @property
    def timescale(self) -> int:
        return self.table.timescale

    @functools.cached_property
    def sample_entry(self) -> bytes | None:
        """The first sample entry of trak/mdia/minf/stbl/stsd (ISO/IEC 14496-12 §8.5.2), header included, or None
        when the stsd has none that frames. The stsd's own header is 8 bytes, or 16 with a 64-bit largesize."""
        node = self.trak
        for fourcc in (b"mdia", b"minf", b"stbl", b"stsd"):
            node = node.child(fourcc) if node is not None else None
        if node is None or not node.payload:
            return None
        header = 16 if node.payload[:4] == b"\0\0\0\1" else 8
        return first_sample_entry(node.payload[header:])


@dataclass(frozen=True, eq=False)
class Movie:
    """A parsed moov: movie timescale and duration (mvhd), media tracks, and the moov skeleton.

    moov_buffer_bytes: size of the moov buffer the tracks' tables are views of (kept alive by them), 0 when none
    is."""

    timescale: int
    duration: int
    tracks: tuple[Track, ...]
    moov: Node
    moov_buffer_bytes: int = 0

    @property
    def nbytes(self) -> int:
        """Memory the movie holds: skeleton, tables (their columns made so far included) and the moov buffer."""
        tables = sum(track.table.nbytes - track.table.view_nbytes for track in self.tracks)
        return self.moov.nbytes + tables + self.moov_buffer_bytes


@dataclass(frozen=True, eq=False)
class MovieFile:
    """What the cache holds per source version: the Movie plus the file-level facts a rewrite needs.

    Attributes:
        movie: the parsed moov.
        ftyp: the raw ftyp box (header included), or b"" when the file has none.
        file_size: bytes.
        moov_offset, moov_size: where the moov box lies in the file (bytes, header included).
        moov_before_mdat: True when no mdat precedes the moov (a "faststart" file).
    """

    movie: Movie
    ftyp: bytes
    file_size: int
    moov_offset: int
    moov_size: int
    moov_before_mdat: bool

    @property
    def nbytes(self) -> int:
        return self.movie.nbytes + len(self.ftyp) + 256


# First span of each child 4CC of a skeleton container: 4CC -> (payload offset, end, its Node). A duplicate box is
# ignored, as ffmpeg does.
_FirstSpans = dict[bytes, tuple[int, int, Node]]


def _skeleton(buf: bytes, span_fourcc: bytes, start: int, end: int, path: str,
              index: dict[Node, _FirstSpans]) -> Node:
    """The skeleton Node of a container's payload buf[start:end], its containers walked (CONTAINERS); `index`
    gets, for the Node and every container under it, the first span of each child 4CC, so the parse reads the
    boxes it needs from this one walk."""
    children = []
    first: _FirstSpans = {}
    descend = CONTAINERS[span_fourcc]
    in_stbl = span_fourcc == b"stbl"
    for span in iter_boxes(buf, start, end, path):
        name = span.fourcc
        if name in descend:
            node = _skeleton(buf, name, span.payload_offset, span.end, f"{path}/{fourcc_name(name)}", index)
        elif in_stbl and (name in STBL_REGENERATED or name in STBL_DROPPED):
            node = Node(name)  # a marker: its bytes are regenerated or dropped
        else:
            node = Node(name, bytes(buf[span.offset : span.end]))  # header kept: copied verbatim
        children.append(node)
        if name not in first:
            first[name] = (span.payload_offset, span.end, node)
    container = Node(span_fourcc, children=tuple(children))
    index[container] = first
    return container


def _spans(buf: bytes, start: int, end: int, path: str) -> dict[bytes, tuple[int, int]]:
    found: dict[bytes, tuple[int, int]] = {}
    for span in iter_boxes(buf, start, end, path):
        found.setdefault(span.fourcc, (span.payload_offset, span.end))
    return found


def parse_moov(moov: bytes, file_size: int, max_samples: int, max_tracks: int = 256) -> Movie:
    """Parse a whole moov box (header included).

    Args:
        moov: the moov box bytes (other buffers are copied to bytes first: the tables stay views of it).
        file_size: bytes of the whole file; samples must lie inside it.
        max_samples: bound on samples per track.
        max_tracks: bound on trak boxes (each costs a parse; 20 000 empty traks must not cost seconds).
    Raises:
        MalformedBox: a box that contradicts itself or its container (502).
        FragmentedMedia: moov/mvex present (fragmented input, 415).
        UnsupportedMedia: over a limit, or an edit list we cannot compose (501).
    """
    if not isinstance(moov, bytes):
        moov = bytes(moov)
    top = _spans(moov, 0, len(moov), "")
    if b"moov" not in top:
        raise MalformedBox("moov", "not a moov box")
    start, end = top[b"moov"]
    trak_count = sum(1 for span in iter_boxes(moov, start, end, "moov") if span.fourcc == b"trak")
    if trak_count > max_tracks:
        raise UnsupportedMedia(f"moov has {trak_count} tracks, over the limit of {max_tracks}")
    index: dict[Node, _FirstSpans] = {}
    skeleton = _skeleton(moov, b"moov", start, end, "moov", index)
    children = index[skeleton]
    if b"mvex" in children:
        raise FragmentedMedia("fragmented MP4 (moov/mvex) is not supported for this request")
    if b"mvhd" not in children:
        raise MalformedBox("moov", "no mvhd")
    movie_timescale, movie_duration = parse_mvhd(moov[slice(*children[b"mvhd"][:2])], "moov/mvhd")
    if movie_timescale == 0:
        raise MalformedBox("moov/mvhd", "timescale is 0")

    tracks = []
    trak_nodes = [node for node in skeleton.children if node.fourcc == b"trak"]
    for number, node in enumerate(trak_nodes, start=1):
        track = _parse_trak(moov, index, node, f"moov/trak[{number}]", file_size, max_samples)
        if track is not None:
            tracks.append(track)
    viewing = any(track.table.view_nbytes for track in tracks)
    return Movie(movie_timescale, movie_duration, tuple(tracks), skeleton, len(moov) if viewing else 0)


def _parse_trak(buf: bytes, index: dict[Node, _FirstSpans], node: Node, path: str, file_size: int,
                max_samples: int) -> Track | None:
    trak = index[node]
    if b"tkhd" not in trak or b"mdia" not in trak:
        raise MalformedBox(path, "no tkhd or mdia")
    track_id, _ = parse_tkhd(buf[slice(*trak[b"tkhd"][:2])], path + "/tkhd")
    mdia = index[trak[b"mdia"][2]]
    if b"hdlr" not in mdia or b"mdhd" not in mdia or b"minf" not in mdia:
        raise MalformedBox(path + "/mdia", "no hdlr, mdhd or minf")
    handler_type = parse_hdlr(buf[slice(*mdia[b"hdlr"][:2])], path + "/mdia/hdlr")
    if handler_type not in (b"vide", b"soun"):
        return None
    timescale, _, language = parse_mdhd(buf[slice(*mdia[b"mdhd"][:2])], path + "/mdia/mdhd")
    minf = index[mdia[b"minf"][2]]
    if b"stbl" not in minf:
        raise MalformedBox(path + "/mdia/minf", "no stbl")
    stbl_path = path + "/mdia/minf/stbl"
    whole = memoryview(buf)  # the sample tables are viewed, not copied, by numpy
    stbl = {fourcc: whole[a:b] for fourcc, (a, b, _) in index[minf[b"stbl"][2]].items()}
    if b"stz2" in stbl and b"stsz" not in stbl:
        raise UnsupportedMedia("compact sample sizes (stz2) are not supported", box_path=stbl_path)
    for required in (b"stsd", b"stts", b"stsc", b"stsz"):
        if required not in stbl:
            raise MalformedBox(stbl_path, f"no {required.decode()}")
    offsets_box = b"co64" if b"co64" in stbl else b"stco"
    if offsets_box not in stbl:
        raise MalformedBox(stbl_path, "no stco or co64")
    stsd = stbl[b"stsd"]
    codec = bytes(stsd[12:16]) if len(stsd) >= 16 else b"????"
    table = build_sample_table(
        timescale=timescale,
        stts=parse_stts(stbl[b"stts"], stbl_path + "/stts"),
        ctts=parse_ctts(stbl[b"ctts"], stbl_path + "/ctts") if b"ctts" in stbl else None,
        stss=parse_stss(stbl[b"stss"], stbl_path + "/stss") if b"stss" in stbl else None,
        stsc=parse_stsc(stbl[b"stsc"], stbl_path + "/stsc"),
        stsz=parse_stsz(stbl[b"stsz"], stbl_path + "/stsz"),
        chunk_offsets=parse_chunk_offsets(offsets_box, stbl[offsets_box], f"{stbl_path}/{offsets_box.decode()}"),
        file_size=file_size,
        max_samples=max_samples,
        box_path=stbl_path,
    )
    if table.sample_count == 0:
        return None
    edits: tuple[Edit, ...] = ()
    if b"edts" in trak:
        edts = index[trak[b"edts"][2]]
        if b"elst" in edts:
            entries = parse_elst(buf[slice(*edts[b"elst"][:2])], path + "/edts/elst")
            for _, media_time, rate in entries:
                if media_time >= 0 and rate != 1:
                    raise UnsupportedMedia(f"edit with media_rate {rate} is not supported", box_path=path + "/edts/elst")
            edits = tuple(Edit(duration, media_time) for duration, media_time, _ in entries)
    return Track(track_id, handler_type, codec, language, edits, table, node)
