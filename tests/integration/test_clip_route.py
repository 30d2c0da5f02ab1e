"""The ?start=/&end= route reaches store/moov.py (through the cache) and plan_clip, and the edge serves their Plan.

The core functions are replaced by fakes here; seeking correctness is tested with the core.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from conftest import media
from origin_proxy.errors import BadRequest, MalformedMedia, SourceChanged
from origin_proxy.plan import Plan, SourceRange
from origin_proxy.server import media as media_handler
from origin_proxy.store import metadata

SAMPLE = media("mp4/sample.mp4").read_bytes()


@dataclass(frozen=True)
class FakeClip:
    start: str

    def normalized(self) -> str:
        return f"start={self.start}&mode=exact"


@dataclass(frozen=True)
class FakeMovieFile:
    nbytes: int = 1000


@pytest.fixture
def core(monkeypatch):
    """Fakes for parse_clip_query, load_movie_file and plan_clip; records what they were given."""
    calls = {"load": [], "plan": [], "fail_loads": 0, "load_error": SourceChanged}

    def parse(query, default_mode):
        if query["start"] == "bad":
            raise BadRequest("start must be a number")
        return FakeClip(query["start"])

    async def load(source, limits):
        calls["load"].append((source.identity, source.validator, limits.head_bytes))
        if calls["fail_loads"]:
            calls["fail_loads"] -= 1
            raise calls["load_error"]("changed under us")
        return FakeMovieFile()

    def plan(movie_file, request, content_type):
        calls["plan"].append((movie_file, request, content_type))
        return Plan((b"HDR", SourceRange(0, 100)), content_type=content_type)

    monkeypatch.setattr(media_handler, "parse_clip_query", parse)
    monkeypatch.setattr(metadata, "load_movie_file", load)  # the shared metadata load (store/metadata.py)
    monkeypatch.setattr(media_handler, "plan_clip", plan)
    return calls


@pytest.mark.parametrize("prefix", ["/files/", "/up/"])
async def test_clip_goes_through_cache_and_plan(edge, core, prefix):
    url = prefix + "mp4/sample.mp4?start=1.5"
    first = await edge.client.get(url)
    assert first.status == 200
    assert await first.read() == b"HDR" + SAMPLE[:100]
    second = await edge.client.get(url, headers={"Range": "bytes=0-4"})
    assert second.status == 206 and await second.read() == b"HDR" + SAMPLE[:2]
    assert len(core["load"]) == 1  # the second request was a cache hit
    # planned once: the second request's head came from the head cache (store/heads.py, issue 15)
    assert [(req, ctype) for _, req, ctype in core["plan"]] == [(FakeClip("1.5"), "video/mp4")]
    heads = edge.client.app[media_handler.EDGE_STATE].heads
    assert (heads.hits, heads.builds) == (1, 1)
    cache = edge.client.app[media_handler.EDGE_STATE].cache
    assert (cache.hits, cache.loads) == (1, 1)
    whole = await edge.client.get(prefix + "mp4/sample.mp4")
    assert whole.headers["ETag"] != first.headers["ETag"] == second.headers["ETag"]


async def test_bad_clip_query_is_400(edge, core):
    resp = await edge.client.get("/files/mp4/sample.mp4?start=bad")
    assert resp.status == 400
    assert await resp.text() == "start must be a number\n"


async def test_source_changed_during_metadata_reopens_once(edge, core):
    core["fail_loads"] = 1
    resp = await edge.client.get("/up/mp4/sample.mp4?start=2")
    assert resp.status == 200 and await resp.read() == b"HDR" + SAMPLE[:100]
    assert len(core["load"]) == 2
    core["fail_loads"] = 2
    resp = await edge.client.get("/up/mp4/sample_simple.mp4?start=3")  # not cached yet
    assert resp.status == 502


async def test_malformed_media_is_502_with_one_line(edge, core):
    core["fail_loads"], core["load_error"] = 1, MalformedMedia
    resp = await edge.client.get("/files/mp4/sample.mp4?start=4")
    assert resp.status == 502
    assert await resp.text() == "changed under us\n"
