"""hls.py and dash.py over real timelines (pure): the RFC 8216 target duration rule and SegmentTimeline run-length
coding, checked against the segment durations themselves, plus the codec matrix (mp4v/sowt left out)."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from fractions import Fraction

import pytest

from conftest import MEDIA_ROOT
from origin_proxy.errors import UnpackageableMedia
from origin_proxy.isobmff.header import iter_boxes
from origin_proxy.isobmff.movie import parse_moov
from origin_proxy.package import manifests
from origin_proxy.package.tracks import package_movie

NS = {"mpd": "urn:mpeg:dash:schema:mpd:2011"}


def _packaging(name: str, target_s: Fraction = Fraction(2)):
    data = (MEDIA_ROOT / name).read_bytes()
    moov = next(s for s in iter_boxes(data, 0, len(data), "") if s.fourcc == b"moov")
    return package_movie(parse_moov(data[moov.offset : moov.end], len(data), 10**7), target_s)


@pytest.mark.parametrize("name", ["mp4/long_1080p_lowbitrate.mp4", "mp4/bbb_prog_10s.mp4", "mp4/cursed-vfr.mp4"])
def test_media_playlist_target_duration(name):
    packaging = _packaging(name)
    for track in packaging.tracks:
        lines = manifests.media_playlist(track).splitlines()
        target = int(next(line for line in lines if line.startswith("#EXT-X-TARGETDURATION:")).split(":")[1])
        extinf = [float(line[8:].rstrip(",")) for line in lines if line.startswith("#EXTINF:")]
        assert len(extinf) == track.segment_count
        assert all(round(d) <= target for d in extinf)
        assert target == max(1, math.ceil(max(extinf)))
        assert all(len(line[8:].rstrip(",").split(".")[1]) >= 3 for line in lines if line.startswith("#EXTINF:"))


@pytest.mark.parametrize("name", ["mp4/long_1080p_lowbitrate.mp4", "mp4/multiple-aac-tracks.mp4"])
def test_segment_timeline_run_length(name):
    packaging = _packaging(name)
    kept, _ = packaging.carried_by("dash")
    root = ET.fromstring(manifests.mpd(packaging, kept))
    for rep in root.iterfind(".//mpd:Representation", NS):
        track = packaging.track(rep.get("id"))
        expanded = []
        entries = rep.findall(".//mpd:S", NS)
        for s in entries:
            expanded += [int(s.get("d"))] * (1 + int(s.get("r", "0")))
        ticks = [round(d * track.timeline.timescale) for d in track.segment_durations_s()]
        assert expanded == ticks
        # run-length: no two neighbouring S elements share a duration
        assert all(a.get("d") != b.get("d") for a, b in zip(entries, entries[1:]))


def test_codec_matrix_leaves_out_pcm():
    packaging = _packaging("mov/sowt-with-video.mov")
    kept, left_out = packaging.carried_by("hls")
    assert [t.info.fourcc for t in kept] == [b"avc1"] and [t.info.fourcc for t in left_out] == [b"sowt"]
    assert "sowt" not in manifests.master_playlist(kept) and "AUDIO=" not in manifests.master_playlist(kept)


def test_nothing_packageable():
    packaging = _packaging("mov/sowt-with-video.mov")
    audio_only = type(packaging)(tuple(t for t in packaging.tracks if not t.is_video), packaging.target_duration_s)
    with pytest.raises(UnpackageableMedia):
        audio_only.carried_by("dash")
