"""CMAF header and fragments for one track (ISO/IEC 23000-19; boxes from ISO/IEC 14496-12 §8.8).

cmaf_header:   ftyp(cmfc) + moov(mvhd, trak(tkhd, mdia(mdhd, hdlr, minf(xmhd, dinf, stbl(stsd + empty
               tables)))), mvex(trex)). The sample entries (stsd) are the source's, byte for byte, except
               QuickTime sound descriptions, which become ISO AudioSampleEntries (`iso_stsd`).
cmaf_fragment: styp + moof(mfhd, traf(tfhd default-base-is-moof, tfdt v1, trun v1)) + mdat, where the
               mdat payload is the source's sample bytes, returned as SourceRanges (never read here).
movie_fragment + sample_records: the moof/mdat part alone, shared with Smooth fragments (smooth.py), which
               carry other boxes in traf and times in another timescale.

The fragment boxes themselves (mfhd, tfhd, tfdt, trun, trex) are written by isobmff/boxes/, shared with live.
"""

from __future__ import annotations

import struct

import numpy as np

from ..errors import MalformedBox
from ..isobmff.boxes._duration import patch_duration
from ..isobmff.boxes.mdhd import MDHD_DURATION_OFFSETS
from ..isobmff.boxes.tkhd import TKHD_DURATION_OFFSETS
from ..isobmff.boxes.mfhd import build_mfhd
from ..isobmff.boxes.tfdt import build_tfdt
from ..isobmff.boxes.tfhd import build_tfhd
from ..isobmff.boxes.trex import build_trex
from ..isobmff.boxes.trun import NON_SYNC_SAMPLE_FLAGS, SYNC_SAMPLE_FLAGS, TRUN_SAMPLE, build_trun, trun_size
from ..isobmff.build import box, box_header, full_box
from ..isobmff.codecs import AUDIO_ENTRY_BYTES, QT_SOUND_V1_EXTRA, QT_SOUND_V2_EXTRA
from ..isobmff.header import iter_boxes
from ..isobmff.movie import Node, Track
from ..isobmff.sample_window import composition_offsets, durations, sync_flags
from ..plan import SourceRange
from .segmenter import TrackTimeline

__all__ = ["NON_SYNC_SAMPLE_FLAGS", "SYNC_SAMPLE_FLAGS", "TRUN_SAMPLE", "cmaf_fragment", "cmaf_header", "iso_stsd",
           "movie_fragment", "sample_records"]


def _leaf_payload(node: Node | None) -> bytes:
    if node is None or not node.payload:
        raise ValueError("missing box in the source skeleton")
    header = 16 if node.payload[:4] == b"\0\0\0\1" else 8
    return node.payload[header:]


def _handler_box(handler_type: bytes) -> bytes:
    name = {b"vide": b"VideoHandler\0", b"soun": b"SoundHandler\0"}.get(handler_type, b"Handler\0")
    return full_box(b"hdlr", 0, 0, bytes(4) + handler_type + bytes(12) + name)


# Codec configuration boxes a QuickTime sound description keeps inside `wave`; an ISO entry has them as children.
_WAVE_CONFIG_BOXES = frozenset({b"esds", b"dac3", b"dec3", b"dOps", b"dfLa", b"btrt"})


