"""Smooth Streaming (MS-SSTR) of one MP4: the client manifest and its fragments. Pure: a Packaging in, XML and
fragment bytes (plus source ranges) out.

Streams: one StreamIndex per H.264 or AAC track (tracks.CARRIED_BY["smooth"]; an mp4a that is not MPEG-4 Audio
is left out too), each with one QualityLevel. The first video track is named "video", the first audio track
"audio"; further ones get their representation id ("audio_a3"). Fragment URL:
`QualityLevels({bitrate})/Fragments(<name>={start time})`.

Times: everything is in 10 MHz units (TimeScale 10 000 000). Segment boundaries (the same as HLS/DASH: the
presentation start of each segment, clamped to 0, and the track end) are rescaled with integer floor division,
and c@d is the difference of rescaled boundaries, so the c times add up exactly and c@t of every chunk is the
time its fragment URL carries. The first c has t, the others only d.

Fragments: moof(mfhd, traf(tfhd, trun v1, tfxd)) + mdat, no styp and no tfdt: the client takes the fragment's
decode start from the chunk time (dash.js MSS writes tfdt = c@t). So trun times are rescaled to 10 MHz relative to
that start: sample k's duration is the difference of its rescaled cumulative decode times, and its composition
offset is (rescaled presentation time) - (chunk start + rescaled decode time since the first sample), signed.
Every presentation time is then exactly the source's, rescaled. tfhd track_ID is 1: a Smooth client builds its
own one-track init segment per stream (dash.js MSS rewrites the ID to its own anyway).
tfxd (MS-SSTR §2.2.4.4): uuid 6d1d9b05-42d5-44e6-80e2-141daff757b2, version 1, fragment_absolute_time and
fragment_duration = the chunk's c@t and c@d.
"""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import numpy as np

from ..errors import NotFound, UnpackageableMedia
from ..isobmff.build import box
from ..isobmff.codecs import aac_specific_config, avc_parameter_sets, first_sample_entry, sample_entry_boxes
from ..plan import SourceRange
from .cmaf import movie_fragment, sample_records
from .tracks import Packaging, PackagedTrack

TIMESCALE = 10_000_000
TFXD_UUID = bytes.fromhex("6d1d9b0542d544e680e2141daff757b2")
SMOOTH_TRACK_ID = 1
ANNEX_B_START = b"\0\0\0\1"
_HE_AAC_OBJECT_TYPES = (5, 29)  # SBR, PS: FourCC AACH


def rescale(ticks: np.ndarray | int, timescale: int) -> np.ndarray:
    """Ticks of `timescale` in 10 MHz units, floored: floor(ticks * 10^7 / timescale), exactly, in int64. Whole
    seconds and the remainder are scaled apart so that no product overflows (timescales up to 2^32)."""
    seconds, remainder = np.divmod(np.asarray(ticks, dtype=np.int64), timescale)
    return seconds * TIMESCALE + remainder * TIMESCALE // timescale


@dataclass(frozen=True, eq=False)
class SmoothStream:
    """One StreamIndex: its track, name, bitrate and the chunk times (int64 arrays in 10 MHz units)."""

    name: str
    track: PackagedTrack
    bitrate: int
    codec_private_data: bytes
    fourcc: str
    starts: np.ndarray
    durations: np.ndarray

    @property
    def end(self) -> int:
        return int(self.starts[-1] + self.durations[-1]) if len(self.starts) else 0

    def fragment_index(self, time: int) -> int:
        """The chunk whose c@t is `time`. Raises NotFound for any other time."""
        index = int(np.searchsorted(self.starts, time))
        if index >= len(self.starts) or int(self.starts[index]) != time:
            raise NotFound("no Smooth fragment at this time", stream=self.name, time=time)
        return index


def _chunk_times(track: PackagedTrack) -> tuple[np.ndarray, np.ndarray]:
    tl = track.timeline
    starts = np.maximum(tl.presentation_time_ticks.astype(np.int64), 0)
    boundaries = np.append(starts, int(tl.presentation_time_ticks[-1] + tl.duration_ticks[-1]))
    scaled = rescale(boundaries, tl.timescale)
    return scaled[:-1], np.maximum(np.diff(scaled), 0)


def _codec_private_data(track: PackagedTrack) -> tuple[str, bytes] | None:
    """(FourCC, CodecPrivateData) of a track, or None when Smooth cannot describe it."""
    trak = track.timeline.track.trak
    stsd = trak.child(b"mdia").child(b"minf").child(b"stbl").child(b"stsd")
    entry = first_sample_entry(stsd.payload[8:]) if stsd is not None else None
    if entry is None:
        return None
    children = sample_entry_boxes(entry, track.timeline.track.handler_type)
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


