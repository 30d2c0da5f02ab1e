"""Smooth Streaming (MS-SSTR) of one MP4 or of a multi-bitrate set: the client manifest and its fragments. Pure: a
Packaging in, XML and fragment bytes (plus source ranges) out.

StreamIndexes (MS-SSTR §2.2.2.3): one "video" StreamIndex whose QualityLevels (§2.2.2.5) are the video tracks
(a single file's, or every variant of a `.ism` set), and one StreamIndex per audio track ("audio", then
"audio_<representation id>", e.g. "audio_a3", each with its Language). Only H.264 and AAC are carried
(tracks.CARRIED_BY["smooth"]; an mp4a that is not MPEG-4 Audio is left out too). Fragment URL:
`QualityLevels({bitrate})/Fragments(<name>={start time})`.

QualityLevels of one StreamIndex share its chunk list (the `c` elements, §2.2.2.6), so a video track joins the
"video" StreamIndex only when its chunk starts are those of the first video track (same count, each within
ALIGN_TOLERANCE); one whose key frames fall elsewhere (mismatched GOPs) is left out of the Smooth presentation
(`SmoothPresentation.misaligned`; the edge logs one WARNING). HLS and DASH still list it. The QualityLevels keep
the Packaging's order (a set's videos by increasing peak bandwidth), Index 0..n-1.
Bitrate: the `.ism`'s systemBitrate when the track has one (PackagedTrack.system_bitrate_bps), else the
measured average; it names the QualityLevel in fragment URLs, so within a StreamIndex a repeated value is raised
by 1 bps until it is unique.

Times: everything is in 10 MHz units (TimeScale 10 000 000). Segment boundaries (the same as HLS/DASH: the
presentation start of each segment, clamped to 0, and the track end) are rescaled with integer floor division,
and c@d is the difference of rescaled boundaries, so the c times add up exactly and c@t of every chunk is the
time its fragment URL carries. The first c has t, the others only d.

Fragments (§2.2.4): moof(mfhd, traf(tfhd, trun v1, tfxd)) + mdat, no styp and no tfdt: the client takes the
fragment's decode start from the chunk time (dash.js MSS writes tfdt = c@t). So trun times are rescaled to 10 MHz
relative to that start: sample k's duration is the difference of its rescaled cumulative decode times, and its
composition offset is (rescaled presentation time) - (chunk start + rescaled decode time since the first sample),
signed. Every presentation time is then exactly the source's, rescaled, whichever QualityLevel serves the chunk.
tfhd track_ID is 1: a Smooth client builds its own one-track init segment per QualityLevel (dash.js MSS rewrites
the ID to its own anyway). tfxd (§2.2.4.4): uuid 6d1d9b05-42d5-44e6-80e2-141daff757b2, version 1,
fragment_absolute_time and fragment_duration = the chunk's c@t and c@d.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from ..errors import NotFound, UnpackageableMedia
from ..isobmff.boxes.tfxd import TFXD_UUID, build_tfxd  # noqa: F401 (TFXD_UUID re-exported)
from ..manifest import smooth as manifest_smooth
from ..manifest.model import SegmentTimeline, SmoothQualityLevel, SmoothStreamIndex
from ..isobmff.codecs import aac_specific_config, avc_parameter_sets, sample_entry_boxes
from ..isobmff.sample_window import composition_offsets, decode_times, durations
from ..plan import SourceRange
from .cmaf import movie_fragment, sample_records
from .tracks import Packaging, PackagedTrack

TIMESCALE = 10_000_000
#: Largest difference (10 MHz units, 1 ms) between a QualityLevel's chunk start and the StreamIndex's c@t.
ALIGN_TOLERANCE = TIMESCALE // 1000
SMOOTH_TRACK_ID = 1
ANNEX_B_START = b"\0\0\0\1"
_HE_AAC_OBJECT_TYPES = (5, 29)  # SBR, PS: FourCC AACH


def rescale(ticks: np.ndarray | int, timescale: int) -> np.ndarray:
    """Ticks of `timescale` in 10 MHz units, floored: floor(ticks * 10^7 / timescale), exactly, in int64. Whole
    seconds and the remainder are scaled apart so that no product overflows (timescales up to 2^32)."""
    seconds, remainder = np.divmod(np.asarray(ticks, dtype=np.int64), timescale)
    return seconds * TIMESCALE + remainder * TIMESCALE // timescale


@dataclass(frozen=True, eq=False)
class QualityLevel:
    """One QualityLevel (MS-SSTR §2.2.2.5, TrackElement): a track and how the manifest describes it.

    Attributes:
        index: 0-based position in its StreamIndex (the Index attribute).
        track: the packaged track whose samples the fragments carry.
        bitrate: bits per second, unique within the StreamIndex; the `{bitrate}` of fragment URLs.
        fourcc: "H264", "AACL" or "AACH".
        codec_private_data: Annex-B SPS + PPS (H264) or the AudioSpecificConfig (AAC).
    """

    index: int
    track: PackagedTrack
    bitrate: int
    fourcc: str
    codec_private_data: bytes


@dataclass(frozen=True, eq=False)
class SmoothStream:
    """One StreamIndex (MS-SSTR §2.2.2.3): its name, QualityLevels and shared chunk list.

    Attributes:
        name: the Name attribute and the stream of fragment URLs ("video", "audio", "audio_a3").
        levels: one or more QualityLevels, Index order.
        starts, durations: int64 arrays of shape (C,), c@t and c@d of every chunk in 10 MHz units (the first
            level's segment boundaries).
    """

    name: str
    levels: tuple[QualityLevel, ...]
    starts: np.ndarray
    durations: np.ndarray

    @property
    def is_video(self) -> bool:
        return self.levels[0].track.is_video

    @property
    def end(self) -> int:
        return int(self.starts[-1] + self.durations[-1]) if len(self.starts) else 0

    def quality_level(self, bitrate: int) -> QualityLevel:
        """The QualityLevel whose Bitrate is `bitrate` (bps). Raises NotFound for any other."""
        for level in self.levels:
            if level.bitrate == bitrate:
                return level
        raise NotFound("no such Smooth QualityLevel", stream=self.name, bitrate=bitrate)

    def fragment_index(self, time: int) -> int:
        """The 0-based chunk whose c@t is `time` (10 MHz units). Raises NotFound for any other time."""
        index = int(np.searchsorted(self.starts, time))
        if index >= len(self.starts) or int(self.starts[index]) != time:
            raise NotFound("no Smooth fragment at this time", stream=self.name, time=time)
        return index


@dataclass(frozen=True, eq=False)
class SmoothPresentation:
    """What smooth_presentation() makes of a Packaging.

    Attributes:
        streams: the StreamIndexes, video first, then audio in Packaging order.
        left_out: tracks Smooth cannot carry (codec, or no usable CodecPrivateData).
        misaligned: video tracks left out because their chunk starts differ from the first video track's.
    """

    streams: tuple[SmoothStream, ...]
    left_out: tuple[PackagedTrack, ...]
    misaligned: tuple[PackagedTrack, ...]

    @property
    def nbytes(self) -> int:
        return 512 + sum(256 + 256 * len(s.levels) + s.starts.nbytes + s.durations.nbytes for s in self.streams)

    def find(self, name: str, bitrate: int) -> tuple[SmoothStream, QualityLevel]:
        """The StreamIndex and QualityLevel a fragment URL names. Raises NotFound for an unknown name or bitrate."""
        for stream in self.streams:
            if stream.name == name:
                return stream, stream.quality_level(bitrate)
        raise NotFound("no such Smooth stream", stream=name, bitrate=bitrate)


def _chunk_times(track: PackagedTrack) -> tuple[np.ndarray, np.ndarray]:
    tl = track.timeline
    starts = np.maximum(tl.presentation_time_ticks.astype(np.int64), 0)
    boundaries = np.append(starts, int(tl.presentation_time_ticks[-1] + tl.duration_ticks[-1]))
    scaled = rescale(boundaries, tl.timescale)
    return scaled[:-1], np.maximum(np.diff(scaled), 0)


def _sample_entry_children(track: PackagedTrack) -> dict[bytes, bytes] | None:
    """Child box payloads by 4CC of the track's first sample entry, or None when it has none."""
    entry = track.timeline.track.sample_entry
    return sample_entry_boxes(entry, track.timeline.track.handler_type) if entry is not None else None


def display_size(track: PackagedTrack) -> tuple[int, int]:
    """(width, height) of a video track's pictures as displayed, in pixels: the coded size, the width scaled by
    the sample entry's pasp hSpacing/vSpacing (ISO/IEC 14496-12 §12.1.4) and rounded; (0, 0) when unknown."""
    width, height = track.info.width or 0, track.info.height or 0
    pasp = (_sample_entry_children(track) or {}).get(b"pasp", b"")
    if len(pasp) >= 8:
        h_spacing, v_spacing = struct.unpack_from(">II", pasp)
        if h_spacing and v_spacing:
            width = (2 * width * h_spacing + v_spacing) // (2 * v_spacing)  # round half up, integers only
    return width, height


def _codec_private_data(track: PackagedTrack) -> tuple[str, bytes] | None:
    """(FourCC, CodecPrivateData) of a track, or None when Smooth cannot describe it."""
    children = _sample_entry_children(track)
    if children is None:
        return None
    if track.is_video:
        if b"avcC" not in children:
            return None
        try:
            sps, pps = avc_parameter_sets(children[b"avcC"])
        except ValueError:
            return None
        if not sps or not pps:
            return None
        return "H264", b"".join(ANNEX_B_START + unit for unit in sps + pps)
    asc = aac_specific_config(children.get(b"esds", b""))
    if asc is None:
        return None
    object_type = asc[0] >> 3
    return ("AACH" if object_type in _HE_AAC_OBJECT_TYPES else "AACL"), asc


def _levels(described: list[tuple[PackagedTrack, str, bytes]]) -> tuple[QualityLevel, ...]:
    """QualityLevels of one StreamIndex, Index in list order, with unique Bitrates (see the module docstring)."""
    levels: list[QualityLevel] = []
    for index, (track, fourcc, private) in enumerate(described):
        bitrate = track.system_bitrate_bps or max(track.timeline.average_bandwidth_bps(), 1)
        while any(level.bitrate == bitrate for level in levels):
            bitrate += 1
        levels.append(QualityLevel(index, track, bitrate, fourcc, private))
    return tuple(levels)


def _aligned(reference: np.ndarray, starts: np.ndarray) -> bool:
    return len(reference) == len(starts) and bool(np.all(np.abs(reference - starts) <= ALIGN_TOLERANCE))


def smooth_presentation(packaging: Packaging) -> SmoothPresentation:
    """The StreamIndexes of `packaging` (see the module docstring for the grouping and what is left out).
    Raises UnpackageableMedia when no StreamIndex is left."""
    kept, left_out = packaging.carried_by("smooth")
    video: list[tuple[PackagedTrack, str, bytes]] = []
    audio: list[SmoothStream] = []
    misaligned: list[PackagedTrack] = []
    video_times: tuple[np.ndarray, np.ndarray] | None = None
    for track in kept:
        described = _codec_private_data(track) if track.segment_count else None
        if described is None:
            left_out.append(track)
            continue
        starts, durations = _chunk_times(track)
        if track.is_video:
            if video_times is None:
                video_times = (starts, durations)
            elif not _aligned(video_times[0], starts):
                misaligned.append(track)
                continue
            video.append((track, *described))
        else:
            name = "audio" if not audio else f"audio_{track.representation_id}".lower()
            audio.append(SmoothStream(name, _levels([(track, *described)]), starts, durations))
    streams = ([SmoothStream("video", _levels(video), *video_times)] if video_times is not None else []) + audio
    if not streams:
        codecs = ", ".join(t.info.codec_string or t.info.fourcc.decode("latin-1") for t in left_out)
        raise UnpackageableMedia(f"no track can be packaged for SMOOTH (codecs: {codecs})")
    return SmoothPresentation(tuple(streams), tuple(left_out), tuple(misaligned))


def stream_index(stream: SmoothStream) -> SmoothStreamIndex:
    """What the client manifest says of one StreamIndex (manifest/model.py): MaxWidth/MaxHeight bound every level's
    coded size; DisplayWidth/DisplayHeight are the largest level's picture as displayed (its pasp applied), the only
    place Smooth has for a non-square pixel aspect. Language is the mdhd's ISO 639-2/T code as stored ("eng",
    "und"), not the RFC 5646 tag HLS/DASH use: the Smooth client documentation asks for ISO 639-2/T, and dash.js MSS
    packs this value into its own mdhd."""
    levels = tuple(SmoothQualityLevel(level.bitrate, level.fourcc, level.codec_private_data,
                                      width=level.track.info.width or 0, height=level.track.info.height or 0,
                                      sample_rate_hz=level.track.info.sample_rate_hz or 0,
                                      channel_count=level.track.info.channel_count or 0) for level in stream.levels)
    shown = (0, 0)
    if stream.is_video:
        largest = max(stream.levels, key=lambda level: (level.track.info.width or 0) * (level.track.info.height or 0))
        shown = display_size(largest.track)
    start = int(stream.starts[0]) if len(stream.starts) else 0
    timeline = SegmentTimeline.from_durations(TIMESCALE, start, [int(d) for d in stream.durations])
    return SmoothStreamIndex(stream.name, "video" if stream.is_video else "audio", levels, timeline,
                             language=stream.levels[0].track.language, display_width=shown[0],
                             display_height=shown[1])


def client_manifest(streams: tuple[SmoothStream, ...] | list[SmoothStream], version: str | None = None) -> str:
    """The MS-SSTR client manifest (§2.2.2.1 SmoothStreamingMedia: MajorVersion 2, MinorVersion 2, TimeScale
    10 000 000, Duration the latest stream end) of `streams`, as an XML document string (manifest/smooth.py);
    fragment URLs under `<version>/` when given (package/urls.py)."""
    return manifest_smooth.client_manifest([stream_index(s) for s in streams], timescale=TIMESCALE,
                                           url_prefix=f"{version}/" if version else "")


def smooth_fragment(stream: SmoothStream, level: QualityLevel, index: int) -> tuple[bytes, list[SourceRange]]:
    """Fragment (§2.2.4) of chunk `index` (0-based, < len(stream.starts)) of `level`, one of `stream`'s levels:
    (moof + mdat header, the mdat payload's source ranges, in the level's own file)."""
    tl = level.track.timeline
    samples = sample_records(tl, index)
    table = tl.track.table
    first, stop = int(tl.first_sample[index]), int(tl.stop_sample[index])
    dts = decode_times(table, first, stop) + tl.decode_shift_ticks
    pts = dts + composition_offsets(table, first, stop) + tl.composition_shift_ticks
    decode_ends = np.append(dts[1:], dts[-1] + int(durations(table, stop - 1, stop)[0])) if len(dts) else dts
    dts_10 = rescale(dts, tl.timescale)
    start = int(stream.starts[index])
    samples["duration"] = rescale(decode_ends, tl.timescale) - dts_10
    samples["composition_offset"] = rescale(pts, tl.timescale) - (start + dts_10 - (dts_10[0] if len(dts) else 0))
    tfxd = build_tfxd(start, int(stream.durations[index]))
    return movie_fragment(tl, index, samples, track_id=SMOOTH_TRACK_ID, after_trun=tfxd)
