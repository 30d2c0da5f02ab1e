"""Fragment-on-demand over HTTP (issue 3): HLS and DASH of single MP4s, judged by ffmpeg, ffprobe and the m3u8 /
mpegdash parsers, never by our own code.

- ffmpeg reads master.m3u8 and manifest.mpd from the test server's real port (in a thread, so the server keeps
  serving) and decodes every video frame the source presents, identical and in order (`-flags2 showall`
  framemd5); the audio packet count is within 1 of the source's presented packets.
- The manifests parse; every rounded EXTINF is at most EXT-X-TARGETDURATION; the EXTINFs add up to the
  stream's duration per ffprobe; CODECS are the strings rebuilt from ffprobe's profile/level fields.
- A segment fetched through /up/ costs the upstream only that segment's bytes once the metadata is cached.
- Unknown track, segment 0, a segment past the end and garbage are 404; HEAD, Range and If-None-Match work on
  segments as on files; a file with no packageable track is 415.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import re
import sys
from fractions import Fraction
from pathlib import Path

import m3u8
import pytest
from mpegdash.parser import MPEGDASHParser

import mediatools as mt
from conftest import MEDIA_ROOT
from media_fixtures import movie_60s  # noqa: F401  (session fixture)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "isobmff"))
from test_codecs import _expected_codec_string, _matches  # noqa: E402  (codec strings rebuilt from ffprobe)

BBB = "mp4/bbb_prog_10s.mp4"
SHARED_FILES = [BBB, "mp4/sample.mp4", "mp4/edts.mp4", "mp4/ed_hevc.mp4"]


def _framemd5(target: str, stream: str = "v:0") -> list[str]:
    proc = mt.run([mt.FFMPEG, "-nostdin", "-v", "error", "-flags2", "showall", "-i", target, "-map", f"0:{stream}",
                   "-fps_mode", "passthrough", "-f", "framemd5", "-"], timeout=300)
    return [line.rsplit(",", 1)[1].strip() for line in proc.stdout.splitlines() if line and not line.startswith("#")]


def _presented_audio_packets(target: str) -> int:
    return sum(1 for p in mt.ffprobe_packets(target, "a:0") if not p.discard)


def _contains_in_order(ours: list[str], theirs: list[str]) -> bool:
    """The source's frames appear as one run in ours (ours may add frames the source's edit list hides)."""
    return any(ours[k : k + len(theirs)] == theirs for k in range(len(ours) - len(theirs) + 1))


async def _check_decodes_like_source(url: str, source: Path) -> None:
    theirs = await asyncio.to_thread(_framemd5, str(source))
    ours = await asyncio.to_thread(_framemd5, url)
    assert theirs and _contains_in_order(ours, theirs), f"{url}: the source's frames are not all there, in order"
    assert len(ours) - len(theirs) <= 3
    if any(s["codec_type"] == "audio" for s in mt.ffprobe_streams(source)):
        ours_audio = await asyncio.to_thread(_presented_audio_packets, url)
        assert abs(ours_audio - _presented_audio_packets(str(source))) <= 1


@pytest.fixture
async def generated(edge_client, movie_60s):  # noqa: F811
    """An edge with /gen/ -> the directory of the generated 60 s movie (2 s segments to get many of them)."""
    client = await edge_client([{"from": "/gen/", "to": "file://" + os.fspath(movie_60s.parent) + "/",
                                 "segment_duration_s": 2}])
    return client, movie_60s


@pytest.mark.parametrize("manifest", ["master.m3u8", "manifest.mpd"])
@pytest.mark.parametrize("name", SHARED_FILES)
async def test_ffmpeg_plays_shared_files_like_the_source(edge, name, manifest):
    url = str(edge.client.make_url(f"/files/{name}/{manifest}"))
    await _check_decodes_like_source(url, MEDIA_ROOT / name)


@pytest.mark.parametrize("manifest", ["master.m3u8", "manifest.mpd"])
async def test_ffmpeg_plays_the_generated_60s_movie(generated, manifest):
    client, path = generated
    keys = mt.video_keyframe_times(path)
    gaps = {round(b - a, 2) for a, b in zip(keys, keys[1:])}
    assert len(gaps) > 3, "the fixture should have irregular GOPs"
    assert any(s["has_b_frames"] for s in mt.ffprobe_streams(path) if s["codec_type"] == "video")
    await _check_decodes_like_source(str(client.make_url(f"/gen/{path.name}/{manifest}")), path)


async def test_audio_only_file(edge):
    name = "mp4/multiple-aac-tracks.mp4"
    master = m3u8.loads(await (await edge.client.get(f"/files/{name}/master.m3u8")).text())
    streams = [s for s in mt.ffprobe_streams(MEDIA_ROOT / name) if s["codec_type"] == "audio"]
    assert len(master.playlists) == len(streams) and not master.media
    assert [p.stream_info.codecs for p in master.playlists] == [_expected_codec_string(s) for s in streams]
    for manifest in ("master.m3u8", "manifest.mpd"):
        url = str(edge.client.make_url(f"/files/{name}/{manifest}"))
        assert abs(await asyncio.to_thread(_presented_audio_packets, url)
                   - _presented_audio_packets(str(MEDIA_ROOT / name))) <= 1


async def _hls(client, base: str) -> tuple[m3u8.M3U8, dict[str, m3u8.M3U8]]:
    resp = await client.get(f"{base}/master.m3u8")
    assert resp.status == 200 and resp.content_type == "application/vnd.apple.mpegurl"
    master = m3u8.loads(await resp.text())
    uris = [p.uri for p in master.playlists] + [m.uri for m in master.media if m.uri]
    playlists = {}
    for uri in uris:
        resp = await client.get(f"{base}/{uri}")
        assert resp.status == 200
        playlists[uri] = m3u8.loads(await resp.text())
    return master, playlists


@pytest.mark.parametrize("name", [BBB, "mp4/sample.mp4", "mp4/ed_hevc.mp4", "mp4/sample_opus.mp4",
                                  "mp4/sample_ac3_aac.mp4", "mov/bt601.mov"])
async def test_hls_playlists_follow_rfc_8216(edge, name):
    source = MEDIA_ROOT / name
    master, playlists = await _hls(edge.client, f"/files/{name}")
    streams = mt.ffprobe_streams(source)
    video = [s for s in streams if s["codec_type"] == "video"]
    audio = [s for s in streams if s["codec_type"] == "audio"]
    assert master.version == 7 and master.is_independent_segments
    for variant in master.playlists:
        codecs = variant.stream_info.codecs.split(",")
        assert variant.stream_info.bandwidth >= variant.stream_info.average_bandwidth > 0
        if not video:  # audio only: one variant per audio track
            assert len(codecs) == 1 and codecs[0] in [_expected_codec_string(s) for s in audio]
            continue
        assert _matches(codecs[0], _expected_codec_string(video[0]))
        if audio:  # one variant per audio codec, its group holding the tracks of that codec
            assert len(codecs) == 2 and codecs[1] in [_expected_codec_string(s) for s in audio]
            group = [m for m in master.media if m.group_id == variant.stream_info.audio]
            assert group and group[0].default == "YES" and all(m.default == "NO" for m in group[1:])
            assert len(group) == sum(1 for s in audio if _expected_codec_string(s) == codecs[1])
        assert variant.stream_info.resolution == (video[0]["width"], video[0]["height"])
        assert variant.stream_info.frame_rate == pytest.approx(1 / mt.video_frame_duration_s(source), rel=0.01)
    if video:
        assert [m.type for m in master.media] == ["AUDIO"] * len(audio)
        # LANGUAGE is the RFC 5646 form of the mdhd code, and absent when undetermined (test_languages.py)
        expected_tags = [{"und": None, "eng": "en"}[s.get("tags", {}).get("language", "und")] for s in audio]
        assert sorted(map(str, (m.language for m in master.media))) == sorted(map(str, expected_tags))
        audio_codecs = {_expected_codec_string(s) for s in audio}
        assert len(master.playlists) == len(video) * max(1, len(audio_codecs))
    for uri, playlist in playlists.items():
        assert playlist.version == 7 and playlist.playlist_type == "vod" and playlist.is_endlist
        assert playlist.media_sequence == 1
        # init and segments under the version token of the source (package/urls.py)
        version = re.fullmatch(r"([0-9a-f]{16})/init\.mp4", playlist.segment_map[0].uri).group(1)
        durations = [s.duration for s in playlist.segments]
        assert [s.uri for s in playlist.segments] == [f"{version}/{n}.m4s" for n in range(1, len(durations) + 1)]
        # RFC 8216 §4.3.3.1
        assert all(round(d) <= playlist.target_duration for d in durations)
        assert playlist.target_duration == math.ceil(max(durations))
        kind = "v" if "/v" in uri else "a"
        sel = f"{kind}:{0 if kind == 'v' else _audio_position(uri, streams)}"
        assert sum(durations) == pytest.approx(mt.stream_duration_s(source, sel), abs=0.1)


def _audio_position(uri: str, streams: list[dict]) -> int:
    """Position among the audio streams of the track named in a playlist URI ("cmaf1/a2/playlist.m3u8")."""
    track_id = int(re.search(r"/a(\d+)/", uri).group(1))
    audio = [s for s in streams if s["codec_type"] == "audio"]
    return next(i for i, s in enumerate(audio) if int(s["id"], 16) == track_id)


@pytest.mark.parametrize("name", [BBB, "mp4/ed_hevc.mp4", "mp4/multiple-aac-tracks.mp4", "mp4/sample_eac3.mp4"])
async def test_mpd_parses_and_matches_ffprobe(edge, name):
    source = MEDIA_ROOT / name
    resp = await edge.client.get(f"/files/{name}/manifest.mpd")
    assert resp.status == 200 and resp.content_type == "application/dash+xml"
    mpd = MPEGDASHParser.parse(await resp.text())
    assert mpd.type == "static" and mpd.profiles == "urn:mpeg:dash:profile:isoff-live:2011"
    streams = {int(s["id"], 16): s for s in mt.ffprobe_streams(source) if s["codec_type"] in ("video", "audio")}
    seen = set()
    for aset in mpd.periods[0].adaptation_sets:
        assert aset.mime_type in ("video/mp4", "audio/mp4") and aset.segment_alignment and aset.start_with_sap == 1
        for rep in aset.representations:
            stream = streams[int(rep.id[1:])]
            seen.add(int(rep.id[1:]))
            assert aset.content_type == stream["codec_type"]
            assert _matches(rep.codecs, _expected_codec_string(stream))
            if stream["codec_type"] == "video":
                assert (rep.width, rep.height) == (stream["width"], stream["height"])
                assert re.fullmatch(r"[0-9]+(/[0-9]+)?", rep.frame_rate)  # FrameRateType
                assert float(Fraction(rep.frame_rate)) == pytest.approx(1 / mt.video_frame_duration_s(source), rel=0.01)
            else:
                assert rep.audio_sampling_rate == stream["sample_rate"]
                assert rep.audio_channel_configurations[0].value == str(stream["channels"])
            template = rep.segment_templates[0]
            assert template.start_number == 1
            assert re.fullmatch(r"cmaf1/\$RepresentationID\$/[0-9a-f]{16}/\$Number\$\.m4s", template.media)
            entries = template.segment_timelines[0].Ss
            count = sum(1 + (s.r or 0) for s in entries)
            total = sum(s.d * (1 + (s.r or 0)) for s in entries) / template.timescale
            assert total == pytest.approx(float(stream["duration"]), abs=0.1)
            last = await edge.client.get(f"/files/{name}/cmaf1/{rep.id}/{count}.m4s")
            after = await edge.client.get(f"/files/{name}/cmaf1/{rep.id}/{count + 1}.m4s")
            assert (last.status, after.status) == (200, 404)
    assert seen == set(streams)


async def test_segment_reads_only_its_ranges_from_upstream(edge):
    base = f"/up/{BBB}/cmaf1/v1"
    warm = await edge.client.get(f"{base}/1.m4s")  # warms the metadata and timeline caches
    assert warm.status == 200 and await warm.read()
    edge.upstream.reset_counters()
    resp = await edge.client.get(f"{base}/2.m4s")
    body = await resp.read()
    assert resp.status == 200 and resp.content_type == "video/mp4"
    boxes = mt_boxes(body)
    assert [b[0] for b in boxes] == ["styp", "moof", "mdat"]
    mdat_payload = boxes[-1][2] - 8
    assert mdat_payload <= edge.upstream.bytes_sent <= mdat_payload + 1024
    local = await edge.client.get(f"/files/{BBB}/cmaf1/v1/2.m4s")
    assert await local.read() == body


def mt_boxes(data: bytes) -> list[tuple[str, int, int]]:
    """(fourcc, offset, size) of the top-level boxes of `data` (32-bit sizes only)."""
    found, offset = [], 0
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset : offset + 4], "big")
        found.append((data[offset + 4 : offset + 8].decode("latin-1"), offset, size))
        if size < 8:
            break
        offset += size
    assert offset == len(data)
    return found


@pytest.mark.parametrize("resource", ["cmaf1/v9/1.m4s", "cmaf1/a1/1.m4s", "cmaf1/v1/0.m4s", "cmaf1/v1/999.m4s",
                                      "cmaf1/v1/01.m4s", "cmaf2/v1/1.m4s", "cmaf1/v1/init.m4s", "garbage",
                                      "master.m3u8/x", "cmaf1/v1/playlist.mpd",
                                      "cmaf1/x1/init.mp4", "cmaf1/v1/-1.m4s", "MASTER.M3U8"])
async def test_unknown_resources_are_404(edge, resource):
    resp = await edge.client.get(f"/files/{BBB}/{resource}")
    assert resp.status == 404


async def test_aliases_serve_the_same_manifests(edge):
    for alias, name in ((".m3u8", "master.m3u8"), (".mpd", "manifest.mpd")):
        a = await edge.client.get(f"/files/{BBB}/{alias}")
        b = await edge.client.get(f"/files/{BBB}/{name}")
        assert a.status == b.status == 200
        assert await a.read() == await b.read()
        assert a.headers["ETag"] == b.headers["ETag"]
    upper = await edge.client.get("/files/mp4/bbb_prog_10s.mp4/master.m3u8".replace(".mp4", ".MP4"))
    assert upper.status == 404  # the file name is case-sensitive on disk; the suffix test is not


async def test_head_range_and_conditionals_on_a_segment(edge):
    playlist = m3u8.loads(await (await edge.client.get(f"/files/{BBB}/cmaf1/a2/playlist.m3u8")).text())
    url = f"/files/{BBB}/cmaf1/a2/{playlist.segments[1].uri}"  # the versioned URL: immutable
    full = await edge.client.get(url)
    body = await full.read()
    assert full.status == 200 and full.content_type == "audio/mp4"
    assert "immutable" in full.headers["Cache-Control"] and "Last-Modified" in full.headers
    head = await edge.client.head(url)
    assert head.status == 200 and int(head.headers["Content-Length"]) == len(body)
    assert head.headers["ETag"] == full.headers["ETag"] and await head.read() == b""
    part = await edge.client.get(url, headers={"Range": "bytes=100-299"})
    assert part.status == 206 and await part.read() == body[100:300]
    assert part.headers["Content-Range"] == f"bytes 100-299/{len(body)}"
    cached = await edge.client.get(url, headers={"If-None-Match": full.headers["ETag"]})
    assert cached.status == 304
    other = await edge.client.get(f"/files/{BBB}/cmaf1/a2/3.m4s")
    assert other.headers["ETag"] != full.headers["ETag"]
    assert "immutable" not in other.headers["Cache-Control"]  # an unversioned URL lives as long as a manifest
    manifest = await edge.client.get(f"/files/{BBB}/master.m3u8")
    assert manifest.headers["Cache-Control"] == "public, max-age=10"


async def test_init_segments_decode_with_their_segments(edge, tmp_path):
    """init + every segment of one track, concatenated, is a clean fragmented MP4 per ffprobe."""
    playlist = m3u8.loads(await (await edge.client.get(f"/files/{BBB}/cmaf1/v1/playlist.m3u8")).text())
    data = await (await edge.client.get(f"/files/{BBB}/cmaf1/v1/init.mp4")).read()
    for segment in playlist.segments:
        data += await (await edge.client.get(f"/files/{BBB}/cmaf1/v1/{segment.uri}")).read()
    out = tmp_path / "v1.mp4"
    out.write_bytes(data)
    assert mt.decode_errors(out) == ""
    assert len(mt.ffprobe_packets(out, "v:0")) == len(mt.ffprobe_packets(MEDIA_ROOT / BBB, "v:0"))


async def test_tracks_a_protocol_cannot_carry_are_left_out(edge, caplog):
    caplog.set_level(logging.INFO, logger="origin_proxy.server")
    name = "mov/sowt-with-video.mov"
    master = m3u8.loads(await (await edge.client.get(f"/files/{name}/master.m3u8")).text())
    assert len(master.playlists) == 1 and not master.media
    assert "," not in master.playlists[0].stream_info.codecs
    assert "leaves out track 2 sowt" in caplog.text
    assert (await edge.client.get(f"/files/{name}/cmaf1/a2/init.mp4")).status == 404


async def test_nothing_packageable_is_415(edge_client, tmp_path):
    path = tmp_path / "mpeg4.mp4"
    mt.run([mt.FFMPEG, "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10", "-t", "2",
            "-c:v", "mpeg4", str(path)])
    client = await edge_client([{"from": "/t/", "to": "file://" + os.fspath(tmp_path) + "/"}])
    for manifest in ("master.m3u8", "manifest.mpd"):
        assert (await client.get(f"/t/mpeg4.mp4/{manifest}")).status == 415
    assert (await client.get("/t/mpeg4.mp4/cmaf1/v1/1.m4s")).status == 404
    assert (await client.get("/t/mpeg4.mp4")).status == 200


HOSTILE = sorted(p.relative_to(MEDIA_ROOT).as_posix() for folder in ("malformed", "fate", "fmp4")
                 for p in (MEDIA_ROOT / folder).glob("*") if p.suffix.lower() in (".mp4", ".mov"))


@pytest.mark.parametrize("name", HOSTILE)
async def test_malformed_and_out_of_scope_files_get_a_mapped_status(edge, name):
    """Never a 500 (STYLE §2.7): manifests, and init + first segment of every listed track, answer 200 or a
    mapped error; a 200 segment has exactly its Content-Length."""
    for manifest in ("master.m3u8", "manifest.mpd"):
        resp = await asyncio.wait_for(edge.client.get(f"/files/{name}/{manifest}"), 30)
        text = await resp.text()
        assert resp.status in (200, 404, 415, 501, 502), (manifest, resp.status, text)
        if manifest == "master.m3u8" and resp.status == 200:
            master = m3u8.loads(text)
            for uri in [p.uri for p in master.playlists] + [m.uri for m in master.media if m.uri]:
                base = uri.rsplit("/", 1)[0]
                for resource in (uri, f"{base}/init.mp4", f"{base}/1.m4s"):
                    part = await asyncio.wait_for(edge.client.get(f"/files/{name}/{resource}"), 30)
                    body = await part.read()
                    assert part.status in (200, 404, 415, 501, 502), (resource, part.status)
                    if part.status == 200:
                        assert len(body) == int(part.headers["Content-Length"])


async def test_audio_codecs_get_groups_of_their_own(edge_client, tmp_path):
    """Video + AC-3 + AAC: one rendition group and one variant per audio codec (a player without AC-3 still
    finds a variant it can play); each variant's CODECS lists its video and its group's codec only."""
    path = tmp_path / "two_codecs.mp4"
    mt.run([mt.FFMPEG, "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "3", "-map", "0:v", "-map", "1:a",
            "-map", "1:a", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a:0", "ac3", "-c:a:1", "aac",
            str(path)])
    client = await edge_client([{"from": "/t/", "to": "file://" + os.fspath(tmp_path) + "/"}])
    master, playlists = await _hls(client, "/t/two_codecs.mp4")
    streams = mt.ffprobe_streams(path)
    expected = [_expected_codec_string(s) for s in streams if s["codec_type"] == "audio"]
    assert sorted(m.group_id for m in master.media) == sorted(f"aud-{c}" for c in expected)
    assert [p.stream_info.codecs.split(",")[1] for p in master.playlists] == expected
    assert [p.stream_info.audio for p in master.playlists] == [f"aud-{c}" for c in expected]
    assert all(m.default == "YES" for m in master.media)
    url = str(client.make_url("/t/two_codecs.mp4/master.m3u8"))
    await _check_decodes_like_source(url, path)
