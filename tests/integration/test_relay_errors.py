"""Relay HTTP errors (issue 12 item 6): 403 without the token, 415 for non-Matroska within the first KB, 400 for a
header or cluster over its cap (viewers then end cleanly), 404 for unknown feeds, 409 for a second publisher,
405 for other methods; viewers can never publish. Plus the feed list and status JSON."""

from __future__ import annotations

import asyncio

import pytest

from origin_proxy.server.relay import RELAY_HUB
from relay_media import H264_OPUS, make_feed

from conftest import make_config, media
from origin_proxy.server.app import make_app

TOKEN = "tok"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def feed_bytes(tmp_path_factory):
    return make_feed(tmp_path_factory.mktemp("relay_err") / "f.mkv", H264_OPUS, 2).read_bytes()


@pytest.fixture
async def client(aiohttp_client):
    rules = [{"from": "/relay/", "relay": {"publish_token": TOKEN, "backlog_gops": 1}},
             {"from": "/open/", "relay": {}}]
    return await aiohttp_client(make_app(make_config(rules)))


async def test_tokens_and_methods(client, feed_bytes):
    assert (await client.post("/relay/a.mkv", data=feed_bytes)).status == 403
    assert (await client.post("/relay/a.mkv", data=feed_bytes, headers={"Authorization": "Bearer no"})).status == 403
    assert (await client.post("/open/a.mkv", data=feed_bytes, headers=AUTH)).status == 403  # no token configured
    assert (await client.put("/relay/a.mkv", data=b"x", headers=AUTH)).status == 405
    assert (await client.get("/relay/nope.mkv")).status == 404
    assert (await client.get("/relay/nope.mkv/status")).status == 404
    assert (await client.get("/relay/bad name.txt")).status == 404
    assert (await client.post("/relay/a.mkv/status", headers=AUTH)).status == 405


async def test_not_matroska_is_415_before_the_body_ends(client):
    started = asyncio.Event()

    async def body():
        yield media("mp4/sample.mp4").read_bytes()[:1024]
        started.set()
        await asyncio.sleep(30)  # never ends: the answer must come from the first KB
        yield b""

    response = await asyncio.wait_for(client.post("/relay/m.mkv", data=body(), headers=AUTH), 5)
    assert response.status == 415


async def test_publish_then_view_list_status_and_409(client, feed_bytes):
    gate = asyncio.Event()

    async def body():
        yield feed_bytes[: len(feed_bytes) // 2]
        await gate.wait()
        yield feed_bytes[len(feed_bytes) // 2:]

    publish = asyncio.create_task(client.post("/relay/cam.mkv", data=body(), headers=AUTH))
    hub = client.server.app[RELAY_HUB]
    for _ in range(100):
        feed = hub.feeds.get(("/relay/", "cam"))
        if feed is not None and feed.gops:
            break
        await asyncio.sleep(0.02)
    second = await client.post("/relay/cam.mkv", data=feed_bytes, headers=AUTH)
    assert second.status == 409
    viewer = await client.get("/relay/cam.webm")
    assert viewer.status == 200 and viewer.headers["Content-Type"] == "video/x-matroska"
    listing = await (await client.get("/relay/")).json()
    assert [f["name"] for f in listing] == ["cam"] and listing[0]["viewers"] == 1
    gate.set()
    assert (await publish).status == 200
    body_bytes = await asyncio.wait_for(viewer.read(), 5)  # the feed's end is the viewer's clean end
    assert body_bytes.startswith(b"\x1a\x45\xdf\xa3")
    status = await (await client.get("/relay/cam.mkv/status")).json()
    assert status["state"] == "ended" and status["bytes_in"] == len(feed_bytes) and status["publishers"] == 1
    assert (await client.get("/relay/cam.mkv")).status == 404  # ended: nothing to view
    # the same name can be published again
    assert (await client.post("/relay/cam.mkv", data=feed_bytes, headers=AUTH)).status == 200


async def test_cluster_over_cap_is_400_and_viewers_end(client, feed_bytes, monkeypatch):
    from origin_proxy.mkv import reader

    monkeypatch.setattr(reader, "MAX_CLUSTER_BYTES", 4000)
    monkeypatch.setattr(reader.MatroskaReader.__init__, "__defaults__", (reader.MAX_HEADER_BYTES, 4000))
    response = await client.post("/relay/big.mkv", data=feed_bytes, headers=AUTH)
    assert response.status == 400
    assert "over the cap" in await response.text()
    status = await (await client.get("/relay/big.mkv/status")).json()
    assert status["state"] == "ended" and status["publisher"] is None


async def test_relay_metrics(client, feed_bytes):
    assert (await client.post("/relay/metered.mkv", data=feed_bytes, headers=AUTH)).status == 200
    text = await (await client.get("/metrics")).text()
    line = next(line for line in text.splitlines()
                if line.startswith('origin_proxy_relay_feed_bytes_total{feed="metered"}'))
    assert float(line.split()[-1]) == len(feed_bytes)
    assert "# TYPE origin_proxy_relay_dropped_gops_total counter" in text and "origin_proxy_relay_viewers" in text


async def test_silent_publisher_is_ended(client, feed_bytes, monkeypatch):
    from origin_proxy.server import relay

    monkeypatch.setattr(relay, "PUBLISH_IDLE_S", 0.5)

    async def body():
        yield feed_bytes[:5000]
        await asyncio.sleep(30)
        yield b""

    response = await asyncio.wait_for(client.post("/relay/idle.mkv", data=body(), headers=AUTH), 5)
    assert response.status == 400 and "sent nothing" in await response.text()
    assert (await client.post("/relay/idle.mkv", data=feed_bytes, headers=AUTH)).status == 200  # name free again
