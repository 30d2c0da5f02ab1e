"""Lip sync for players that ignore edit lists (issue 17, rewrite/select.py `lead_in_start_s`).

A clip far from its key frame keeps the video from that key frame on, hidden by its edit list. A player that
ignores edit lists (mplayer; `ffmpeg -ignore_editlist 1` here) shows that lead-in; the clip's audio now has the
same hidden lead-in, so such a player hears the audio of the moment it shows. Oracle, all from ffprobe:
the packets of the clip are matched to the source's by their data hash, which gives each one its presentation
time in the source (edit lists applied); under `-ignore_editlist 1` the first video frame and the first audio
packet of the clip must then be offset from their source times by the same amount, within one audio frame
(1024 samples at 48 kHz = 21.3 ms). Edit-list-aware reading still starts exactly at `start`: the first frame shown
is the source's frame at `start` (framemd5) and both tracks start at 0.
The source: 30 s, H.264 with B-frames and 10 s GOPs, AAC 48 kHz; start=17.96 is 7.96 s after its key frame.
"""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path

import pytest

import mediatools as mt

START = "17.96"
START_S = Fraction(START)
AUDIO_FRAME_S = Fraction(1024, 48000)


@pytest.fixture(scope="module")
def long_gop(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("lipsync") / "long_gop.mp4"
    mt.run([mt.FFMPEG, "-nostdin", "-y", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
            "-f", "lavfi", "-i", "sine=frequency=440:beep_factor=4:sample_rate=48000", "-t", "30",
            "-c:v", "libx264", "-preset", "superfast", "-pix_fmt", "yuv420p", "-bf", "3",
            "-g", "250", "-keyint_min", "250", "-sc_threshold", "0",
            "-c:a", "aac", "-ar", "48000", "-ac", "2", "-b:a", "96k", "-movflags", "+faststart", path], timeout=120)
    return path


def _packets(path: Path, stream: str, ignore_editlist: bool) -> list[tuple[Fraction, str]]:
    """(pts seconds, data hash) of every packet of `stream`, in file order."""
    argv = [mt.FFPROBE, "-v", "error"] + (["-ignore_editlist", "1"] if ignore_editlist else [])
    argv += ["-select_streams", stream, "-show_data_hash", "MD5", "-show_entries",
             "stream=time_base:packet=pts,data_hash", "-of", "json", os.fspath(path)]
    data = json.loads(mt.run(argv).stdout)
    time_base = Fraction(data["streams"][0]["time_base"])
    return [(int(p["pts"]) * time_base, p["data_hash"]) for p in data["packets"] if p.get("pts") not in (None, "N/A")]


def _offset_s(source: Path, clip: Path, stream: str) -> tuple[Fraction, Fraction]:
    """(source time - clip time under -ignore_editlist of the clip's first presented packet of `stream`, that
    packet's clip time)."""
    source_times = {}
    for pts, digest in _packets(source, stream, ignore_editlist=False):
        source_times.setdefault(digest, pts)
    clip_pts, digest = min(_packets(clip, stream, ignore_editlist=True))
    assert digest in source_times, f"{stream}: the clip's first packet is not one of the source's"
    return source_times[digest] - clip_pts, clip_pts


async def _clip(edge_client, source: Path, query: str, out: Path) -> Path:
    client = await edge_client([{"from": "/m/", "to": f"file://{source.parent}/"}])
    resp = await client.get(f"/m/{source.name}?{query}")
    assert resp.status == 200, await resp.text()
    out.write_bytes(await resp.read())
    return out


async def test_edit_list_ignoring_reader_sees_audio_and_video_start_together(edge_client, long_gop, tmp_path):
    clip = await _clip(edge_client, long_gop, f"start={START}", tmp_path / "clip.mp4")
    video_offset, video_clip_pts = _offset_s(long_gop, clip, "v:0")
    audio_offset, _ = _offset_s(long_gop, clip, "a:0")
    # The video really has a long lead-in (its key frame is ~8 s before start) ...
    assert START_S - (video_offset + video_clip_pts) > 7
    # ... and the audio leads in with it: the same source-to-clip offset, within one audio frame.
    assert abs(video_offset - audio_offset) <= AUDIO_FRAME_S, (float(video_offset), float(audio_offset))


async def test_edit_list_aware_reader_still_starts_exactly_at_start(edge_client, long_gop, tmp_path):
    clip = await _clip(edge_client, long_gop, f"start={START}&end=22", tmp_path / "clip.mp4")
    assert mt.decode_errors(clip) == ""
    assert mt.framemd5(clip, count=1) == [mt.first_frame_md5_at(long_gop, START_S)]
    streams = {s["codec_type"]: s for s in mt.ffprobe_streams(clip)}
    assert abs(Fraction(streams["video"]["start_time"])) <= Fraction(1, 25)
    assert abs(Fraction(streams["audio"]["start_time"])) <= AUDIO_FRAME_S
    # What is shown lasts end - start, not the hidden lead-in too.
    assert float(streams["audio"]["duration"]) == pytest.approx(22 - float(START_S), abs=0.05)


async def test_a_clip_on_a_key_frame_hides_only_a_short_audio_lead_in(edge_client, long_gop, tmp_path):
    """Start on the key frame at 10 s: the video hides nothing but its B-frame delay (2 frames, 80 ms), which an
    edit-list-ignoring reader shows as a delay, so the audio hides that much plus at most one AAC frame."""
    clip = await _clip(edge_client, long_gop, "start=10&end=12", tmp_path / "clip.mp4")
    audio = _packets(clip, "a:0", ignore_editlist=True)
    shown = _packets(clip, "a:0", ignore_editlist=False)
    hidden_s = shown[-1][0] - audio[-1][0]  # the same last packet, with and without the edit
    assert -(Fraction(2, 25) + AUDIO_FRAME_S) <= hidden_s <= 0
