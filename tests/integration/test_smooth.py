"""Smooth Streaming (MS-SSTR) of single MP4s over HTTP, judged by xml.etree, ffprobe/ffmpeg and a real player.

- The client manifest comes as application/vnd.ms-sstr+xml; MaxWidth/MaxHeight are ffprobe's coded size and
  DisplayWidth/DisplayHeight the size shown with ffprobe's sample aspect ratio.
- The client manifest parses; every StreamIndex's chunk times (t of the first c, then d) end where ffprobe says the
  stream ends, within one frame, and add up to the stream's duration within a frame.
- CodecPrivateData is the Annex-B SPS + PPS that ffmpeg's h264_mp4toannexb writes before the first frame, and the
  AudioSpecificConfig that ffprobe shows as the audio stream's extradata.
- Every Fragments URL the manifest yields answers 200 (video/mp4 or audio/mp4) with moof + mdat, no styp, tfhd
  track_ID 1, and a tfxd whose times are the chunk's c@t and c@d; the mdat holds exactly the trun's sample bytes.
- A time, bitrate or stream name the manifest does not list is 404; Range and If-None-Match work on fragments;
  HEVC is left out with a log line (Smooth carries H.264 and AAC only).
- Real player: dash.js with its MSS plugin plays edts.mp4 (edit list, B-frames) and a generated 60 s movie
  (irregular GOPs, 48 kHz audio, 2 s fragments) to the end and seeks (bbb_prog_10s.mp4, the two-language file and
  the .ism set play in tests/players/test_players_ours.py). sample.mp4 is too short (1 s) for
  the harness, which wants 1 s of playback after a seek to the middle, whatever the protocol.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import re
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path

import pytest

import mediatools as mt
from conftest import MEDIA_ROOT, make_config
from media_fixtures import movie_60s  # noqa: F401  (session fixture)

SHARED_FILES = ["mp4/bbb_prog_10s.mp4", "mp4/sample.mp4", "mp4/edts.mp4"]
TICKS = 10_000_000
TFXD_UUID = bytes.fromhex("6d1d9b0542d544e680e2141daff757b2")
PLAYERS_DIR = Path(__file__).resolve().parents[1] / "players"


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[bytes, int, int]]:
    """(4CC, payload start, box end) of the boxes in data[start:end] (32-bit sizes only, enough for fragments)."""
    end = len(data) if end is None else end
    found = []
    while start + 8 <= end:
        size, fourcc = struct.unpack_from(">I4s", data, start)
        assert size >= 8 and start + size <= end, (fourcc, size)
        found.append((fourcc, start + 8, start + size))
        start += size
    assert start == end
    return found


def _chunks(stream_index: ET.Element) -> list[tuple[int, int]]:
    """(t, d) of every chunk: t from the first c, then each previous t + d (MS-SSTR §2.2.2.5)."""
    times, t = [], None
    for c in stream_index.findall("c"):
        assert "r" not in c.attrib
        t = int(c.get("t")) if c.get("t") is not None else t
        d = int(c.get("d"))
        times.append((t, d))
        t += d
    return times


async def _manifest(client, path: str) -> ET.Element:
    resp = await client.get(f"/files/{path}/Manifest")
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"] == "application/vnd.ms-sstr+xml"
    root = ET.fromstring(await resp.text())
    assert root.tag == "SmoothStreamingMedia"
    assert (root.get("MajorVersion"), root.get("MinorVersion"), root.get("TimeScale")) == ("2", "2", str(TICKS))
    return root


def _fragment_urls(path: str, stream_index: ET.Element) -> list[tuple[str, int, int]]:
    level = stream_index.find("QualityLevel")
    template = stream_index.get("Url").replace("{bitrate}", level.get("Bitrate"))
    return [(f"/files/{path}/" + template.replace("{start time}", str(t)), t, d) for t, d in _chunks(stream_index)]


@pytest.mark.parametrize("name", SHARED_FILES)
async def test_manifest_times_match_ffprobe(edge, name):
    root = await _manifest(edge.client, name)
    streams = {s.get("Type"): s for s in root.findall("StreamIndex")}
    assert set(streams) == {"video", "audio"}
    ends = []
    for kind, sel, frame_s in (("video", "v:0", mt.video_frame_duration_s(MEDIA_ROOT / name)),
                               ("audio", "a:0", mt.audio_frame_duration_s(MEDIA_ROOT / name))):
        stream = streams[kind]
        chunks = _chunks(stream)
        assert int(stream.get("Chunks")) == len(chunks) > 0
        probe = next(s for s in mt.ffprobe_streams(MEDIA_ROOT / name) if s["codec_type"] == kind)
        start_s, duration_s = float(probe["start_time"]), float(probe["duration"])
        end = chunks[-1][0] + chunks[-1][1]
        ends.append(end)
        assert abs(end / TICKS - (start_s + duration_s)) <= frame_s, (kind, end, start_s, duration_s)
        assert abs(sum(d for _, d in chunks) / TICKS - duration_s) <= frame_s + start_s, kind
        assert all(d > 0 for _, d in chunks)
    assert int(root.get("Duration")) == max(ends)


@pytest.mark.parametrize("name", SHARED_FILES)
async def test_display_size_has_ffprobes_sample_aspect_ratio(edge, name):
    """MaxWidth/MaxHeight are the coded size; DisplayWidth/DisplayHeight the displayed one (bbb_prog_10s.mp4 has
    4:3 pixels in its pasp box only: 320x240 shown as 427x240)."""
    root = await _manifest(edge.client, name)
    video = root.find("StreamIndex[@Type='video']")
    probe = next(s for s in mt.ffprobe_streams(MEDIA_ROOT / name) if s["codec_type"] == "video")
    sar = Fraction(probe.get("sample_aspect_ratio", "1:1").replace(":", "/")) or Fraction(1)
    assert (int(video.get("MaxWidth")), int(video.get("MaxHeight"))) == (probe["width"], probe["height"])
    shown = (int(video.get("DisplayWidth")), int(video.get("DisplayHeight")))
    assert shown == (math.floor(probe["width"] * sar + Fraction(1, 2)), probe["height"])


@pytest.mark.parametrize("name", SHARED_FILES)
async def test_codec_private_data_matches_ffmpeg(edge, name):
    root = await _manifest(edge.client, name)
    video = root.find("StreamIndex[@Type='video']/QualityLevel")
    audio = root.find("StreamIndex[@Type='audio']/QualityLevel")
    assert video.get("FourCC") == "H264" and audio.get("FourCC") == "AACL"

    # SPS and PPS as ffmpeg writes them in Annex B before the first frame.
    annexb = subprocess.run([mt.FFMPEG, "-nostdin", "-v", "error", "-i", MEDIA_ROOT / name, "-map", "0:v:0",
                             "-c", "copy", "-bsf:v", "h264_mp4toannexb", "-frames:v", "1", "-f", "h264", "-"],
                            stdin=subprocess.DEVNULL, capture_output=True, check=True, timeout=60).stdout
    units = [u.lstrip(b"\0") for u in annexb.replace(b"\0\0\0\1", b"\0\0\1").split(b"\0\0\1") if u.strip(b"\0")]
    theirs = [u.rstrip(b"\0") for u in units if u[0] & 0x1F in (7, 8)]
    ours = [u for u in bytes.fromhex(video.get("CodecPrivateData")).split(b"\0\0\0\1") if u]
    assert ours == theirs and [u[0] & 0x1F for u in ours][:1] == [7]

    proc = mt.run([mt.FFPROBE, "-v", "error", "-select_streams", "a:0", "-show_streams", "-show_data",
                   MEDIA_ROOT / name], timeout=60)
    text = proc.stdout
    dump = text.split("extradata=", 1)[1].split("\n")[1:]
    # Hex dump lines: "00000000: 1210 56e5 00   ..V..": offset, 8 groups of 4 hex digits in 40 columns, text.
    extradata = "".join(line[10:50].replace(" ", "") for line in itertools.takewhile(
        lambda line: re.match(r"[0-9a-f]{8}: ", line), dump))
    assert audio.get("CodecPrivateData").lower() == extradata.lower()
    probe = next(s for s in mt.ffprobe_streams(MEDIA_ROOT / name) if s["codec_type"] == "audio")
    assert audio.get("SamplingRate") == probe["sample_rate"]
    assert audio.get("Channels") == str(probe["channels"])


@pytest.mark.parametrize("name", SHARED_FILES)
async def test_every_fragment_has_the_manifest_times(edge, name):
    root = await _manifest(edge.client, name)
    for stream_index in root.findall("StreamIndex"):
        kind = stream_index.get("Type")
        for url, t, d in _fragment_urls(name, stream_index):
            resp = await edge.client.get(url)
            assert resp.status == 200, url
            assert resp.headers["Content-Type"] == f"{kind}/mp4"
            body = await resp.read()
            top = _boxes(body)
            assert [b[0] for b in top] == [b"moof", b"mdat"], url
            moof = {fourcc: (s, e) for fourcc, s, e in _boxes(body, top[0][1], top[0][2])}
            traf = _boxes(body, *moof[b"traf"])
            kinds = [fourcc for fourcc, _, _ in traf]
            assert kinds[0] == b"tfhd" and b"trun" in kinds and b"tfdt" not in kinds
            tfhd_start = traf[0][1]
            assert struct.unpack_from(">I", body, tfhd_start + 4)[0] == 1
            uuids = [(s, e) for fourcc, s, e in traf if fourcc == b"uuid" and body[s : s + 16] == TFXD_UUID]
            assert len(uuids) == 1, url
            s, _ = uuids[0]
            assert body[s + 16] == 1  # version 1: 64-bit times
            assert struct.unpack_from(">QQ", body, s + 20) == (t, d), url
            _, trun_start, _ = next(b for b in traf if b[0] == b"trun")
            flags = struct.unpack_from(">I", body, trun_start)[0] & 0xFFFFFF
            count, data_offset = struct.unpack_from(">Ii", body, trun_start + 4)
            assert flags == 0xF01 and count > 0
            sizes = [struct.unpack_from(">I", body, trun_start + 12 + 16 * i + 4)[0] for i in range(count)]
            assert data_offset == top[1][1] and top[1][2] - top[1][1] == sum(sizes)


async def test_unknown_fragments_are_404_and_fragments_cache_like_files(edge):
    name = "mp4/bbb_prog_10s.mp4"
    root = await _manifest(edge.client, name)
    video = root.find("StreamIndex[@Type='video']")
    url, t, d = _fragment_urls(name, video)[1]
    bitrate = video.find("QualityLevel").get("Bitrate")
    for bad in (url.replace(f"video={t})", f"video={t + 1})"), url.replace(f"({bitrate})", f"({int(bitrate) + 1})"),
                url.replace("Fragments(video=", "Fragments(text="), url.replace("Fragments(video=", "Fragments(Video="),
                f"/files/{name}/QualityLevels({bitrate})/Fragments(video=-1)", f"/files/{name}/manifest"):
        assert (await edge.client.get(bad)).status == 404, bad
    full = await edge.client.get(url)
    body = await full.read()
    etag = full.headers["ETag"]
    other = await edge.client.get(_fragment_urls(name, video)[0][0])
    assert other.headers["ETag"] != etag
    part = await edge.client.get(url, headers={"Range": "bytes=8-99"})
    assert part.status == 206 and await part.read() == body[8:100]
    assert (await edge.client.get(url, headers={"If-None-Match": etag})).status == 304
    head = await edge.client.head(url)
    assert head.status == 200 and int(head.headers["Content-Length"]) == len(body)
    manifest = await edge.client.get(f"/files/{name}/Manifest")
    assert (await edge.client.get(f"/files/{name}/Manifest",
                                  headers={"If-None-Match": manifest.headers["ETag"]})).status == 304


async def test_hevc_is_left_out_with_a_log_line(edge, caplog):
    caplog.set_level(logging.INFO, logger="origin_proxy.server")
    root = await _manifest(edge.client, "mp4/ed_hevc.mp4")  # HEVC + AAC: the AAC alone
    assert [s.get("Type") for s in root.findall("StreamIndex")] == ["audio"]
    assert any("SMOOTH leaves out track 1 hvc1" in r.getMessage() for r in caplog.records), caplog.text


async def test_generated_movie_fragments_and_times(edge_client, movie_60s):  # noqa: F811
    """Irregular GOPs, B-frames and 48 kHz audio (10 MHz / 48 kHz is no integer) cut at 2 s: the same checks."""
    client = await edge_client([{"from": "/files/", "to": "file://" + os.fspath(movie_60s.parent) + "/",
                                 "segment_duration_s": 2}])
    root = await _manifest(client, movie_60s.name)
    for stream_index in root.findall("StreamIndex"):
        chunks = _chunks(stream_index)
        assert len(chunks) >= 25
        assert all(t + d == next_t for (t, d), (next_t, _) in zip(chunks, chunks[1:]))
        for url, t, d in _fragment_urls(movie_60s.name, stream_index):
            body = await (await client.get(url)).read()
            at = body.find(TFXD_UUID)
            assert at > 0 and struct.unpack_from(">QQ", body, at + 20) == (t, d), url
    probe = mt.ffprobe_streams(movie_60s)
    for stream_index in root.findall("StreamIndex"):
        kind = stream_index.get("Type")
        stream = next(s for s in probe if s["codec_type"] == kind)
        t, d = _chunks(stream_index)[-1]
        assert abs((t + d) / TICKS - float(stream["start_time"]) - float(stream["duration"])) < 0.05, kind


def _play(rules: list[dict], path: str) -> dict:
    sys.path.insert(0, str(PLAYERS_DIR))
    from harness import play, serve_in_thread
    from origin_proxy.server.app import make_app

    with serve_in_thread(make_app(make_config(rules))) as base:
        return play(f"{base}/files/{path}/Manifest", "dashjs", timeout_s=60)


@pytest.mark.players
@pytest.mark.parametrize("name", ["mp4/edts.mp4"])
def test_dashjs_mss_plays_and_seeks(name):
    result = _play([{"from": "/files/", "to": "file://" + os.fspath(MEDIA_ROOT) + "/"}], name)
    assert result["ok"], result
    video = next(s for s in mt.ffprobe_streams(MEDIA_ROOT / name) if s["codec_type"] == "video")
    assert (result["video_width"], result["video_height"]) == (video["width"], video["height"])
    assert result["audio_tracks"] == 1 and abs(result["duration"] - mt.duration_s(MEDIA_ROOT / name)) < 0.1


@pytest.mark.players
def test_dashjs_mss_plays_the_generated_60s_movie(movie_60s):  # noqa: F811
    result = _play([{"from": "/files/", "to": "file://" + os.fspath(movie_60s.parent) + "/",
                     "segment_duration_s": 2}], movie_60s.name)
    assert result["ok"], result
    assert abs(result["duration"] - 60) < 0.2 and result["seek_point"] > 25
