"""ISO BMFF files under the other names users give them (.m4a, .m4v, .mp4a, .isma, .ismv) are packaged like .mp4:
an audio-only .m4a (made with ffmpeg) gives an audio-only HLS master and MPD whose playlist ffmpeg decodes to the
source's audio packet count; a .m4v copy of a shared movie gives the same master playlist as its .mp4; a fragmented
file named .ismv answers a clear 415 (fragmented input), never 404 "no such file"."""

from __future__ import annotations

import asyncio
import os
import shutil
import xml.etree.ElementTree as ET

import m3u8
import pytest

import mediatools as mt
from conftest import media


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("iso-names")
    mt.run([mt.FFMPEG, "-nostdin", "-y", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
            "-t", "3", "-c:a", "aac", "-b:a", "96k", root / "song.m4a"])
    shutil.copyfile(media("mp4/sample.mp4"), root / "clip.m4v")
    shutil.copyfile(media("mp4/sample.mp4"), root / "clip.mp4")
    shutil.copyfile(media("mp4/sample.mp4"), root / "audio.mp4a")
    shutil.copyfile(media("fmp4/sample_fragmented.mp4"), root / "live.ismv")
    return root


@pytest.fixture
async def client(edge_client, folder):
    return await edge_client([{"from": "/m/", "to": "file://" + os.fspath(folder) + "/"}])


async def test_audio_only_m4a_gives_an_audio_only_presentation(client, folder):
    resp = await client.get("/m/song.m4a/master.m3u8")
    assert resp.status == 200
    master = m3u8.loads(await resp.text())
    assert [p.stream_info.codecs for p in master.playlists] == ["mp4a.40.2"] and not master.media
    mpd = ET.fromstring(await (await client.get("/m/song.m4a/manifest.mpd")).text())
    ns = {"d": "urn:mpeg:dash:schema:mpd:2011"}
    assert [a.get("contentType") for a in mpd.iterfind(".//d:AdaptationSet", ns)] == ["audio"]
    url = str(client.make_url("/m/song.m4a/" + master.playlists[0].uri))
    decoded = await asyncio.to_thread(  # ffmpeg reads from this test's own server: keep the loop running
        mt.run, [mt.FFMPEG, "-nostdin", "-v", "error", "-i", url, "-map", "0:a", "-f", "framemd5", "-"])
    frames = [line for line in decoded.stdout.splitlines() if line and not line.startswith("#")]
    expected = sum(1 for p in mt.ffprobe_packets(folder / "song.m4a", "a:0") if not p.discard)
    assert abs(len(frames) - expected) <= 1, (len(frames), expected)


async def test_m4v_and_mp4a_are_packaged_like_mp4(client):
    same = await (await client.get("/m/clip.mp4/master.m3u8")).text()
    assert (await (await client.get("/m/clip.m4v/master.m3u8")).text()) == same
    assert (await client.get("/m/audio.mp4a/manifest.mpd")).status == 200
    resp = await client.get("/m/song.m4a")
    assert resp.status == 200 and resp.content_type == "audio/mp4"


async def test_fragmented_ismv_is_a_clear_415(client):
    resp = await client.get("/m/live.ismv/master.m3u8")
    assert resp.status == 415, (resp.status, await resp.text())
    assert "fragmented" in (await resp.text()).lower()
