"""isobmff/fragment.py against ffprobe's packet list of real ffmpeg fragmented output, and hostile sizes."""

from __future__ import annotations

import json
import struct
import subprocess

import pytest

from origin_proxy.errors import MalformedBox
from origin_proxy.isobmff.fragment import parse_moof


def _top_boxes(data: bytes):
    pos = 0
    while pos < len(data):
        size, fourcc = struct.unpack_from(">I4s", data, pos)
        yield fourcc, data[pos : pos + size]
        pos += size


def _packets(path) -> list[dict]:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_packets", "-of", "json", str(path)],
                         capture_output=True, check=True).stdout
    return json.loads(out)["packets"]


@pytest.mark.parametrize("capture", ["smooth_capture", "cmaf_capture"])
def test_sizes_and_key_flags_match_ffprobe(request, capture):
    path = request.getfixturevalue(capture)
    data = path.read_bytes()
    sizes: dict[int, list[int]] = {}
    keys: dict[int, list[bool]] = {}
    for fourcc, raw in _top_boxes(data):
        if fourcc == b"moof":
            for traf in parse_moof(raw).trafs:
                sizes.setdefault(traf.track_id, []).extend(traf.samples["size"].tolist())
                keys.setdefault(traf.track_id, []).extend((~traf.samples["flags"] & 0x10000 > 0).tolist())
    packets = _packets(path)
    assert sizes, "no fragments parsed"
    for track_id, found in sizes.items():
        mine = [p for p in packets if p["stream_index"] == track_id - 1]
        assert found == [int(p["size"]) for p in mine]
        if track_id == 1:  # video: key flags as ffprobe sees them
            assert keys[track_id] == ["K" in p["flags"] for p in mine]


def test_cmaf_decode_times_are_contiguous(cmaf_capture):
    trafs = [parse_moof(raw).trafs[0] for fourcc, raw in _top_boxes(cmaf_capture.read_bytes()) if fourcc == b"moof"]
    assert len(trafs) >= 3
    for before, after in zip(trafs, trafs[1:]):
        assert after.base_media_decode_time == before.base_media_decode_time + before.duration


def test_smooth_audio_time_is_negative(smooth_capture):
    """ffmpeg's ismv audio starts before 0 (AAC priming); tfxd times are read signed."""
    times = [t.tfxd_time for fourcc, raw in _top_boxes(smooth_capture.read_bytes()) if fourcc == b"moof"
             for t in parse_moof(raw).trafs if t.track_id == 2]
    assert times[0] < 0 < times[1]


def test_hostile_sample_count_is_refused(cmaf_capture):
    moof = next(raw for fourcc, raw in _top_boxes(cmaf_capture.read_bytes()) if fourcc == b"moof")
    pos = moof.index(b"trun")
    hostile = moof[: pos + 8] + struct.pack(">I", 0xFFFFFFF0) + moof[pos + 12 :]
    with pytest.raises(MalformedBox):
        parse_moof(hostile)
    with pytest.raises(MalformedBox):
        parse_moof(moof[:-4])
