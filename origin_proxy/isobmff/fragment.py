"""Movie fragment parser, ISO/IEC 14496-12 §8.8: moof/mfhd/traf/tfhd/tfdt/trun (+ MS-SSTR §2.2.4.4 tfxd) into
numpy columns. Pure: bytes in, values out.

Hand-written `struct` framing like the moov parser (header.py): every length is checked against its container, a
trun never claims more samples than its box holds and never more than `max_samples`, so hostile sizes cost
nothing. Defaults come from tfhd, then from the header's trex (passed in as `TrackExtends`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from ..errors import MalformedBox
from .header import iter_boxes

TFXD_UUID = bytes.fromhex("6d1d9b0542d544e680e2141daff757b2")  # MS-SSTR §2.2.4.4 TfxdBox
TFRF_UUID = bytes.fromhex("d4807ef2ca3946958e5426cb9e46a79f")  # MS-SSTR §2.2.4.5 TfrfBox

# tfhd flags (§8.8.7.1)
TFHD_BASE_DATA_OFFSET = 0x000001
TFHD_SAMPLE_DESCRIPTION_INDEX = 0x000002
TFHD_DEFAULT_SAMPLE_DURATION = 0x000008
TFHD_DEFAULT_SAMPLE_SIZE = 0x000010
TFHD_DEFAULT_SAMPLE_FLAGS = 0x000020
TFHD_DEFAULT_BASE_IS_MOOF = 0x020000
# trun flags (§8.8.8.1)
TRUN_DATA_OFFSET = 0x000001
TRUN_FIRST_SAMPLE_FLAGS = 0x000004
TRUN_SAMPLE_DURATION = 0x000100
TRUN_SAMPLE_SIZE = 0x000200
TRUN_SAMPLE_FLAGS = 0x000400
TRUN_SAMPLE_CTO = 0x000800
SAMPLE_IS_NON_SYNC = 0x00010000  # sample_is_non_sync_sample bit of the sample flags (§8.8.3.1)

MAX_FRAGMENT_SAMPLES = 1 << 20

FRAGMENT_SAMPLE = np.dtype([("duration", "<u4"), ("size", "<u4"), ("flags", "<u4"), ("composition_offset", "<i8")])


@dataclass(frozen=True)
class TrackExtends:
    """trex defaults of one track (§8.8.3): sample duration (track ticks), size (bytes) and flags."""

    track_id: int
    default_sample_duration: int = 0
    default_sample_size: int = 0
    default_sample_flags: int = 0


@dataclass(frozen=True, eq=False)
class TrackFragment:
    """One traf.

    Attributes:
        track_id: tfhd.track_ID.
        base_media_decode_time: tfdt (track ticks), or None when absent.
        tfxd_time, tfxd_duration: MS-SSTR tfxd fragment absolute time and duration (track ticks), or None.
        samples: FRAGMENT_SAMPLE columns (duration ticks, size bytes, flags, composition offset ticks).
        data_offset: where the first sample's bytes start, relative to the moof's first byte (bytes).
    """

    track_id: int
    base_media_decode_time: int | None
    tfxd_time: int | None
    tfxd_duration: int | None
    samples: np.ndarray
    data_offset: int

    @property
    def decode_time(self) -> int | None:
        """tfdt, else tfxd's absolute time (track ticks)."""
        return self.base_media_decode_time if self.base_media_decode_time is not None else self.tfxd_time

    @property
    def duration(self) -> int:
        """Sum of the sample durations, or tfxd's duration when the samples have none (track ticks)."""
        total = int(self.samples["duration"].sum(dtype=np.int64))
        return total if total or self.tfxd_duration is None else self.tfxd_duration

    @property
    def data_bytes(self) -> int:
        return int(self.samples["size"].sum(dtype=np.int64))

    @property
    def starts_with_sync(self) -> bool:
        return len(self.samples) > 0 and not int(self.samples["flags"][0]) & SAMPLE_IS_NON_SYNC


@dataclass(frozen=True, eq=False)
class MovieFragment:
    """A parsed moof: mfhd.sequence_number and its trafs in order."""

    sequence_number: int
    trafs: tuple[TrackFragment, ...]