def _iso_audio_entry(entry: bytes) -> bytes:
    """A QuickTime sound description of version 1 or 2 (QTFF "Sound Sample Description", in qt-brand files) as an
    ISO AudioSampleEntry (ISO/IEC 14496-12 §12.2.3); any other entry unchanged.

    An ISO parser reads the fixed fields as version 0 and the QuickTime extension (16 or 36 bytes) as child boxes,
    so the codec configuration is lost (mp4box.js then says "mp4a" for AAC). The version becomes 0, the extension
    goes, the QuickTime-only fields (revision, vendor, compression id, packet size) become the ISO reserved zeros,
    a version 2 extension's channel count and rate move into the 16-bit and 16.16 fields (rate 0 when it does not
    fit), and the configuration boxes inside `wave` (esds ...) become children of the entry.
    """
    if len(entry) < AUDIO_ENTRY_BYTES or entry[:4] == b"\0\0\0\1":
        return entry
    version = struct.unpack_from(">H", entry, 16)[0]
    extra = {1: QT_SOUND_V1_EXTRA, 2: QT_SOUND_V2_EXTRA}.get(version)
    if extra is None or len(entry) < AUDIO_ENTRY_BYTES + extra:
        return entry
    channels, sample_size = struct.unpack_from(">HH", entry, 24)
    rate_fixed = struct.unpack_from(">I", entry, 32)[0]
    if version == 2:
        rate_hz = round(struct.unpack_from(">d", entry, 40)[0])
        channels = min(struct.unpack_from(">I", entry, 48)[0], 0xFFFF)
        sample_size = min(struct.unpack_from(">I", entry, 56)[0], 0xFFFF) or 16
        rate_fixed = rate_hz << 16 if 0 < rate_hz < 0x10000 else 0
    children = []
    try:
        for span in iter_boxes(entry, AUDIO_ENTRY_BYTES + extra, len(entry), "stsd/entry"):
            if span.fourcc != b"wave":
                children.append(entry[span.offset : span.end])
                continue
            for inner in iter_boxes(entry, span.payload_offset, span.end, "stsd/entry/wave"):
                if inner.fourcc in _WAVE_CONFIG_BOXES:
                    children.append(entry[inner.offset : inner.end])
    except MalformedBox:
        return entry  # not a sound description we understand: pass it through as before
    fields = entry[8:16] + bytes(8) + struct.pack(">HHHHI", channels, sample_size, 0, 0, rate_fixed)
    return box(entry[4:8], fields + b"".join(children))


def iso_stsd(stsd_box: bytes, handler_type: bytes) -> bytes:
    """The stsd box (header included) for a CMAF header: the source's, with every QuickTime sound description made
    an ISO AudioSampleEntry (`_iso_audio_entry`). Video and ISO audio entries are kept byte for byte; an stsd
    whose entries do not frame is returned unchanged. QuickTime writes stsd version 0; an ISO AudioSampleEntryV1
    (entry version 1, no extension) sits in an stsd of version 1 (§8.5.2.2) and is left alone."""
    header = 16 if stsd_box[:4] == b"\0\0\0\1" else 8
    if handler_type != b"soun" or len(stsd_box) < header + 8 or stsd_box[header] != 0:
        return stsd_box
    try:
        spans = list(iter_boxes(stsd_box, header + 8, len(stsd_box), "stsd"))
    except MalformedBox:
        return stsd_box
    entries = [_iso_audio_entry(bytes(stsd_box[span.offset : span.end])) for span in spans]
    return box(b"stsd", bytes(stsd_box[header : header + 8]) + b"".join(entries))


def cmaf_header(track: Track) -> bytes:
    """The CMAF header (init segment) of one track, in its own timescale.

    Returns the bytes of ftyp + moov. Raises ValueError when the skeleton lacks tkhd/mdhd/stsd (a parsed
    Track always has them).
    """
    trak = track.trak
    mdia = trak.child(b"mdia")
    stbl = mdia.child(b"minf").child(b"stbl")
    ftyp = box(b"ftyp", b"cmfc" + struct.pack(">I", 0) + b"cmfciso6isommp41")
    mvhd = full_box(
        b"mvhd", 0, 0,
        struct.pack(">IIII", 0, 0, track.timescale, 0)
        + struct.pack(">IH10x", 0x00010000, 0x0100)
        + struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
        + bytes(24) + struct.pack(">I", track.track_id + 1),
    )
    tkhd_payload = patch_duration(_leaf_payload(trak.child(b"tkhd")), 0, *TKHD_DURATION_OFFSETS)
    tkhd = box(b"tkhd", tkhd_payload[:1] + b"\0\0\x03" + tkhd_payload[4:])  # enabled, in movie
    mdhd = box(b"mdhd", patch_duration(_leaf_payload(mdia.child(b"mdhd")), 0, *MDHD_DURATION_OFFSETS))
    if track.handler_type == b"vide":
        media_header = full_box(b"vmhd", 0, 1, bytes(8))
    else:
        media_header = full_box(b"smhd", 0, 0, bytes(4))
    dinf = box(b"dinf", full_box(b"dref", 0, 0, struct.pack(">I", 1) + full_box(b"url ", 0, 1, b"")))
    empty_tables = b"".join(
        full_box(name, 0, 0, bytes(4 if name != b"stsz" else 8)) for name in (b"stts", b"stsc", b"stsz", b"stco")
    )
    stsd = iso_stsd(stbl.child(b"stsd").payload, track.handler_type)  # the whole box
    minf = box(b"minf", media_header + dinf + box(b"stbl", stsd + empty_tables))
    trak_box = box(b"trak", tkhd + box(b"mdia", mdhd + _handler_box(track.handler_type) + minf))
    trex = build_trex(track.track_id)
    return ftyp + box(b"moov", mvhd + trak_box + box(b"mvex", trex))


