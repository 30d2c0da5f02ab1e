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
- Smooth (`set.ism/Manifest`, application/vnd.ms-sstr+xml): one video StreamIndex of three QualityLevels (Bitrate =
  systemBitrate, MaxWidth/MaxHeight = ffprobe's size of each source, the largest on the StreamIndex), chunks at
  ffprobe's key frames; each level's fragments hold the source's packets (bytes from ffprobe's pos/size) at
  ffprobe's presentation times, and their NAL units decode frame-identically (framemd5); the audio fragments hold
  the source's AAC packets. Unknown bitrate, stream or time and malformed fragment paths are 404 with a log line;
  Range and If-None-Match work on fragments. A variant with other GOPs is left out of Smooth with one WARNING.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import struct
import xml.etree.ElementTree as ET

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


def _without_version(body: bytes) -> bytes:
    return re.sub(rb"[0-9a-f]{16}/", b"", body)


async def test_the_set_through_an_http_upstream(edge_client, start_upstream, ism_set, client):
    upstream = await start_upstream(ism_set.folder)
    up = await edge_client([{"from": "/up/", "to": upstream.url + "/media/", "segment_duration_s": 2}])
    for resource in ("master.m3u8", "manifest.mpd", "Manifest", "cmaf1/v2/playlist.m3u8", "cmaf1/a4/init.mp4"):
        theirs = await (await client.get(f"{SET_URL}/{resource}")).read()
        resp = await up.get(f"/up/set.ism/{resource}")
        # Identical but for the version token in segment URLs (mtime + size validators here, ETags there)
        assert resp.status == 200 and _without_version(await resp.read()) == _without_version(theirs)
    for resource in ("cmaf1/v3/5.m4s", "QualityLevels(1600000)/Fragments(video=80000000)"):
        local = await client.get(f"{SET_URL}/{resource}")
        remote = await up.get(f"/up/set.ism/{resource}")
        assert local.status == remote.status == 200 and await remote.read() == await local.read()


async def test_track_tokens_outside_the_switch_are_404(client):
    for resource in ("cmaf1/v5/1.m4s", "cmaf1/a1/1.m4s", "cmaf1/v4/init.mp4", "cmaf1/v1/99.m4s", "cmaf1/v0/1.m4s"):
        assert (await client.get(f"{SET_URL}/{resource}")).status == 404, resource


