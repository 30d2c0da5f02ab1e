"""Cached metadata stays ≤ 3× the moov after a movie is packaged (issue 13), because packaging leaves nothing per
sample on the cached sample tables.

Through the edge (aiohttp test server, file rule), a player's worth of requests: the HLS master and every media
playlist with the init and first, middle and last segment of each (URIs from the m3u8 library), the MPD with the
init and a segment of every Representation (from its SegmentTemplate, read by the mpegdash parser), and the
Smooth client manifest with a fragment of every QualityLevel of every StreamIndex (its c elements read with
ElementTree). Every answer is a 200 whose body starts with the box it should. Then the MovieFile in the L1
metadata cache (with the Packaging beside it, so packaging really went through the cache) has no per-sample
column on any table, and its nbytes, what the cache counts for it, is at most 3× the moov box's size.
Movies: one made by ffmpeg in the test setup (60 s H.264 with B-frames + AAC, the session's movie_60s) and the
shared mp4/bbb_prog_10s.mp4.
"""

from __future__ import annotations

import os
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import m3u8
import pytest
from mpegdash.parser import MPEGDASHParser

from conftest import MEDIA_ROOT
from media_fixtures import movie_60s  # noqa: F401  (session fixture)
from origin_proxy.isobmff.movie import MovieFile
from origin_proxy.package.tracks import Packaging
from origin_proxy.server.state import EDGE_STATE

COLUMNS = ("dts_ticks", "duration_ticks", "cts_offset_ticks", "is_sync", "_sync_all")


def _three(items: list) -> list:
    return [items[i] for i in sorted({0, len(items) // 2, len(items) - 1})] if items else []


async def _get(client, path: str, box: bytes | None = None) -> bytes:
    resp = await client.get(path)
    body = await resp.read()
    assert resp.status == 200, (path, resp.status, body[:200])
    if box is not None:
        assert body[4:8] == box, (path, body[:16])
    return body


async def _package_everything(client, base: str) -> int:
    """Every manifest of HLS, DASH and Smooth of `base`, and segments of every representation; returns how many
    media segments and fragments were fetched."""
    fetched = 0
    master = m3u8.loads((await _get(client, f"{base}/master.m3u8")).decode())
    uris = [p.uri for p in master.playlists] + [m.uri for m in master.media if m.uri]
    assert uris, "the master lists no media playlist"
    for uri in uris:
        playlist = m3u8.loads((await _get(client, f"{base}/{uri}")).decode())
        folder = uri.rsplit("/", 1)[0]
        await _get(client, f"{base}/{folder}/{playlist.segment_map[0].uri}", b"ftyp")
        for segment in _three(playlist.segments):
            await _get(client, f"{base}/{folder}/{segment.uri}", b"styp")
            fetched += 1

    mpd = MPEGDASHParser.parse((await _get(client, f"{base}/manifest.mpd")).decode())
    for adaptation in mpd.periods[0].adaptation_sets:
        for representation in adaptation.representations:
            template = (representation.segment_templates or adaptation.segment_templates)[0]
            number = template.start_number or 1

            def url(pattern: str) -> str:
                return pattern.replace("$RepresentationID$", representation.id).replace("$Number$", str(number))

            await _get(client, f"{base}/{url(template.initialization)}", b"ftyp")
            await _get(client, f"{base}/{url(template.media)}", b"styp")
            fetched += 1

    smooth = ET.fromstring(await _get(client, f"{base}/Manifest"))
    for stream in smooth.iter("StreamIndex"):
        times, now = [], 0
        for chunk in stream.iter("c"):
            now = int(chunk.get("t", now))
            times.append(now)
            now += int(chunk.get("d", 0))
        url = stream.get("Url")
        for level in stream.iter("QualityLevel"):
            for time in _three(times):
                path = url.replace("{bitrate}", level.get("Bitrate")).replace("{start time}", str(time))
                await _get(client, f"{base}/{path}", b"moof")
                fetched += 1
    return fetched


def _moov_size(path: Path) -> int:
    """Size of the top-level moov box, header included, from a walk of the top-level box headers (§4.2)."""
    with path.open("rb") as f:
        offset, end = 0, path.stat().st_size
        while offset + 8 <= end:
            f.seek(offset)
            size, fourcc = struct.unpack(">I4s", f.read(8))
            if size == 1:
                size = struct.unpack(">Q", f.read(8))[0]
            if fourcc == b"moov":
                return size
            offset += size if size else end
    raise AssertionError(f"{path}: no moov")


@pytest.fixture(params=["generated", "shared"])
def movie_path(request, movie_60s) -> Path:  # noqa: F811
    return movie_60s if request.param == "generated" else MEDIA_ROOT / "mp4" / "bbb_prog_10s.mp4"


async def test_packaging_everything_keeps_cached_metadata_within_3x_the_moov(edge_client, movie_path):
    client = await edge_client([{"from": "/m/", "to": "file://" + os.fspath(movie_path.parent) + "/",
                                 "segment_duration_s": 2}])
    fetched = await _package_everything(client, f"/m/{movie_path.name}")
    assert fetched >= 6

    cache = client.app[EDGE_STATE].cache
    values = [cache.get_now(key) for key in cache.keys()]
    movie_files = [v for v in values if isinstance(v, MovieFile)]
    assert len(movie_files) == 1 and any(isinstance(v, Packaging) for v in values)
    movie_file = movie_files[0]
    assert movie_file.moov_size == _moov_size(movie_path)
    for track in movie_file.movie.tracks:
        made = [c for c in COLUMNS if c in track.table.__dict__]
        assert not made, f"track {track.track_id} keeps per-sample columns {made} after packaging"
    assert movie_file.nbytes <= 3 * movie_file.moov_size, movie_file.nbytes / movie_file.moov_size
