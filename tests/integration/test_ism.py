"""Multi-bitrate sets over HTTP: a `.ism` server manifest naming three H.264 variants (identical GOPs, 320x180 to
960x540) and one AAC track, packaged as one HLS master playlist and one MPD. Judged by ffprobe, ffmpeg, and the m3u8
/ mpegdash parsers, never by our own code.

- master.m3u8: three EXT-X-STREAM-INF with increasing BANDWIDTH and the RESOLUTION ffprobe reports for each
  source, one audio rendition; manifest.mpd: one video AdaptationSet with three Representations, one audio.
- ffmpeg decodes each variant's media playlist frame-identically (framemd5) to its source MP4; the audio playlist
  has the source's presented audio packets (within 1).
- The same set through an HTTP upstream gives the same manifests.
- Bad sets: a `..`, absolute or URL src, a DOCTYPE, a missing file, a missing track, an oversized .ism get a mapped
  4xx/5xx (never a 500); variants with other GOPs are served with one WARNING.
"""

from __future__ import annotations

import asyncio
import logging
import os

import m3u8
import pytest
from mpegdash.parser import MPEGDASHParser

import mediatools as mt
from ism_sets import AUDIO_BITRATE, VARIANTS, IsmSet, ism_text, make_ism_set

SET_URL = "/sets/set.ism"


@pytest.fixture(scope="module")
def ism_set(tmp_path_factory) -> IsmSet:
    return make_ism_set(tmp_path_factory.mktemp("ism-set"))


@pytest.fixture
async def client(edge_client, ism_set):
    return await edge_client([{"from": "/sets/", "to": "file://" + os.fspath(ism_set.folder) + "/",
                               "segment_duration_s": 2}])


def _framemd5(target: str, stream: str) -> list[str]:
    proc = mt.run([mt.FFMPEG, "-nostdin", "-v", "error", "-i", target, "-map", f"0:{stream}",
                   "-fps_mode", "passthrough", "-f", "framemd5", "-"], timeout=300)
    assert not proc.stderr.strip(), proc.stderr[-2000:]
    return [line.rsplit(",", 1)[1].strip() for line in proc.stdout.splitlines() if line and not line.startswith("#")]


def _presented_audio_packets(target: str) -> int:
    return sum(1 for p in mt.ffprobe_packets(target, "a:0") if not p.discard)


async def test_master_lists_every_variant_by_bandwidth(client, ism_set):
    resp = await client.get(f"{SET_URL}/master.m3u8")
    assert resp.status == 200 and resp.content_type == "application/vnd.apple.mpegurl"
    master = m3u8.loads(await resp.text())
    assert len(master.playlists) == 3
    bandwidths = [p.stream_info.bandwidth for p in master.playlists]
    assert bandwidths == sorted(bandwidths) and len(set(bandwidths)) == 3
    for variant, source in zip(master.playlists, ism_set.videos):
        video = next(s for s in mt.ffprobe_streams(source) if s["codec_type"] == "video")
        assert variant.stream_info.resolution == (video["width"], video["height"])
        assert variant.stream_info.audio == master.media[0].group_id
    assert [m.type for m in master.media] == ["AUDIO"]
    alias = await client.get(f"{SET_URL}/.m3u8")
    assert await alias.read() == (await (await client.get(f"{SET_URL}/master.m3u8")).read())


async def test_mpd_has_one_adaptation_set_of_three_representations(client, ism_set):
    resp = await client.get(f"{SET_URL}/manifest.mpd")
    assert resp.status == 200 and resp.content_type == "application/dash+xml"
    mpd = MPEGDASHParser.parse(await resp.text())
    sets = mpd.periods[0].adaptation_sets
    video = [a for a in sets if a.content_type == "video"]
    audio = [a for a in sets if a.content_type == "audio"]
    assert len(video) == 1 and len(video[0].representations) == 3
    assert len(audio) == 1 and len(audio[0].representations) == 1
    sizes = [(r.width, r.height) for r in video[0].representations]
    expected = []
    for source in ism_set.videos:
        stream = next(s for s in mt.ffprobe_streams(source) if s["codec_type"] == "video")
        expected.append((stream["width"], stream["height"]))
    assert sizes == expected
    for rep in video[0].representations + audio[0].representations:
        init = await client.get(f"{SET_URL}/cmaf1/{rep.id}/init.mp4")
        first = await client.get(f"{SET_URL}/cmaf1/{rep.id}/1.m4s")
        assert (init.status, first.status) == (200, 200)


@pytest.mark.parametrize("position", [1, 2, 3])
async def test_each_variant_decodes_like_its_source(client, ism_set, position):
    url = str(client.make_url(f"{SET_URL}/cmaf1/v{position}/playlist.m3u8"))
    ours = await asyncio.to_thread(_framemd5, url, "v:0")
    theirs = await asyncio.to_thread(_framemd5, str(ism_set.videos[position - 1]), "v:0")
    assert ours == theirs and len(theirs) == 24 * 24


