"""isobmff/codecs.py against ffprobe: codec strings rebuilt from ffprobe's profile/level fields, picture and sound
facts from its stream fields. The moov is located with a tiny top-level walk (no loader, no event loop)."""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import media
from origin_proxy.isobmff.codecs import (av1_codec_string, describe_sample_entry, first_sample_entry,
                                         hevc_codec_string, mp4a_codec_string)
from origin_proxy.isobmff.movie import parse_moov

AVC_PROFILE_IDC = {"Baseline": 66, "Constrained Baseline": 66, "Main": 77, "High": 100, "High 10": 110,
                   "High 4:2:2": 122, "High 4:4:4 Predictive": 244}
HEVC_PROFILE_IDC = {"Main": 1, "Main 10": 2, "Main Still Picture": 3, "Rext": 4}
AV1_PROFILE = {"Main": 0, "High": 1, "Professional": 2}
AAC_OBJECT_TYPE = {"LC": 2, "HE-AAC": 5, "HE-AACv2": 29, "Main": 1, "LTP": 4}

FILES = ["mp4/sample.mp4", "mp4/sample_simple.mp4", "mp4/bbb_prog_10s.mp4", "mp4/iibbibb_editlist_videoonly.mp4",
         "mp4/ed_hevc.mp4", "mp4/h265_bframes.mp4", "mp4/hevc_hev1_mp4ff.mp4", "mov/sample_edit_list.mp4",
         "mp4/sample_av1.mp4", "mp4/tiny_av1.mp4", "mp4/sample_opus.mp4", "mp4/sample_ac3_aac.mp4",
         "mp4/sample_eac3.mp4", "mp4/multiple-aac-tracks.mp4", "mov/bt601.mov", "mov/sowt-with-video.mov"]


def _entries(name: str) -> list[tuple[bytes, bytes]]:
    """(handler_type, first sample entry) per media track, in file order."""
    data = media(name).read_bytes()
    offset = 0
    while data[offset + 4 : offset + 8] != b"moov":
        size = int.from_bytes(data[offset : offset + 4], "big")
        offset += size if size > 1 else int.from_bytes(data[offset + 8 : offset + 16], "big")
    size = int.from_bytes(data[offset : offset + 4], "big")
    movie = parse_moov(data[offset : offset + size], len(data), 10**7)
    found = []
    for track in movie.tracks:
        stsd = track.trak.child(b"mdia").child(b"minf").child(b"stbl").child(b"stsd")
        found.append((track.handler_type, first_sample_entry(stsd.payload[8:])))
    return found


def _ffprobe_streams(name: str) -> list[dict]:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(media(name))],
                         check=True, capture_output=True, text=True).stdout
    return [s for s in json.loads(out)["streams"] if s["codec_type"] in ("video", "audio")]


def _expected_codec_string(stream: dict) -> str:
    codec, tag = stream["codec_name"], stream["codec_tag_string"]
    if codec == "h264":
        idc = AVC_PROFILE_IDC[stream["profile"]]
        constraint = {"Constrained Baseline": "c0"}.get(stream["profile"], "")  # checked by prefix otherwise
        return f"{tag}.{idc:02x}{constraint or '??'}{stream['level']:02x}"
    if codec == "hevc":
        idc = HEVC_PROFILE_IDC[stream["profile"]]
        compat = {1: 6, 2: 4}[idc]  # Main streams also claim Main 10 compatibility (flags 1 and 2), reversed
        return f"{tag}.{idc}.{compat}.L{stream['level']}"
    if codec == "av1":
        depth = 10 if "10" in stream["pix_fmt"] else 12 if "12" in stream["pix_fmt"] else 8
        return f"av01.{AV1_PROFILE[stream['profile']]}.{stream['level']:02d}M.{depth:02d}"
    if codec == "aac":
        return f"mp4a.40.{AAC_OBJECT_TYPE[stream['profile']]}"
    return {"opus": "opus", "ac3": "ac-3", "eac3": "ec-3"}.get(codec, tag)


def _matches(ours: str, expected: str) -> bool:
    if "??" in expected:  # AVC constraint_set flags: ffprobe names the profile, not the flag byte
        head, tail = expected.split("??")
        return ours.startswith(head) and ours.endswith(tail) and len(ours) == len(expected)
    if expected.startswith(("hvc1", "hev1")):  # constraint indicator bytes follow; ffprobe does not show them
        return ours == expected or ours.startswith(expected + ".")
    return ours == expected


@pytest.mark.parametrize("name", FILES)
def test_codec_strings_and_facts_match_ffprobe(name):
    ours = [describe_sample_entry(entry, handler) for handler, entry in _entries(name)]
    streams = _ffprobe_streams(name)
    assert len(ours) == len(streams)
    for info, stream in zip(ours, streams):
        expected = _expected_codec_string(stream)
        assert _matches(info.codec_string, expected), (info.codec_string, expected)
        assert info.fourcc.decode() == stream["codec_tag_string"]
        if stream["codec_type"] == "video":
            assert (info.width, info.height) == (stream["width"], stream["height"])
        else:
            assert info.sample_rate_hz == int(stream["sample_rate"])
            assert info.channel_count == stream["channels"]


def test_high_profile_avc_string_is_exact():
    (entry,) = [entry for handler, entry in _entries("mp4/sample.mp4") if handler == b"vide"]
    assert describe_sample_entry(entry, b"vide").codec_string == "avc1.64001f"


def test_hevc_profile_space_tier_and_constraints():
    # profile_space 1 (A), high tier, profile_idc 2; compatibility flag 2 only; level 153; constraints B0 00 .. 01
    record = bytes([1, 0x40 | 0x20 | 2]) + (0x20000000).to_bytes(4, "big") + bytes([0xB0, 0, 0, 0, 0, 1, 153])
    assert hevc_codec_string("hvc1", record) == "hvc1.A2.4.H153.B0.0.0.0.0.1"


def test_av1_high_bitdepth_and_tier():
    assert av1_codec_string(bytes([0x81, (1 << 5) | 13, 0x80 | 0x40])) == "av01.1.13H.10"
    assert av1_codec_string(bytes([0x01, 0, 0])) is None  # marker bit clear


def test_mp4a_escape_object_type_and_non_mpeg4_audio():
    def esds(object_type: int, specific: bytes) -> bytes:
        dsi = bytes([5, len(specific)]) + specific
        dcd = bytes([4, 13 + len(dsi), object_type, 0x15]) + bytes(11) + dsi
        return bytes(4) + bytes([3, 3 + len(dcd), 0, 1, 0]) + dcd

    assert mp4a_codec_string(esds(0x40, bytes([0xF8, 0x20]))) == "mp4a.40.33"  # 31 -> 32 + 1
    assert mp4a_codec_string(esds(0x6B, b"")) == "mp4a.6b"
    assert mp4a_codec_string(b"\0\0\0\0\x07") is None