def parse_moof(moof: bytes | memoryview, extends: dict[int, TrackExtends] | None = None,
               max_samples: int = MAX_FRAGMENT_SAMPLES, moof_offset: int | None = None) -> MovieFragment:
    """Parse one whole moof box (header included).

    Args:
        moof: the box bytes.
        extends: trex defaults by track_ID (from the header's mvex); missing = zeros.
        max_samples: cap on the samples of the whole fragment.
        moof_offset: where the moof lies in its file (bytes), for files whose tfhd carries an absolute
            base_data_offset (§8.8.7); None for pushed streams, where such an offset means nothing.
    Raises:
        MalformedBox: bad framing, missing mfhd/tfhd/trun, a trun larger than its box or over the cap, or a traf
            with a base_data_offset when `moof_offset` is None (or one that points before the moof).
    """
    buf = memoryview(moof)
    spans = list(iter_boxes(buf, 0, len(buf), ""))
    if len(spans) != 1 or spans[0].fourcc != b"moof" or spans[0].size != len(buf):
        raise MalformedBox("moof", "not exactly one moof box")
    sequence_number: int | None = None
    trafs: list[TrackFragment] = []
    total = 0
    for child in iter_boxes(buf, spans[0].payload_offset, len(buf), "moof"):
        if child.fourcc == b"mfhd":
            if child.size < 16:
                raise MalformedBox("moof/mfhd", "truncated")
            (sequence_number,) = struct.unpack_from(">I", buf, child.payload_offset + 4)
        elif child.fourcc == b"traf":
            traf = _parse_traf(buf, child.payload_offset, child.end, extends or {}, max_samples - total,
                               moof_offset)
            total += len(traf.samples)
            trafs.append(traf)
    if sequence_number is None:
        raise MalformedBox("moof", "no mfhd")
    if not trafs:
        raise MalformedBox("moof", "no traf")
    return MovieFragment(sequence_number, tuple(trafs))


def _parse_traf(buf: memoryview, start: int, end: int, extends: dict[int, TrackExtends],
                budget: int, moof_offset: int | None) -> TrackFragment:
    path = "moof/traf"
    tfhd = None
    tfdt: int | None = None
    tfxd: tuple[int, int] | None = None
    runs: list[tuple[int, int]] = []
    for span in iter_boxes(buf, start, end, path):
        p, n = span.payload_offset, span.size - span.header_size
        if span.fourcc == b"tfhd":
            tfhd = (p, n)
        elif span.fourcc == b"tfdt":
            if n < 8:
                raise MalformedBox(f"{path}/tfdt", "truncated")
            version = buf[p]
            if version == 1:
                if n < 12:
                    raise MalformedBox(f"{path}/tfdt", "truncated")
                (tfdt,) = struct.unpack_from(">q", buf, p + 4)  # signed: ingest times may be negative
            else:
                (tfdt,) = struct.unpack_from(">I", buf, p + 4)
        elif span.fourcc == b"uuid" and bytes(buf[span.offset + 8 : span.offset + 24]) == TFXD_UUID:
            if n < 4:
                raise MalformedBox(f"{path}/tfxd", "truncated")
            version = buf[p]
            need, fmt = (20, ">qQ") if version == 1 else (12, ">iI")  # signed time (ffmpeg audio starts < 0)
            if n < need:
                raise MalformedBox(f"{path}/tfxd", "truncated")
            tfxd = struct.unpack_from(fmt, buf, p + 4)
        elif span.fourcc == b"trun":
            runs.append((p, n))
    if tfhd is None:
        raise MalformedBox(path, "no tfhd")
    if not runs:
        raise MalformedBox(path, "no trun")
    p, n = tfhd
    if n < 8:
        raise MalformedBox(f"{path}/tfhd", "truncated")
    flags = int.from_bytes(buf[p + 1 : p + 4], "big")
    (track_id,) = struct.unpack_from(">I", buf, p + 4)
    trex = extends.get(track_id, TrackExtends(track_id))
    defaults = [trex.default_sample_duration, trex.default_sample_size, trex.default_sample_flags]
    pos = p + 8
    base = 0  # where trun data offsets count from, relative to the moof's first byte
    if flags & TFHD_BASE_DATA_OFFSET:
        if moof_offset is None:
            raise MalformedBox(f"{path}/tfhd", "base_data_offset (absolute offsets) in a pushed fragment")
        if pos + 8 > p + n:
            raise MalformedBox(f"{path}/tfhd", "truncated")
        (base_data_offset,) = struct.unpack_from(">Q", buf, pos)
        base = base_data_offset - moof_offset
        if base < 0:
            raise MalformedBox(f"{path}/tfhd", f"base_data_offset {base_data_offset} lies before the moof")
        pos += 8
    if flags & TFHD_SAMPLE_DESCRIPTION_INDEX:
        pos += 4
    for bit, slot in ((TFHD_DEFAULT_SAMPLE_DURATION, 0), (TFHD_DEFAULT_SAMPLE_SIZE, 1),
                      (TFHD_DEFAULT_SAMPLE_FLAGS, 2)):
        if flags & bit:
            if pos + 4 > p + n:
                raise MalformedBox(f"{path}/tfhd", "truncated")
            (defaults[slot],) = struct.unpack_from(">I", buf, pos)
            pos += 4
    columns: list[np.ndarray] = []
    data_offset: int | None = None
    expected_next: int | None = None
    for p, n in runs:
        samples, offset = _parse_trun(buf, p, n, defaults, budget)
        budget -= len(samples)
        run_start = base + offset if offset is not None else expected_next if expected_next is not None else base
        if data_offset is None:
            data_offset = run_start
        elif run_start != expected_next:
            raise MalformedBox(f"{path}/trun", "runs of one traf are not contiguous")
        expected_next = run_start + int(samples["size"].sum(dtype=np.int64))
        columns.append(samples)
    samples = columns[0] if len(columns) == 1 else np.concatenate(columns)
    return TrackFragment(track_id, tfdt, tfxd[0] if tfxd else None, tfxd[1] if tfxd else None, samples,
                         data_offset or 0)