def sample_records(timeline: TrackTimeline, index: int) -> np.ndarray:
    """trun sample records of segment `index` (0-based), in the track's timescale: duration, size, flags and
    composition offset (with the timeline's composition shift), from the sample table's runs for this window only
    (isobmff/sample_window.py; nothing is cached). Raises IndexError outside 0..segment_count-1."""
    if not 0 <= index < timeline.segment_count:
        raise IndexError(f"segment {index} of {timeline.segment_count}")
    table = timeline.track.table
    first, stop = int(timeline.first_sample[index]), int(timeline.stop_sample[index])
    samples = np.empty(stop - first, dtype=TRUN_SAMPLE)
    samples["duration"] = durations(table, first, stop)
    samples["size"] = table.size_bytes[first:stop]
    samples["flags"] = np.where(sync_flags(table, first, stop), SYNC_SAMPLE_FLAGS, NON_SYNC_SAMPLE_FLAGS)
    samples["composition_offset"] = composition_offsets(table, first, stop) + timeline.composition_shift_ticks
    return samples


def movie_fragment(timeline: TrackTimeline, index: int, samples: np.ndarray, *, track_id: int,
                   before_trun: bytes = b"", after_trun: bytes = b"") -> tuple[bytes, list[SourceRange]]:
    """moof(mfhd, traf(tfhd default-base-is-moof, `before_trun`, trun v1, `after_trun`)) + mdat header for segment
    `index`, with `samples` (from `sample_records`, times possibly rescaled), and the mdat payload's source ranges.

    The mfhd sequence_number is index + 1. Contiguous samples are coalesced into one SourceRange.
    """
    table = timeline.track.table
    first = int(timeline.first_sample[index])
    sizes = table.size_bytes[first : first + len(samples)].astype(np.int64)
    offsets = table.sample_offsets(first, first + len(samples))

    mfhd = build_mfhd(index + 1)
    tfhd = build_tfhd(track_id)
    traf_size = 8 + len(tfhd) + len(before_trun) + trun_size(len(samples)) + len(after_trun)
    moof_size = 8 + len(mfhd) + traf_size
    payload_bytes = int(sizes.sum())
    mdat_header = box_header(b"mdat", payload_bytes)
    data_offset = moof_size + len(mdat_header)  # default-base-is-moof: relative to the moof's first byte
    trun = build_trun(samples, data_offset)
    moof = box(b"moof", mfhd + box(b"traf", tfhd + before_trun + trun + after_trun))
    if len(moof) != moof_size:
        raise AssertionError("moof size differs from the data_offset it was written with")

    # Coalesce samples that follow each other in the source into one range.
    breaks = np.flatnonzero(offsets[1:] != offsets[:-1] + sizes[:-1]) + 1
    starts = np.concatenate(([0], breaks))
    ends = np.append(breaks, len(sizes))
    run_bytes = np.add.reduceat(sizes, starts) if len(sizes) else sizes
    ranges = [SourceRange(int(offsets[s]), int(b)) for s, e, b in zip(starts, ends, run_bytes) if b]
    return moof + mdat_header, ranges


def cmaf_fragment(timeline: TrackTimeline, index: int) -> tuple[bytes, list[SourceRange]]:
    """Segment `index` (0-based) of a track: (styp + moof + mdat header, the mdat payload's source ranges).

    The mfhd sequence_number is index + 1. Contiguous samples are coalesced into one SourceRange.
    Raises IndexError for an index outside 0..segment_count-1.
    """
    samples = sample_records(timeline, index)
    styp = box(b"styp", b"msdh" + struct.pack(">I", 0) + b"msdhmsixcmfs")
    tfdt = build_tfdt(int(timeline.decode_time_ticks[index]))
    head, ranges = movie_fragment(timeline, index, samples, track_id=timeline.track.track_id, before_trun=tfdt)
    return styp + head, ranges
