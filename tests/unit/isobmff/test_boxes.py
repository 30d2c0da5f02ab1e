"""Box framing and sample-table boxes: round trips on real payloads, and hand-made hostile boxes."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from conftest import MEDIA_ROOT
from origin_proxy.errors import MalformedBox
from origin_proxy.isobmff.boxes.ctts import build_ctts, parse_ctts
from origin_proxy.isobmff.boxes.elst import build_elst, parse_elst
from origin_proxy.isobmff.boxes.stsc import build_stsc, parse_stsc
from origin_proxy.isobmff.boxes.stss import build_stss, parse_stss
from origin_proxy.isobmff.boxes.stsz import build_stsz, parse_stsz
from origin_proxy.isobmff.boxes.stts import build_stts, parse_stts
from origin_proxy.isobmff.header import BoxSpan, NeedBytes, iter_boxes, read_header, scan_top_level


def make_box(fourcc: bytes, payload: bytes, largesize: bool = False) -> bytes:
    if largesize:
        return struct.pack(">I4sQ", 1, fourcc, len(payload) + 16) + payload
    return struct.pack(">I4s", len(payload) + 8, fourcc) + payload


def _payloads(path, fourcc):
    """Every `fourcc` payload under moov of a real file (walks containers generically)."""
    data = path.read_bytes()
    found = []

    def walk(start, end):
        for span in iter_boxes(data, start, end, ""):
            if span.fourcc == fourcc:
                found.append(data[span.payload_offset : span.end])
            elif span.fourcc in (b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts"):
                walk(span.payload_offset, span.end)

    walk(0, len(data))
    return found


@pytest.mark.parametrize("name", ["mp4/sample.mp4", "mp4/cursed-vfr.mp4", "mp4/bbb_prog_10s.mp4"])
def test_stts_round_trip(name):
    for payload in _payloads(MEDIA_ROOT / name, b"stts"):
        entries = parse_stts(payload, "stts")
        durations = np.repeat(entries["sample_delta"].astype(np.int64), entries["sample_count"].astype(np.int64))
        assert build_stts(durations) == payload[: 8 + 8 * len(entries)]


@pytest.mark.parametrize("name", ["mp4/sample.mp4", "mp4/bbb_prog_10s.mp4", "mp4/long_1080p_lowbitrate.mp4"])
def test_stsc_stsz_stss_round_trip(name):
    path = MEDIA_ROOT / name
    for payload in _payloads(path, b"stsz"):
        size, count, table = parse_stsz(payload, "stsz")
        sizes = np.full(count, size, np.uint32) if table is None else table.astype(np.uint32)
        assert build_stsz(sizes) == payload or size == 0 and len(set(sizes.tolist())) == 1
    for payload in _payloads(path, b"stss"):
        numbers = parse_stss(payload, "stss")
        assert build_stss(numbers.astype(np.int64) - 1) == payload
    for payload in _payloads(path, b"stsc"):
        entries = parse_stsc(payload, "stsc")
        chunks = int(entries["first_chunk"][-1]) + 3  # expand over a few chunks past the last run
        runs = np.diff(np.append(entries["first_chunk"].astype(np.int64), chunks + 1))
        spc = np.repeat(entries["samples_per_chunk"].astype(np.int64), runs)
        sdi = np.repeat(entries["sample_description_index"].astype(np.int64), runs)
        assert build_stsc(spc, sdi) == payload


def test_ctts_negative_offsets_use_version_1_and_non_negative_version_0():
    assert build_ctts(np.array([0, 2, -1], np.int64))[0] == 1
    payload = build_ctts(np.array([3, 3, 0], np.int64))
    assert payload[0] == 0
    entries = parse_ctts(payload, "ctts")
    assert entries["sample_count"].tolist() == [2, 1] and entries["sample_offset"].tolist() == [3, 0]


def test_elst_round_trip_with_empty_edit():
    payload = build_elst([(440, -1), (10453, 0)])
    assert parse_elst(payload, "elst") == [(440, -1, 1), (10453, 0, 1)]


@pytest.mark.parametrize("parse", [parse_stts, parse_stss, parse_stsc, parse_ctts])
def test_hostile_entry_count_is_refused_before_allocation(parse):
    # version 0, flags 0, entry_count 0xFFFFFFFF, then 8 bytes: far fewer than the count needs
    payload = b"\0\0\0\0" + b"\xff\xff\xff\xff" + b"\0" * 8
    with pytest.raises(MalformedBox, match="entry_count 4294967295"):
        parse(payload, "moov/trak[1]/mdia/minf/stbl/x")


def test_header_largesize_size_zero_and_overrun():
    data = make_box(b"free", b"abcd", largesize=True) + struct.pack(">I4s", 0, b"mdat") + b"xyz"
    first = read_header(data, 0, len(data), "")
    assert (first.fourcc, first.header_size, first.size) == (b"free", 16, 20)
    last = read_header(data, 20, len(data), "")
    assert (last.fourcc, last.size) == (b"mdat", 11)  # size 0: to the end of its container
    with pytest.raises(MalformedBox, match="overruns"):
        read_header(struct.pack(">I4s", 4096, b"moov"), 0, 8, "")
    with pytest.raises(MalformedBox):
        read_header(struct.pack(">I4s", 3, b"moov"), 0, 8, "")  # size smaller than its header


def test_scan_top_level_asks_for_bytes_it_does_not_hold():
    head = make_box(b"ftyp", b"isom\0\0\0\0") + struct.pack(">I4s", 1000, b"mdat") + b"\0" * 8
    assert scan_top_level(head, 0, 0, 2000) == BoxSpan(b"ftyp", 0, 8, 16)
    assert scan_top_level(head, 0, 1016, 2000) == NeedBytes(1016, 16)
    with pytest.raises(MalformedBox, match="past end of file"):
        scan_top_level(head, 0, 16, 500)


# --- header boxes: the struct fast path against the construct layout -----------------------------------------

def _header_parsers():
    from origin_proxy.isobmff.boxes import elst, hdlr, mdhd, mvhd, tkhd
    from origin_proxy.isobmff.boxes._parse import parse_payload

    def by_construct(layout, fields):
        def parse(payload, box_path):
            box = parse_payload(layout, payload, box_path)
            return tuple(box[name] for name in fields)
        return parse

    def mdhd_by_construct(payload, box_path):
        box = parse_payload(mdhd.MediaHeaderBox, payload, box_path)
        if box.timescale == 0:
            raise MalformedBox(box_path, "timescale is 0")
        letters = [((box.language >> shift) & 0x1F) + 0x60 for shift in (10, 5, 0)]
        language = bytes(letters).decode("latin-1") if all(0x61 <= c <= 0x7A for c in letters) else "und"
        return box.timescale, box.duration, language

    def elst_by_construct(payload, box_path):
        prefix = parse_payload(elst._PREFIX, payload, box_path)
        entry = elst._V1 if prefix.version == 1 else elst._V0
        need = 8 + prefix.entry_count * entry.size
        if need > len(payload):
            raise MalformedBox(box_path, f"entry_count {prefix.entry_count} needs {need} bytes, payload has {len(payload)}")
        return [entry.unpack_from(payload, 8 + i * entry.size)[:3] for i in range(prefix.entry_count)]

    return {
        b"mvhd": (mvhd.parse_mvhd, by_construct(mvhd.MovieHeaderBox, ("timescale", "duration"))),
        b"tkhd": (tkhd.parse_tkhd, by_construct(tkhd.TrackHeaderBox, ("track_ID", "duration"))),
        b"mdhd": (mdhd.parse_mdhd, mdhd_by_construct),
        b"hdlr": (hdlr.parse_hdlr, lambda p, path: parse_payload(hdlr.HandlerBox, p, path).handler_type),
        b"elst": (parse_elst, elst_by_construct),
    }


def _outcome(parse, payload):
    try:
        return "ok", parse(payload, "moov/box")
    except MalformedBox as exc:
        return "MalformedBox", str(exc)


@pytest.mark.parametrize("fourcc", [b"mvhd", b"tkhd", b"mdhd", b"hdlr", b"elst"])
def test_header_boxes_read_as_their_construct_layout(fourcc):
    """mvhd, tkhd, mdhd, hdlr and elst read their fields with one struct unpack when the payload holds them, and
    leave shorter payloads to the construct Struct: the same values, and the same MalformedBox text, as parsing
    every payload with the Struct. Version 0, 1 and 2 (32-bit fields, the Switch's default), every length up to
    past the longest layout, seeded random bytes; and every such box of the shared media."""
    fast, reference = _header_parsers()[fourcc]
    rng = np.random.default_rng(13)
    payloads = []
    for version in (0, 1, 2):
        for length in range(0, 48):
            for _ in range(4):
                payload = bytearray(rng.integers(0, 256, length, dtype=np.uint8).tobytes())
                if length:
                    payload[0] = version
                if fourcc == b"elst" and length >= 8:  # entry counts that fit the payload, and some that do not
                    payload[4:8] = struct.pack(">I", int(rng.integers(0, 4)))
                payloads.append(bytes(payload))
    for path in sorted(MEDIA_ROOT.glob("*.mp4")) + sorted(MEDIA_ROOT.glob("*.mov")):
        payloads += _payloads(path, fourcc)
    outcomes = {"ok": 0, "MalformedBox": 0}
    for payload in payloads:
        got = _outcome(fast, payload)
        assert got == _outcome(reference, payload), payload.hex()
        outcomes[got[0]] += 1
    assert outcomes["ok"] and outcomes["MalformedBox"]