def _parse_trun(buf: memoryview, p: int, n: int, defaults: list[int], budget: int) -> tuple[np.ndarray, int | None]:
    path = "moof/traf/trun"
    if n < 8:
        raise MalformedBox(path, "truncated")
    version = buf[p]
    flags = int.from_bytes(buf[p + 1 : p + 4], "big")
    (count,) = struct.unpack_from(">I", buf, p + 4)
    pos = p + 8
    offset = None
    first_flags = None
    if flags & TRUN_DATA_OFFSET:
        if pos + 4 > p + n:
            raise MalformedBox(path, "truncated")
        (offset,) = struct.unpack_from(">i", buf, pos)
        pos += 4
    if flags & TRUN_FIRST_SAMPLE_FLAGS:
        if pos + 4 > p + n:
            raise MalformedBox(path, "truncated")
        (first_flags,) = struct.unpack_from(">I", buf, pos)
        pos += 4
    fields = [(TRUN_SAMPLE_DURATION, "duration"), (TRUN_SAMPLE_SIZE, "size"), (TRUN_SAMPLE_FLAGS, "flags"),
              (TRUN_SAMPLE_CTO, "composition_offset")]
    present = [name for bit, name in fields if flags & bit]
    record = 4 * len(present)
    if count > budget:
        raise MalformedBox(path, f"{count} samples exceed the fragment cap")
    if count * record > p + n - pos:
        raise MalformedBox(path, f"{count} samples of {record} bytes overrun the box")
    raw = np.frombuffer(buf, dtype=">u4", count=count * len(present), offset=pos).reshape(count, len(present))
    samples = np.zeros(count, dtype=FRAGMENT_SAMPLE)
    for slot, name in enumerate(("duration", "size", "flags")):
        samples[name] = raw[:, present.index(name)] if name in present else defaults[slot]
    if "composition_offset" in present:
        column = raw[:, present.index("composition_offset")]
        samples["composition_offset"] = column.view(">i4") if version == 1 else column
    if first_flags is not None and count:
        samples["flags"][0] = first_flags
    return samples, offset
