"""server/errors.py: one status per error class, looked up along the MRO; unknown exceptions are 500s."""

from __future__ import annotations

import logging

import pytest
from aiohttp import web

from origin_proxy import errors
from origin_proxy.server.errors import error_middleware, status_for


@pytest.mark.parametrize(("exc", "status"), [
    (errors.BadRequest("x"), 400),
    (errors.RangeNotSatisfiable("x", complete_length=5), 416),
    (errors.Forbidden("x"), 403),
    (errors.NotFound("x"), 404),
    (errors.MalformedMedia("x"), 502),
    (errors.MalformedBox("moov/trak[1]", "bad"), 502),
    (errors.UnsupportedMedia("x"), 501),
    (errors.FragmentedMedia("x"), 415),
    (errors.UpstreamError("x"), 502),
    (errors.SourceChanged("x"), 502),
    (errors.UpstreamTimeout("x"), 504),
    (errors.MediaError("x"), 500),  # abstract: nothing should raise it bare
])
def test_status_for(exc, status):
    assert status_for(exc) == status


async def test_middleware_bodies_and_logs(aiohttp_client, caplog):
    async def boom(request):
        kind = request.match_info["kind"]
        if kind == "range":
            raise errors.RangeNotSatisfiable("range not satisfiable", complete_length=123)
        if kind == "box":
            raise errors.MalformedBox("moov/trak[1]/mdia", "entry_count too large", offset=4096)
        raise RuntimeError("a bug")

    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/{kind}", boom)
    client = await aiohttp_client(app)
    with caplog.at_level(logging.WARNING, logger="origin_proxy.server"):
        resp = await client.get("/range")
        assert (resp.status, resp.headers["Content-Range"]) == (416, "bytes */123")
        resp = await client.get("/box")
        assert resp.status == 502
        assert await resp.text() == "malformed MP4: moov/trak[1]/mdia: entry_count too large\n"
        resp = await client.get("/bug")
        assert resp.status == 500 and await resp.text() == "internal error\n"
    levels = [(r.levelname, r.exc_info is not None) for r in caplog.records if r.name == "origin_proxy.server"]
    assert levels == [("WARNING", False), ("WARNING", False), ("ERROR", True)]
    assert "offset" in caplog.records[1].getMessage()  # context goes to the log, not to the client