def smooth_streams(packaging: Packaging) -> tuple[list[SmoothStream], list[PackagedTrack]]:
    """(the Smooth streams, the tracks left out). Raises UnpackageableMedia when none is left."""
    kept, left_out = packaging.carried_by("smooth")
    streams: list[SmoothStream] = []
    for track in kept:
        described = _codec_private_data(track) if track.segment_count else None
        if described is None:
            left_out.append(track)
            continue
        kind = "video" if track.is_video else "audio"
        name = kind if not any(s.track.is_video == track.is_video for s in streams) else \
            f"{kind}_{track.representation_id}".lower()
        starts, durations = _chunk_times(track)
        bitrate = max(track.timeline.average_bandwidth_bps(), 1)
        streams.append(SmoothStream(name, track, bitrate, described[1], described[0], starts, durations))
    if not streams:
        codecs = ", ".join(t.info.codec_string or t.info.fourcc.decode("latin-1") for t in left_out)
        raise UnpackageableMedia(f"no track can be packaged for SMOOTH (codecs: {codecs})")
    return streams, left_out


def _stream_index(parent: ET.Element, stream: SmoothStream) -> None:
    track, info = stream.track, stream.track.info
    attributes = {"Type": "video" if track.is_video else "audio", "Name": stream.name,
                  "Chunks": str(len(stream.starts)), "QualityLevels": "1",
                  "Url": f"QualityLevels({{bitrate}})/Fragments({stream.name}={{start time}})"}
    level = {"Index": "0", "Bitrate": str(stream.bitrate), "FourCC": stream.fourcc}
    if track.is_video:
        size = {"MaxWidth": str(info.width or 0), "MaxHeight": str(info.height or 0)}
        attributes.update(size, DisplayWidth=size["MaxWidth"], DisplayHeight=size["MaxHeight"])
        level.update(size)
    else:
        attributes["Language"] = track.language
        level.update(SamplingRate=str(info.sample_rate_hz or 0), Channels=str(info.channel_count or 0),
                     BitsPerSample="16", PacketSize="4", AudioTag="255")
    level["CodecPrivateData"] = stream.codec_private_data.hex().upper()
    element = ET.SubElement(parent, "StreamIndex", attributes)
    ET.SubElement(element, "QualityLevel", level)
    for position, (start, duration) in enumerate(zip(stream.starts, stream.durations)):
        chunk = {"t": str(int(start))} if position == 0 else {}
        chunk["d"] = str(int(duration))
        ET.SubElement(element, "c", chunk)


def client_manifest(streams: list[SmoothStream]) -> str:
    """The MS-SSTR client manifest (MajorVersion 2, MinorVersion 2, TimeScale 10 000 000) of `streams`."""
    root = ET.Element("SmoothStreamingMedia", {
        "MajorVersion": "2", "MinorVersion": "2", "TimeScale": str(TIMESCALE),
        "Duration": str(max((s.end for s in streams), default=0)),
    })
    for stream in streams:
        _stream_index(root, stream)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def find_stream(streams: list[SmoothStream], name: str, bitrate: int) -> SmoothStream:
    """The stream a fragment URL names. Raises NotFound for an unknown name or bitrate."""
    for stream in streams:
        if stream.name == name and stream.bitrate == bitrate:
            return stream
    raise NotFound("no such Smooth stream", stream=name, bitrate=bitrate)


def smooth_fragment(stream: SmoothStream, index: int) -> tuple[bytes, list[SourceRange]]:
    """Fragment `index` (0-based) of a stream: (moof + mdat header, the mdat payload's source ranges)."""
    tl = stream.track.timeline
    samples = sample_records(tl, index)
    table = tl.track.table
    window = slice(int(tl.first_sample[index]), int(tl.stop_sample[index]))
    dts = table.dts_ticks[window].astype(np.int64) + tl.decode_shift_ticks
    pts = dts + table.cts_offset_ticks[window] + tl.composition_shift_ticks
    decode_ends = np.append(dts[1:], dts[-1] + int(table.duration_ticks[window.stop - 1])) if len(dts) else dts
    dts_10 = rescale(dts, tl.timescale)
    start = int(stream.starts[index])
    samples["duration"] = rescale(decode_ends, tl.timescale) - dts_10
    samples["composition_offset"] = rescale(pts, tl.timescale) - (start + dts_10 - (dts_10[0] if len(dts) else 0))
    tfxd = box(b"uuid", TFXD_UUID + struct.pack(">IQQ", 1 << 24, start, int(stream.durations[index])))
    return movie_fragment(tl, index, samples, track_id=SMOOTH_TRACK_ID, after_trun=tfxd)