async def test_audio_rendition_has_the_source_packets(client, ism_set):
    url = str(client.make_url(f"{SET_URL}/cmaf1/a4/playlist.m3u8"))
    ours = await asyncio.to_thread(_presented_audio_packets, url)
    assert abs(ours - _presented_audio_packets(str(ism_set.videos[0]))) <= 1


async def test_the_set_through_an_http_upstream(edge_client, start_upstream, ism_set, client):
    upstream = await start_upstream(ism_set.folder)
    up = await edge_client([{"from": "/up/", "to": upstream.url + "/media/", "segment_duration_s": 2}])
    for resource in ("master.m3u8", "manifest.mpd", "cmaf1/v2/playlist.m3u8", "cmaf1/a4/init.mp4"):
        theirs = await (await client.get(f"{SET_URL}/{resource}")).read()
        resp = await up.get(f"/up/set.ism/{resource}")
        assert resp.status == 200 and await resp.read() == theirs
    local = await client.get(f"{SET_URL}/cmaf1/v3/5.m4s")
    remote = await up.get("/up/set.ism/cmaf1/v3/5.m4s")
    assert await remote.read() == await local.read()


async def test_track_tokens_outside_the_switch_are_404(client):
    for resource in ("cmaf1/v5/1.m4s", "cmaf1/a1/1.m4s", "cmaf1/v4/init.mp4", "cmaf1/v1/99.m4s", "cmaf1/v0/1.m4s"):
        assert (await client.get(f"{SET_URL}/{resource}")).status == 404, resource


BAD_SETS = {  # name: (.ism text, status of the manifests, status of cmaf1/v1/init.mp4)
    "dotdot.ism": (ism_text([("video", "../escape.mp4", 300_000, 1)]), 502, 502),
    "absolute.ism": (ism_text([("video", "/etc/movie.mp4", 300_000, 1)]), 502, 502),
    "url.ism": (ism_text([("video", "http://example.com/movie.mp4", 300_000, 1)]), 502, 502),
    "missing.ism": (ism_text([("video", "movie_300k.mp4", 300_000, 1), ("video", "gone.mp4", 800_000, 1)]),
                    502, 200),
    "notrack.ism": (ism_text([("video", "movie_800k.mp4", 300_000, 2)]), 502, 502),
    "doctype.ism": ('<?xml version="1.0"?><!DOCTYPE smil [<!ENTITY a "aaaaaaaaaa">]>'
                    '<smil xmlns="http://www.w3.org/2001/SMIL20/Language"><body><switch>'
                    '<video src="movie_300k.mp4" systemBitrate="1"/></switch></body></smil>', 502, 502),
    "notxml.ism": ("<smil><body><switch><video src=", 502, 502),
    "empty.ism": ('<smil xmlns="http://www.w3.org/2001/SMIL20/Language"><body><switch/></body></smil>', 502, 502),
    "huge.ism": (ism_text([("video", "movie_300k.mp4", 300_000, 1)]) + "<!-- " + "x" * 300_000 + " -->", 501, 501),
}


@pytest.mark.parametrize("name", sorted(BAD_SETS))
async def test_bad_server_manifests_get_a_mapped_status(client, ism_set, name):
    text, manifest_status, init_status = BAD_SETS[name]
    (ism_set.folder / name).write_text(text)
    for resource, status in (("master.m3u8", manifest_status), ("manifest.mpd", manifest_status),
                             ("cmaf1/v1/init.mp4", init_status)):
        resp = await client.get(f"/sets/{name}/{resource}")
        assert resp.status == status, (name, resource, resp.status, await resp.text())
    if name == "missing.ism":
        assert (await client.get(f"/sets/{name}/cmaf1/v2/1.m4s")).status == 502
    assert (await client.get("/sets/nothere.ism/master.m3u8")).status == 404


async def test_mismatched_gops_are_served_with_one_warning(client, ism_set, caplog):
    other = ism_set.folder / "movie_gop30.mp4"
    mt.run([mt.FFMPEG, "-nostdin", "-y", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=24",
            "-t", "24", "-c:v", "libx264", "-preset", "superfast", "-g", "30", "-keyint_min", "30",
            "-sc_threshold", "0", other])
    (ism_set.folder / "mixed.ism").write_text(ism_text([("video", VARIANTS[1][0], 800_000, 1),
                                                        ("video", other.name, 300_000, 1),
                                                        ("audio", VARIANTS[0][0], AUDIO_BITRATE, 2)]))
    caplog.set_level(logging.WARNING, logger="origin_proxy.server")
    for resource in ("master.m3u8", "manifest.mpd", "master.m3u8"):
        assert (await client.get(f"/sets/mixed.ism/{resource}")).status == 200
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "mismatched GOPs" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    master = m3u8.loads(await (await client.get("/sets/mixed.ism/master.m3u8")).text())
    assert sorted(p.uri for p in master.playlists) == ["cmaf1/v1/playlist.m3u8", "cmaf1/v2/playlist.m3u8"]