BAD_SETS = {  # name: (.ism text, status of the manifests, status of cmaf1/v1/init.mp4)
    "dotdot.ism": (ism_text([("video", "../escape.mp4", 300_000, 1)]), 502, 502),
    "absolute.ism": (ism_text([("video", "/etc/movie.mp4", 300_000, 1)]), 502, 502),
    "url.ism": (ism_text([("video", "http://example.com/movie.mp4", 300_000, 1)]), 502, 502),
    "missing.ism": (ism_text([("video", "movie_300k.mp4", 300_000, 1), ("video", "gone.mp4", 800_000, 1)]),
                    502, 502),  # the version token of every URL covers every member
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
                             ("Manifest", manifest_status), ("QualityLevels(300000)/Fragments(video=0)", manifest_status),
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


# ------------------------------------------------------------------------------------------------ Smooth (MS-SSTR)
TICKS = 10_000_000


def _box_list(data: bytes, start: int = 0, end: int | None = None) -> dict[bytes, tuple[int, int]]:
    """{4CC: (payload start, box end)} of the boxes in data[start:end] (32-bit sizes; the last box of a 4CC wins)."""
    end = len(data) if end is None else end
    found = {}
    while start + 8 <= end:
        size, fourcc = struct.unpack_from(">I4s", data, start)
        assert size >= 8 and start + size <= end, (fourcc, size)
        found[fourcc] = (start + 8, start + size)
        start += size
    assert start == end
    return found


def _fragment_samples(body: bytes) -> tuple[int, list[tuple[int, int, bytes]]]:
    """(tfxd fragment_absolute_time, [(duration, composition offset, sample bytes)]) of a Smooth fragment:
    moof(mfhd, traf(tfhd, trun v1 with flags 0xF01, tfxd)) + mdat."""
    top = _box_list(body)
    assert list(top) == [b"moof", b"mdat"]
    traf = _box_list(body, *_box_list(body, *top[b"moof"])[b"traf"])
    uuid_start, _ = traf[b"uuid"]
    (tfxd_time,) = struct.unpack_from(">Q", body, uuid_start + 20)
    trun, _ = traf[b"trun"]
    count, data_offset = struct.unpack_from(">Ii", body, trun + 4)
    samples, at = [], data_offset
    for position in range(count):
        duration, size, _, offset = struct.unpack_from(">IIIi", body, trun + 12 + 16 * position)
        samples.append((duration, offset, body[at : at + size]))
        at += size
    assert at == top[b"mdat"][1]
    return tfxd_time, samples


async def _smooth_manifest(client, url: str) -> ET.Element:
    resp = await client.get(url)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"] == "application/vnd.ms-sstr+xml"
    root = ET.fromstring(await resp.text())
    assert root.tag == "SmoothStreamingMedia" and root.get("TimeScale") == str(TICKS)
    return root


def _chunk_starts(stream_index: ET.Element) -> list[int]:
    """c@t of every chunk: the first c's t, then each previous t + d (MS-SSTR §2.2.2.6)."""
    starts, t = [], 0
    for c in stream_index.findall("c"):
        t = int(c.get("t", t))
        starts.append(t)
        t += int(c.get("d"))
    return starts


async def _smooth_samples(client, base: str, stream_index: ET.Element, bitrate: str) -> list[tuple[int, bytes]]:
    """(presentation time in 10 MHz units, bytes) of every sample of one QualityLevel, fragment after fragment.
    A sample's time is its fragment's c@t + the trun durations before it + its composition offset (how a Smooth
    client places it)."""
    template = stream_index.get("Url").replace("{bitrate}", bitrate)
    samples = []
    for t in _chunk_starts(stream_index):
        resp = await client.get(f"{base}/{template.replace('{start time}', str(t))}")
        assert resp.status == 200, (t, await resp.text())
        tfxd_time, fragment = _fragment_samples(await resp.read())
        assert tfxd_time == t
        decode = t
        for duration, offset, data in fragment:
            samples.append((decode + offset, data))
            decode += duration
    return samples


def _to_annex_b(codec_private_data: str, samples: list[bytes]) -> bytes:
    """An H.264 elementary stream: the CodecPrivateData (Annex-B SPS + PPS) and every sample's NAL units, their
    4-byte lengths (libx264's avcC) turned into start codes."""
    out = bytearray(bytes.fromhex(codec_private_data))
    for sample in samples:
        at = 0
        while at < len(sample):
            (length,) = struct.unpack_from(">I", sample, at)
            out += b"\0\0\0\1" + sample[at + 4 : at + 4 + length]
            at += 4 + length
    return bytes(out)


async def test_smooth_manifest_of_the_set(client, ism_set):
    root = await _smooth_manifest(client, f"{SET_URL}/Manifest")
    video = root.findall("StreamIndex[@Type='video']")
    audio = root.findall("StreamIndex[@Type='audio']")
    assert len(video) == 1 and len(audio) == 1
    levels = video[0].findall("QualityLevel")
    assert [level.get("Index") for level in levels] == ["0", "1", "2"]
    assert [int(level.get("Bitrate")) for level in levels] == [bitrate for _, _, bitrate in VARIANTS]
    assert video[0].get("QualityLevels") == "3" and re.fullmatch(
        r"[0-9a-f]{16}/QualityLevels\(\{bitrate\}\)/Fragments\(video=\{start time\}\)", video[0].get("Url"))
    sizes = []
    for level, source in zip(levels, ism_set.videos):
        stream = next(s for s in mt.ffprobe_streams(source) if s["codec_type"] == "video")
        sizes.append((stream["width"], stream["height"]))
        assert (int(level.get("MaxWidth")), int(level.get("MaxHeight"))) == sizes[-1]
        assert level.get("FourCC") == "H264"
    largest = max(sizes)
    for attributes in (("MaxWidth", "MaxHeight"), ("DisplayWidth", "DisplayHeight")):
        assert tuple(int(video[0].get(a)) for a in attributes) == largest
    audio_level = audio[0].find("QualityLevel")
    assert audio_level.get("Bitrate") == str(AUDIO_BITRATE) and audio_level.get("FourCC") == "AACL"
    # 24 s in 2 s GOPs: 12 chunks, ending where ffprobe says the video ends.
    starts = _chunk_starts(video[0])
    assert len(starts) == 12 == int(video[0].get("Chunks"))
    last_d = int(video[0].findall("c")[-1].get("d"))
    assert abs((starts[-1] + last_d) / TICKS - mt.stream_duration_s(ism_set.videos[0])) <= 1 / 24
    keyframes = mt.video_keyframe_times(ism_set.videos[2])
    assert [round(t * 1000) for t in keyframes] == [t // 10_000 for t in starts]


@pytest.mark.parametrize("level", [0, 1, 2])
async def test_smooth_video_levels_decode_like_their_sources(client, ism_set, level, tmp_path):
    """Each QualityLevel's fragments, end to end: the samples at the times ffprobe gives the source's packets, and
    ffmpeg decodes their NAL units frame-identically (framemd5) to the member MP4."""
    root = await _smooth_manifest(client, f"{SET_URL}/Manifest")
    video = root.find("StreamIndex[@Type='video']")
    quality = video.findall("QualityLevel")[level]
    samples = await _smooth_samples(client, SET_URL, video, quality.get("Bitrate"))
    source = ism_set.videos[level]
    packets = mt.ffprobe_packets(source, "v:0")
    assert [data for _, data in samples] == [_read(source, p.pos, p.size) for p in packets]
    assert sorted(t for t, _ in samples) == sorted(p.pts_ticks * TICKS * p.time_base.numerator
                                                  // p.time_base.denominator for p in packets)
    elementary = tmp_path / "level.h264"
    elementary.write_bytes(_to_annex_b(quality.get("CodecPrivateData"), [data for _, data in samples]))
    ours = await asyncio.to_thread(_framemd5, str(elementary), "v:0")
    theirs = await asyncio.to_thread(_framemd5, str(source), "v:0")
    assert ours == theirs and len(theirs) == 24 * 24


async def test_smooth_audio_of_the_set_is_the_source_packets(client, ism_set):
    root = await _smooth_manifest(client, f"{SET_URL}/Manifest")
    audio = root.find("StreamIndex[@Type='audio']")
    samples = await _smooth_samples(client, SET_URL, audio, audio.find("QualityLevel").get("Bitrate"))
    packets = mt.ffprobe_packets(ism_set.videos[0], "a:0")
    theirs = [_read(ism_set.videos[0], p.pos, p.size) for p in packets]
    ours = [data for _, data in samples]
    # Priming the source's edit list hides entirely (presented before 0) is not sent: at most one AAC frame.
    assert len(theirs) - len(ours) <= 1 and ours == theirs[len(theirs) - len(ours):]
    assert samples[0][0] >= 0 and all(a[0] < b[0] for a, b in zip(samples, samples[1:]))


async def test_smooth_fragments_of_a_set_404_and_cache_like_segments(client, caplog):
    root = await _smooth_manifest(client, f"{SET_URL}/Manifest")
    video = root.find("StreamIndex[@Type='video']")
    t = _chunk_starts(video)[3]
    good = f"{SET_URL}/QualityLevels(800000)/Fragments(video={t})"
    caplog.set_level(logging.WARNING, logger="origin_proxy.server")
    bad = [f"{SET_URL}/QualityLevels(800001)/Fragments(video={t})",   # no such bitrate
           f"{SET_URL}/QualityLevels(96000)/Fragments(video={t})",    # the audio's bitrate, not a video level
           f"{SET_URL}/QualityLevels(800000)/Fragments(video={t + 1})",  # not a chunk start
           f"{SET_URL}/QualityLevels(800000)/Fragments(video={10**18})",
           f"{SET_URL}/QualityLevels(800000)/Fragments(audio_a9={t})",  # no such stream
           f"{SET_URL}/QualityLevels(800000)/Fragments(video=-{t})",   # malformed paths
           f"{SET_URL}/QualityLevels(8e5)/Fragments(video={t})",
           f"{SET_URL}/QualityLevels(800000)/Fragments(video={t})/x",
           f"{SET_URL}/QualityLevels(800000)/Fragments(video=0{t})"]
    for url in bad:
        resp = await client.get(url)
        assert resp.status == 404, (url, resp.status)
        assert any(r.getMessage().startswith("GET " + url) and "404" in r.getMessage() for r in caplog.records), url
    full = await client.get(good)
    assert full.status == 200 and full.headers["Content-Type"] == "video/mp4"
    body = await full.read()
    part = await client.get(good, headers={"Range": "bytes=100-199"})
    assert part.status == 206 and await part.read() == body[100:200]
    assert (await client.get(good, headers={"If-None-Match": full.headers["ETag"]})).status == 304
    other = await client.get(good.replace("800000", "1600000"))
    assert other.status == 200 and other.headers["ETag"] != full.headers["ETag"]
    manifest = await client.get(f"{SET_URL}/Manifest")
    assert (await client.get(f"{SET_URL}/Manifest", headers={"If-None-Match": manifest.headers["ETag"]})).status == 304


async def test_smooth_leaves_out_a_variant_with_other_gops(client, ism_set, caplog):
    other = ism_set.folder / "movie_gop36.mp4"
    mt.run([mt.FFMPEG, "-nostdin", "-y", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=24",
            "-t", "24", "-c:v", "libx264", "-preset", "superfast", "-b:v", "200k", "-g", "36", "-keyint_min", "36",
            "-sc_threshold", "0", other])
    (ism_set.folder / "mixed36.ism").write_text(ism_text([("video", VARIANTS[1][0], 800_000, 1),
                                                          ("video", other.name, 200_000, 1),
                                                          ("audio", VARIANTS[0][0], AUDIO_BITRATE, 2)]))
    caplog.set_level(logging.WARNING, logger="origin_proxy.server")
    for _ in range(2):
        root = await _smooth_manifest(client, "/sets/mixed36.ism/Manifest")
    video = root.find("StreamIndex[@Type='video']")
    kept = [int(level.get("Bitrate")) for level in video.findall("QualityLevel")]
    assert len(kept) == 1 and kept[0] in (800_000, 200_000)
    left_out = ({800_000, 200_000} - set(kept)).pop()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
                and "SMOOTH leaves out" in r.getMessage()]
    assert len(warnings) == 1 and "mismatched GOPs" in warnings[0], warnings
    t = _chunk_starts(video)[1]
    assert (await client.get(f"/sets/mixed36.ism/QualityLevels({kept[0]})/Fragments(video={t})")).status == 200
    assert (await client.get(f"/sets/mixed36.ism/QualityLevels({left_out})/Fragments(video={t})")).status == 404
    # HLS keeps both variants.
    master = m3u8.loads(await (await client.get("/sets/mixed36.ism/master.m3u8")).text())
    assert len(master.playlists) == 2


def _read(path, offset: int, size: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(size)
