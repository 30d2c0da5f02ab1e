"""The viewer queue policy with synthetic chunks: whole GOPs dropped past viewer_buffer_s (never the newest, never
one begun), disconnect past viewer_max_lag_s, backlog and wait-for-key-frame joins."""

from __future__ import annotations

import asyncio

from origin_proxy.relay.hub import Chunk, Feed, RelayPolicy


def gop(seq: int, start_s: float) -> Chunk:
    return Chunk(seq, bytes(10), start_s, start_s + 1.0, True)


def make_feed(**policy) -> Feed:
    feed = Feed("t", RelayPolicy(**policy))
    feed.header = b"H"
    return feed


async def test_lagging_viewer_loses_whole_oldest_gops():
    feed = make_feed(backlog_gops=0, viewer_buffer_s=3, viewer_max_lag_s=100)
    viewer = feed.add_viewer()
    for seq in range(1, 11):
        feed.edge_s = seq + 1.0
        viewer.offer(gop(seq, float(seq)))
    assert [c.gop_seq for c in viewer.pending] == [8, 9, 10]
    assert viewer.dropped_gops == 7 and not viewer.disconnected


async def test_gop_being_written_is_never_split():
    feed = make_feed(backlog_gops=0, viewer_buffer_s=1, viewer_max_lag_s=100, low_latency=True)
    viewer = feed.add_viewer()
    viewer.offer(Chunk(1, b"a", 0.0, 0.5, True))
    viewer.writing = viewer.pending.popleft()
    viewer.sent_gop = 1
    viewer.offer(Chunk(1, b"b", 0.5, 1.0, False))  # rest of GOP 1 is kept
    feed.edge_s = 5.0
    viewer.offer(Chunk(2, b"c", 1.0, 1.5, True))
    viewer.offer(Chunk(3, b"d", 4.0, 5.0, True))
    assert [(c.gop_seq, c.data) for c in viewer.pending] == [(1, b"b"), (3, b"d")]


async def test_stalled_viewer_is_disconnected():
    feed = make_feed(backlog_gops=0, viewer_buffer_s=2, viewer_max_lag_s=4)
    viewer = feed.add_viewer()
    writes = []

    async def stuck(data: bytes) -> None:
        writes.append(data)
        if len(writes) > 1:
            await asyncio.sleep(3600)

    task = asyncio.create_task(viewer.run(stuck))
    viewer.offer(gop(1, 0.0))
    await asyncio.sleep(0.01)
    for seq in range(2, 8):
        feed.edge_s = seq + 1.0
        viewer.offer(gop(seq, float(seq)))
    assert await asyncio.wait_for(task, 1) is False
    assert viewer.disconnected and feed.disconnects == 1 and viewer not in feed.viewers


async def test_join_gets_backlog_then_live():
    feed = make_feed(backlog_gops=2)
    for seq in range(1, 5):
        feed._on_cluster(type("C", (), {"data": bytes([seq]), "gop_start": True, "start_s": seq, "end_s": seq + .9})())
    viewer = feed.add_viewer()
    assert [c.gop_seq for c in viewer.pending] == [2, 3]  # GOP 4 is still in progress
    writes = []

    async def write(data: bytes) -> None:
        writes.append(data)

    task = asyncio.create_task(viewer.run(write))
    feed._on_cluster(type("C", (), {"data": b"\x05", "gop_start": True, "start_s": 5, "end_s": 5.9})())
    feed._on_end(None)
    feed.publisher = None
    viewer.finish()
    assert await asyncio.wait_for(task, 1) is True
    assert writes == [b"H", b"\x02", b"\x03", b"\x04", b"\x05"]  # the end completes the last GOP


async def test_changed_tracks_end_old_viewers_and_serve_new_ones():
    """One publisher whose input switches to a stream with other Tracks (H.264+AC-3 -> VP9): viewers of the old
    stream end cleanly; a viewer joining afterwards gets the new header."""
    from conftest import media

    feed = Feed("t", RelayPolicy(backlog_gops=1))
    publisher = feed.open_publisher("test")
    publisher.receive(media("mkv/sample.mkv").read_bytes())
    old_header = feed.header
    old = feed.add_viewer()
    writes = []

    async def write(data) -> None:
        writes.append(bytes(data))

    task = asyncio.create_task(old.run(write))
    await asyncio.sleep(0)
    publisher.receive(media("mkv/bbb_642x642_768kbps_30fps_vp9.webm").read_bytes())
    assert await asyncio.wait_for(task, 1) is True and writes[0] == old_header
    assert feed.header != old_header and feed.tracks[0]["codec_id"] == "V_VP9" and feed.doc_type == "webm"
    new = feed.add_viewer()
    assert new.header == feed.header
    publisher.receive(b"")
    assert feed.state == "ended" and new.finished


def test_pure_parts_do_not_import_aiohttp():
    import subprocess
    import sys

    code = ("import sys, origin_proxy.mkv.reader, origin_proxy.relay.cutter, origin_proxy.relay.fmp4, "
            "origin_proxy.relay.hub; sys.exit(3 if any(m.startswith('aiohttp') for m in sys.modules) else 0)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
