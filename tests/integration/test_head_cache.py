"""The head cache (store/heads.py, issue 15): generated heads built once per source version and request, shared by
every response, bounded in bytes, and never served for another version of the source.

Oracles: ffprobe/ffmpeg (mediatools) on the bodies; the cache's own counters only for "how many builds".
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from pathlib import Path

import mediatools
from origin_proxy.store.catalog import HeadKey
from origin_proxy.server.state import EDGE_STATE


def _file_rule(folder: Path) -> list[dict]:
    return [{"from": "/files/", "to": "file://" + os.fspath(folder) + "/"}]


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.MULTILINE)
    assert match, f"{name} not on /metrics"
    return float(match.group(1))


async def test_50_concurrent_identical_clips_build_the_head_once(edge_client, movie_60s, tmp_path):
    client = await edge_client(_file_rule(movie_60s.parent))
    url = f"/files/{movie_60s.name}?start=21.7&end=33.1"

    async def get() -> bytes:
        resp = await client.get(url)
        assert resp.status == 200
        return await resp.read()

    bodies = await asyncio.gather(*(get() for _ in range(50)))
    assert len({hashlib.sha256(body).hexdigest() for body in bodies}) == 1
    heads = client.app[EDGE_STATE].heads
    assert heads.builds == 1
    assert [key.kind for key in heads.keys()] == ["clip"]
    metrics = await (await client.get("/metrics")).text()
    assert _metric(metrics, "origin_proxy_head_cache_builds_total") == 1
    assert _metric(metrics, "origin_proxy_head_cache_hits_total") + _metric(
        metrics, "origin_proxy_head_cache_misses_total") == 50
    assert _metric(metrics, "origin_proxy_head_cache_entries") == 1
    assert _metric(metrics, "origin_proxy_head_cache_bytes") == heads.current_bytes > 0

    clip = tmp_path / "clip.mp4"
    clip.write_bytes(bodies[0])
    assert mediatools.decode_errors(clip) == ""
    # ffmpeg's own count of the frames between the cut points, from the source, equals the clip's
    frames = mediatools.video_frame_times(clip)
    source_frames = [t for t in mediatools.video_frame_times(movie_60s) if 21.7 - 1e-6 <= t < 33.1 - 1e-6]
    assert len(frames) == len(source_frames)


async def test_replaced_source_gets_the_new_head_and_etag(edge_client, tmp_path):
    folder = tmp_path / "media"
    folder.mkdir()
    movie = folder / "movie.mp4"
    mediatools.make_test_movie(movie, 8, moov_at_end=False)
    client = await edge_client(_file_rule(folder))
    url = "/files/movie.mp4?start=2"
    first = await client.get(url)
    first_body = await first.read()
    old_etag = first.headers["ETag"]
    assert (await client.get(url)).headers["ETag"] == old_etag  # served from the cached head

    replacement = tmp_path / "new.mp4"
    mediatools.make_test_movie(replacement, 13, moov_at_end=False, size="352x288")
    os.utime(replacement, ns=(movie.stat().st_mtime_ns + 10**9,) * 2)
    os.replace(replacement, movie)

    second = await client.get(url)
    body = await second.read()
    assert second.status == 200
    assert second.headers["ETag"] != old_etag
    assert body != first_body
    out = tmp_path / "clip.mp4"
    out.write_bytes(body)
    streams = mediatools.ffprobe_streams(out)
    video = next(s for s in streams if s["codec_type"] == "video")
    assert (video["width"], video["height"]) == (352, 288)  # the new encode's head, not the old one
    assert abs(mediatools.duration_s(out) - 11) < 0.1
    assert mediatools.decode_errors(out) == ""
    assert client.app[EDGE_STATE].heads.builds == 2


async def test_head_cache_byte_budget_holds(edge_client, movie_60s):
    budget = 120_000
    client = await edge_client(_file_rule(movie_60s.parent), cache={"head_max_bytes": budget})
    heads = client.app[EDGE_STATE].heads
    sizes = []
    for start in range(1, 40, 3):
        resp = await client.get(f"/files/{movie_60s.name}?start={start}")
        assert resp.status == 200
        await resp.read()
        assert heads.current_bytes <= budget
        sizes.append(heads.current_bytes)
    assert max(sizes) > budget / 2  # the cache was filled ...
    assert 0 < len(heads) < len(sizes)  # ... and older heads were evicted to stay within the budget
    assert all(isinstance(key, HeadKey) for key in heads.keys())


async def test_segments_and_fragments_share_cached_heads(edge_client, movie_60s):
    client = await edge_client(_file_rule(movie_60s.parent))
    base = f"/files/{movie_60s.name}"
    master = await (await client.get(base + "/master.m3u8")).text()
    playlist_uri = next(line for line in master.splitlines() if line and not line.startswith("#"))
    playlist = await (await client.get(f"{base}/{playlist_uri}")).text()
    segment_uri = next(line for line in playlist.splitlines() if line and not line.startswith("#"))
    prefix = playlist_uri.rsplit("/", 1)[0]
    first = await (await client.get(f"{base}/{prefix}/{segment_uri}")).read()
    again = await (await client.get(f"{base}/{prefix}/{segment_uri}")).read()
    assert first == again
    heads = client.app[EDGE_STATE].heads
    assert heads.builds == 1 and heads.hits == 1
    assert [key.kind for key in heads.keys()] == ["segment"]


async def test_clip_heads_live_only_as_long_as_their_movie(edge_client, movie_60s, tmp_path):
    """A clip head shares its movie's table bytes, so it must not outlive the movie in the metadata cache: with a
    metadata cache that cannot hold the movie no clip head is kept (each one would pin a parsed movie outside both
    byte budgets); with one that holds it, heads are kept, and an eviction of the movie takes its heads with it.
    Every clip served either way is a whole, decodable file of the asked length."""
    client = await edge_client(_file_rule(movie_60s.parent), cache={"max_bytes": 1})
    heads = client.app[EDGE_STATE].heads
    for start in (5, 17, 29):
        resp = await client.get(f"/files/{movie_60s.name}?start={start}")
        assert resp.status == 200
        out = tmp_path / f"uncached-{start}.mp4"
        out.write_bytes(await resp.read())
        assert mediatools.decode_errors(out) == ""
        assert abs(mediatools.duration_s(out) - (60 - start)) < 0.1
    assert len(heads) == 0 and heads.current_bytes == 0
    assert heads.builds == 3  # each was built and served, not kept

    client = await edge_client(_file_rule(movie_60s.parent))
    state = client.app[EDGE_STATE]
    for start in (5, 17, 29):
        resp = await client.get(f"/files/{movie_60s.name}?start={start}")
        assert resp.status == 200
        await resp.read()
    assert len(state.heads) == 3
    (movie_key,) = state.cache.keys()
    state.cache._entries.popitem()  # the metadata cache evicts the movie (least recently used)
    assert movie_key not in state.cache
    assert len(state.heads) == 0 and state.heads.current_bytes == 0
    resp = await client.get(f"/files/{movie_60s.name}?start=17")  # built again, from the movie loaded again
    assert resp.status == 200
    out = tmp_path / "again.mp4"
    out.write_bytes(await resp.read())
    assert abs(mediatools.duration_s(out) - 43) < 0.1
    assert len(state.heads) == 1
