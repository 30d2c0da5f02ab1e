"""Publishing points, ingest side (issue 11): real ffmpeg pushes of CMAF per-track long POSTs and of two Smooth
encoders into one point, an encoder killed mid-fragment and reconnected, DVR pruning with and without archive,
two nodes fed by ffmpeg's tee muxer, and a 2 GB body of garbage refused early.

Every ffmpeg run and every wait is bounded (`run_ffmpeg` kills with SIGKILL on its timeout: ffmpeg reading a live
playlist waits for ENDLIST, and one stuck in a demuxer ignores SIGTERM). The pushed media is encoded once per
module without `-re` and pushed with `-re -c copy`, so the VOD can be compared frame for frame (framemd5) with
exactly what was pushed.
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
import struct
import subprocess
from pathlib import Path

import pytest
from live_captures import cmaf_parts, run_ffmpeg

TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CMAF = ["-f", "mp4", "-movflags", "empty_moov+separate_moof+default_base_moof+cmaf"]
ISMV = ["-f", "ismv", "-movflags", "isml+frag_keyframe"]
X264 = ["-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-keyint_min", "25",
        "-sc_threshold", "0", "-bf", "0"]


def encode(path: Path, size: str, seconds: float, *extra: str, audio: bool = True) -> Path:
    args = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc=size={size}:rate=25"]
    if audio:
        args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-c:a", "aac", "-b:a", "64k"]
    subprocess.run([*args, "-t", str(seconds), *X264, *extra, str(path)], check=True, timeout=60)
    return path


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    """4 s 160x120 H.264 + AAC (`av`), 4 s 320x240 H.264 at 300 kbit/s (`hi`), 6 s 160x120 H.264 (`v6`)."""
    root = tmp_path_factory.mktemp("live-ingest-sources")
    return {"av": encode(root / "av.mp4", "160x120", 4),
            "hi": encode(root / "hi.mp4", "320x240", 4, "-b:v", "300k", audio=False),
            "v6": encode(root / "v6.mp4", "160x120", 6, audio=False)}


def live_rule(storage: Path, **settings) -> list[dict]:
    return [{"from": "/live/", "live": {"storage": str(storage), "ingest_token": TOKEN, "dvr_window_s": 30,
                                        **settings}}]


@pytest.fixture
async def live_edge(edge_client, tmp_path):
    client = await edge_client(live_rule(tmp_path / "live"))
    client.storage = tmp_path / "live"
    return client


def base_url(client, name: str) -> str:
    return f"http://127.0.0.1:{client.server.port}/live/{name}.isml"


def output(url: str, *muxer: str) -> list[str]:
    """ffmpeg output options for one long POST of `muxer` output to `url` (a real CRLF ends the header)."""
    return [*muxer, "-headers", f"Authorization: Bearer {TOKEN}\r\n", "-method", "POST", url]


async def decode_errors(url: str) -> str:
    """The error lines of decoding `url` to null (a live playlist is read until its ENDLIST)."""
    _, err = await run_ffmpeg("-i", url, "-f", "null", "-")
    return err


async def framemd5(url: str, stream: str = "0:v:0", *, packets: bool = False) -> list[str]:
    """(pts, md5) of every decoded frame of `stream`; with `packets`, the md5 of every coded packet alone (audio:
    the served timeline starts at 0 while the source's edit list hides the AAC priming, so pts differ)."""
    out, _ = await run_ffmpeg("-i", url, "-map", stream, *(["-c", "copy"] if packets else []), "-f", "framemd5", "-")
    rows = [line.split(",") for line in out.decode().splitlines() if line and not line.startswith("#")]
    return [row[5].strip() if packets else f"{row[2].strip()},{row[5].strip()}" for row in rows]


async def wait_for(predicate, timeout_s: float = 15.0, step_s: float = 0.1):
    """Poll the async `predicate` until it returns something true; fail after `timeout_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = await predicate()
        if value:
            return value
        assert loop.time() < deadline, f"not true after {timeout_s} s: {predicate.__qualname__}"
        await asyncio.sleep(step_s)


async def statistics(client, name: str) -> dict:
    resp = await client.get(f"/live/{name}.isml/statistics")
    return await resp.json() if resp.status == 200 else {}


async def fragments_of(client, name: str) -> dict[str, int]:
    stats = await statistics(client, name)
    return {t["stream"] + "/" + t["type"]: t["fragments"] for t in stats.get("tracks", [])}


def playlist_uris(master: str) -> list[str]:
    """Media playlist URIs of an HLS master (variants and EXT-X-MEDIA renditions)."""
    uris = [line for line in master.splitlines() if line and not line.startswith("#")]
    return uris + re.findall(r'URI="([^"]+)"', master)


def smooth_chunks(manifest: str, kind: str) -> list[tuple[int, int]]:
    """(t, d) of every `c` of the StreamIndex `kind`, t filled in from the previous c where it is omitted."""
    body = re.search(rf'<StreamIndex Type="{kind}".*?</StreamIndex>', manifest, re.S).group(0)
    out: list[tuple[int, int]] = []
    for t, d in re.findall(r'<c(?: t="(\d+)")? d="(\d+)"', body):
        start = int(t) if t else out[-1][0] + out[-1][1]
        out.append((start, int(d)))
    return out


# ---------------------------------------------------------------------------------------------------- CMAF


async def test_cmaf_per_track_long_posts(live_edge, sources):
    """DASH-IF CMAF ingest, one long POST per track from one ffmpeg (video Streams(video.cmfv), audio
    Streams(audio.cmfa) with -frag_duration 2000000): live HLS decodes without an error line while both tracks
    arrive; after the end of stream the VOD is frame-identical (video framemd5) to the pushed file, audio packet for packet.

    Why a test of this once hung: `-t` after the first output applied to the second one only, so one of the two
    outputs never ended, and ffmpeg reading the live playlist waited for an EXT-X-ENDLIST that never came, with
    no timeout around either process. Here the input is a finite file and every process is bounded."""
    url = base_url(live_edge, "cmaf")
    push = asyncio.create_task(run_ffmpeg(
        "-re", "-i", str(sources["av"]),
        "-map", "0:v", "-c", "copy", *output(url + "/Streams(video.cmfv)", *CMAF),
        "-map", "0:a", "-c", "copy", *output(url + "/Streams(audio.cmfa)", *CMAF, "-frag_duration", "2000000")))

    async def both_tracks_live():
        counts = await fragments_of(live_edge, "cmaf")
        return len(counts) == 2 and all(counts.values())

    await wait_for(both_tracks_live)
    assert (await (await live_edge.get("/live/cmaf.isml/state")).json())["state"] == "started"
    assert await decode_errors(url + "/master.m3u8") == ""
    await push
    state = await (await live_edge.get("/live/cmaf.isml/state")).json()
    assert state["state"] == "stopped"
    master = await (await live_edge.get("/live/cmaf.isml/master.m3u8")).text()
    assert "avc1." in master and "mp4a.40.2" in master
    assert await framemd5(url + "/master.m3u8") == await framemd5(str(sources["av"]))
    assert await framemd5(url + "/master.m3u8", "0:a:0", packets=True) == \
        await framemd5(str(sources["av"]), "0:a:0", packets=True)
    archives = sorted((live_edge.storage / "cmaf.isml").glob("E001-*.mp4"))
    assert len(archives) == 2  # one per track's stream, each a finished fragmented MP4
    for archive in archives:
        assert await decode_errors(str(archive)) == ""


# ------------------------------------------------------------------------------------------ two encoders


async def test_two_encoders_into_one_point(live_edge, sources):
    """The seed's "Method 1": two ffmpeg -f ismv pushes, one per bitrate (the first with audio), into one point:
    both bitrates are in every manifest while live, unique per type; live HLS decodes; after end of stream each
    video rendition is frame-identical to what its encoder pushed."""
    url = base_url(live_edge, "two")
    pushes = [asyncio.create_task(run_ffmpeg("-re", "-i", str(sources[key]), "-c", "copy",
                                             *output(f"{url}/Streams({stream})", *ISMV)))
              for key, stream in (("av", "s1"), ("hi", "s2"))]

    async def both_live():  # every track indexed, and listed by Smooth (which holds back a newest fragment)
        counts = await fragments_of(live_edge, "two")
        smooth = await live_edge.get("/live/two.isml/Manifest")
        text = await smooth.text() if smooth.status == 200 else ""
        video = re.search(r'<StreamIndex Type="video".*?</StreamIndex>', text, re.S)
        return len(counts) == 3 and all(counts.values()) and video and video.group(0).count("<QualityLevel ") == 2

    await wait_for(both_live)
    master = await (await live_edge.get("/live/two.isml/master.m3u8")).text()
    bandwidths = re.findall(r"#EXT-X-STREAM-INF:BANDWIDTH=(\d+)", master)
    assert len(bandwidths) == 2 and len(set(bandwidths)) == 2, master
    assert "RESOLUTION=160x120" in master and "RESOLUTION=320x240" in master
    mpd = await (await live_edge.get("/live/two.isml/manifest.mpd")).text()
    video_reps = re.findall(r'<Representation [^>]*bandwidth="(\d+)"[^>]*width', mpd)
    assert len(video_reps) == 2 and len(set(video_reps)) == 2, mpd
    smooth = await (await live_edge.get("/live/two.isml/Manifest")).text()
    video_index = re.search(r'<StreamIndex Type="video".*?</StreamIndex>', smooth, re.S).group(0)
    levels = re.findall(r'<QualityLevel [^>]*Bitrate="(\d+)"', video_index)
    assert len(levels) == 2 and len(set(levels)) == 2
    assert 'Type="audio"' in smooth
    assert await decode_errors(url + "/master.m3u8") == ""
    await asyncio.gather(*pushes)
    assert (await (await live_edge.get("/live/two.isml/state")).json())["state"] == "stopped"
    master = await (await live_edge.get("/live/two.isml/master.m3u8")).text()
    video_playlists = [line for line in master.splitlines() if line.startswith("cmaf1/") and "video" in line]
    served = [await framemd5(f"{url}/{uri}") for uri in video_playlists]
    pushed = [await framemd5(str(sources[key])) for key in ("av", "hi")]
    assert sorted(served) == sorted(pushed)


# ------------------------------------------------------------------------------------------- bad ingest


async def _send_until_refused(port: int, path: str, first: bytes, limit_bytes: int) -> tuple[int, int]:
    """POST a chunked body: `first`, then zeros, until the server answers or stops reading; (status, bytes sent).
    Nothing large is ever allocated: one 64 KiB chunk is sent again and again (a 2 GB body from a generator)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write((f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n").encode())
    sent = 0
    chunk = bytes(64 << 10)
    answer = asyncio.create_task(reader.readline())
    try:
        for body in (first, *(chunk for _ in range(limit_bytes // len(chunk)))):
            if answer.done():
                break
            writer.write(b"%x\r\n" % len(body) + body + b"\r\n")
            sent += len(body)
            try:
                await asyncio.wait_for(writer.drain(), 2.0)
            except (asyncio.TimeoutError, ConnectionError):
                break  # the server stopped reading or closed: it answered (checked below)
        status_line = await asyncio.wait_for(answer, 10.0)
    finally:
        writer.transport.abort()
    return int(status_line.split()[1]), sent


@pytest.mark.parametrize("first", [
    pytest.param(b"\x00\x00\x00\x10junkjunkjunkjunk", id="garbage"),
    pytest.param(struct.pack(">I4s", 0x7FFFFFFF, b"moov"), id="2GB-moov"),
    pytest.param(struct.pack(">I4sQ", 1, b"mdat", 2 << 30), id="2GB-mdat-before-header"),
])
async def test_2gb_body_without_header_refused_in_first_megabytes(live_edge, first):
    """A 2 GB body with no valid header is answered (400/412) and the connection closed after a few MB at most;
    nothing is archived."""
    status, sent = await _send_until_refused(live_edge.server.port, "/live/huge.isml/Streams(s1)", first, 2 << 30)
    assert status in (400, 412)
    assert sent < 8 << 20, f"server still read after {sent} bytes"
    assert not list(live_edge.storage.rglob("*.mp4"))


async def test_garbage_after_header_keeps_what_was_accepted(live_edge, cmaf_capture):
    """A body whose header and first fragments are good and then turns to garbage: 400, the fragments before it
    stay indexed and archived whole, nothing of the garbage is indexed."""
    data = cmaf_capture.read_bytes()
    cut = data.index(b"moof", data.index(b"moof", data.index(b"moof") + 1) + 1) - 4  # after two fragments
    resp = await live_edge.post("/live/half.isml/Streams(v)", data=data[:cut] + b"\x00\x00\x00\x10junk" * 100,
                                headers=AUTH)
    assert resp.status == 400
    counts = await fragments_of(live_edge, "half")
    assert counts == {"v/video": 2}
    archive = next((live_edge.storage / "half.isml").glob("E001-*.mp4"))
    assert archive.stat().st_size == cut
    _, err = await run_ffmpeg("-i", str(archive), "-f", "null", "-")
    assert err == ""


async def test_stalled_encoder_is_dropped(live_edge, cmaf_capture, monkeypatch):
    """An encoder that stops sending mid-body is disconnected after the idle timeout (here 1 s): the fragments it
    completed stay, the partial one is never indexed, and its connection count goes back to 0."""
    from origin_proxy.server import live_ingest

    monkeypatch.setattr(live_ingest, "INGEST_IDLE_TIMEOUT_S", 1.0)
    data = cmaf_capture.read_bytes()
    cut = data.index(b"moof", data.index(b"moof") + 1) + 40  # inside the second fragment's moof
    reader, writer = await asyncio.open_connection("127.0.0.1", live_edge.server.port)
    writer.write((f"POST /live/stall.isml/Streams(v) HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n").encode() + b"%x\r\n" % cut + data[:cut] + b"\r\n")
    await writer.drain()
    closed = await asyncio.wait_for(reader.read(), 10.0)  # the server closes the connection
    writer.transport.abort()
    assert b" 200 " not in closed
    stats = await statistics(live_edge, "stall")
    assert [(t["fragments"], t["encoder_connections"]) for t in stats["tracks"]] == [(1, 0)]


# ------------------------------------------------------------------------------------ kill and reconnect


class CuttingRelay:
    """A TCP relay between an encoder and the origin. After `cut` is set, the next read of more than 100 bytes (a
    fragment being written) is forwarded only half, then both sides are aborted: the origin sees the body end
    inside a fragment, as when an encoder dies while it writes one. `done` is set once it cut."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.cut = asyncio.Event()
        self.done = asyncio.Event()
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def answers() -> None:
            while data := await up_reader.read(65536):
                writer.write(data)

        back = asyncio.create_task(answers())
        try:
            while data := await reader.read(65536):
                if self.cut.is_set() and len(data) > 100:
                    up_writer.write(data[: len(data) // 2])
                    await up_writer.drain()
                    self.done.set()
                    break
                up_writer.write(data)
                await up_writer.drain()
        finally:
            back.cancel()
            up_writer.transport.abort()
            writer.transport.abort()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


async def segments_of(client, point: str, kind: str = "video") -> tuple[bytes, list[tuple[str, bytes]]]:
    """The init segment and every (URI, bytes) media segment of the first `kind` rendition's HLS playlist."""
    master = await (await client.get(f"/live/{point}.isml/master.m3u8")).text()
    uri = next(u for u in playlist_uris(master) if f"/{kind}" in u)
    prefix = f"/live/{point}.isml/{uri.rsplit('/', 1)[0]}/"
    playlist = await (await client.get(f"/live/{point}.isml/{uri}")).text()
    init = await (await client.get(prefix + "init.mp4")).read()
    out = []
    for name in (line for line in playlist.splitlines() if line.endswith(".m4s")):
        resp = await client.get(prefix + name)
        assert resp.status == 200, name
        out.append((prefix + name, await resp.read()))
    return init, out


async def frames_in(tmp_path: Path, init: bytes, segment: bytes) -> int:
    """Frames ffmpeg decodes from one CMAF segment behind its init segment (an error line fails)."""
    path = tmp_path / "one.mp4"
    path.write_bytes(init + segment)
    out, err = await run_ffmpeg("-i", str(path), "-map", "0:v:0", "-f", "framemd5", "-")
    assert err == ""
    return sum(1 for line in out.decode().splitlines() if line and not line.startswith("#"))


async def test_encoder_killed_mid_fragment_then_reconnects(live_edge, sources, tmp_path, caplog):
    """ffmpeg -f ismv pushing through a relay that cuts the body halfway into a fragment, then ffmpeg SIGKILLed;
    a new ffmpeg reconnects with -output_ts_offset at the end of what was indexed. One timeline: Smooth c t/d
    contiguous, frame pts strictly one frame apart across the reconnect (no duplicate, no gap), the partial
    fragment never indexed nor archived, and every served segment decodes to a whole GOP."""
    caplog.set_level(logging.INFO, "origin_proxy.live")
    relay = CuttingRelay(live_edge.server.port)
    relay_port = await relay.start()
    url = f"http://127.0.0.1:{relay_port}/live/kill.isml/Streams(s1)"
    proc = await asyncio.create_subprocess_exec("ffmpeg", "-v", "quiet", "-nostdin", "-re", "-i", str(sources["v6"]),
                                                "-c", "copy", *output(url, *ISMV))
    try:
        async def two_fragments():
            return (await fragments_of(live_edge, "kill")).get("s1/video", 0) >= 2

        await wait_for(two_fragments)
        relay.cut.set()
        await asyncio.wait_for(relay.done.wait(), 10.0)
        proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), 10.0)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        relay.close()

    async def disconnected():
        stats = await statistics(live_edge, "kill")
        return stats["tracks"][0]["encoder_connections"] == 0 and stats

    before = (await wait_for(disconnected))["tracks"][0]
    kept = before["fragments"]
    assert any("partial fragment is dropped" in r.getMessage() for r in caplog.records)
    archive = next((live_edge.storage / "kill.isml").glob("E001-*.mp4"))
    archived_size = archive.stat().st_size
    _, err = await run_ffmpeg("-i", str(archive), "-f", "null", "-")  # no partial fragment on disk
    assert err == ""
    await run_ffmpeg("-re", "-i", str(sources["v6"]), "-output_ts_offset", str(before["last_time_s"]), "-c", "copy",
                     *output(base_url(live_edge, "kill") + "/Streams(s1)", *ISMV))
    stats = (await statistics(live_edge, "kill"))
    assert stats["state"] == "stopped"
    assert stats["tracks"][0]["fragments"] == kept + 6
    assert archive.stat().st_size > archived_size  # same archive file continued (or a new part beside it)
    manifest = await (await live_edge.get("/live/kill.isml/Manifest")).text()
    chunks = smooth_chunks(manifest, "video")
    assert len(chunks) == kept + 6
    assert all(a[0] + a[1] == b[0] for a, b in zip(chunks, chunks[1:])), chunks
    pts = [int(row.split(",")[0]) for row in await framemd5(base_url(live_edge, "kill") + "/master.m3u8")]
    assert len(pts) == (kept + 6) * 25
    steps = {b - a for a, b in zip(pts, pts[1:])}
    assert len(steps) == 1 and steps.pop() > 0  # one frame apart everywhere: no duplicate, no hole
    init, segments = await segments_of(live_edge, "kill")
    assert len(segments) == kept + 6
    for _, body in segments:
        assert await frames_in(tmp_path, init, body) == 25


# ------------------------------------------------------------------------------------------- DVR pruning


async def test_dvr_pruning_with_and_without_archive(edge_client, sources, tmp_path):
    """dvr_window_s 2 with 1 s fragments, one 6 s push to a point with archive and one without, at once. While
    live: a playlist lists at most dvr_window_s + one fragment, everything it lists answers 200, memory holds only
    the window (indexed_fragments), a pruned fragment's URL is 404. After end of stream: with archive the VOD is
    the whole event again (fragment 1 answers, frame-identical to the push); without, fragment 1 stays 404."""
    window_s = 2
    client = await edge_client([
        {"from": "/arch/", "live": {"storage": str(tmp_path / "a"), "ingest_token": TOKEN, "dvr_window_s": window_s,
                                    "archive": True}},
        {"from": "/mem/", "live": {"storage": str(tmp_path / "m"), "ingest_token": TOKEN, "dvr_window_s": window_s,
                                   "archive": False}}])
    port = client.server.port
    pushes = [asyncio.create_task(run_ffmpeg("-re", "-i", str(sources["v6"]), "-c", "copy",
                                             *output(f"http://127.0.0.1:{port}/{rule}/p.isml/Streams(s1)", *ISMV)))
              for rule in ("arch", "mem")]

    async def playlist(rule: str) -> tuple[str, str]:
        master = await (await client.get(f"/{rule}/p.isml/master.m3u8")).text()
        uri = playlist_uris(master)[0]
        return uri.rsplit("/", 1)[0], await (await client.get(f"/{rule}/p.isml/{uri}")).text()

    async def listed(rule: str) -> bool:
        return (await client.get(f"/{rule}/p.isml/master.m3u8")).status == 200

    for rule in ("arch", "mem"):
        await wait_for(lambda rule=rule: listed(rule))
    polls = 0
    pruned_seen = {"arch": False, "mem": False}
    while not all(p.done() for p in pushes):
        for rule in ("arch", "mem"):
            folder, text = await playlist(rule)
            if "#EXT-X-ENDLIST" in text:
                continue
            durations = [float(d) for d in re.findall(r"#EXTINF:([\d.]+)", text)]
            assert sum(durations) <= window_s + max(durations) + 1e-6, text
            for name in re.findall(r"^(\d+)\.m4s$", text, re.M):
                assert (await client.get(f"/{rule}/p.isml/{folder}/{name}.m4s")).status == 200, (rule, name)
            track = (await statistics_at(client, f"/{rule}/p.isml"))["tracks"][0]
            assert track["indexed_fragments"] <= window_s + 2
            if track["first_number"] > 1:
                pruned_seen[rule] = True
                assert (await client.get(f"/{rule}/p.isml/{folder}/1.m4s")).status == 404
            polls += 1
        await asyncio.sleep(0.25)
    await asyncio.gather(*pushes)
    assert polls >= 10 and all(pruned_seen.values()), (polls, pruned_seen)
    folder, text = await playlist("arch")
    assert "#EXT-X-ENDLIST" in text and len(re.findall(r"\.m4s$", text, re.M)) == 6
    assert (await client.get(f"/arch/p.isml/{folder}/1.m4s")).status == 200
    assert await framemd5(f"http://127.0.0.1:{port}/arch/p.isml/master.m3u8") == await framemd5(str(sources["v6"]))
    folder, text = await playlist("mem")
    assert "#EXT-X-ENDLIST" in text and len(re.findall(r"\.m4s$", text, re.M)) <= window_s + 1
    assert (await client.get(f"/mem/p.isml/{folder}/1.m4s")).status == 404


async def statistics_at(client, base: str) -> dict:
    return await (await client.get(base + "/statistics")).json()


# ------------------------------------------------------------------------------------------- two nodes


def tee_slave(url: str) -> str:
    """One tee muxer slave posting Smooth ingest to `url`; the header's ':' escaped for the tee option parser."""
    return f"[f=ismv:movflags=isml+frag_keyframe:method=POST:headers=Authorization'\\:' Bearer {TOKEN}\r\n]{url}"


async def test_tee_to_two_nodes_gives_identical_segments(edge_client, sources, tmp_path):
    """One encode, ffmpeg's tee muxer pushing it to two origin_proxy nodes: the same segment URLs on both, and
    init segments, CMAF segments and Smooth fragments byte-identical (compared with cmp), live and after EOS."""
    nodes = [await edge_client(live_rule(tmp_path / f"node{i}")) for i in (1, 2)]
    urls = [base_url(node, "tee") + "/Streams(s1)" for node in nodes]
    push = asyncio.create_task(run_ffmpeg("-re", "-i", str(sources["av"]), "-map", "0", "-c", "copy", "-f", "tee",
                                          "|".join(tee_slave(url) for url in urls)))

    async def three_fragments_on_both():
        counts = [await fragments_of(node, "tee") for node in nodes]
        return all(c and min(c.values()) >= 3 for c in counts)

    compared = 0

    async def compare_all() -> None:
        nonlocal compared
        listings = [await segments_of(node, "tee") for node in nodes]
        (init1, segs1), (init2, segs2) = listings
        common = [u for u, _ in segs1 if u in {v for v, _ in segs2}]
        assert len(common) >= 2
        pairs = [(init1, init2)] + [(dict(segs1)[u], dict(segs2)[u]) for u in common[:4]]
        smooth = [await (await node.get("/live/tee.isml/Manifest")).text() for node in nodes]
        for kind in ("video", "audio"):
            level = re.search(rf'<StreamIndex Type="{kind}".*?Bitrate="(\d+)"', smooth[0], re.S).group(1)
            t = smooth_chunks(smooth[0], kind)[1][0]
            assert smooth_chunks(smooth[1], kind)[1][0] == t
            path = f"/live/tee.isml/QualityLevels({level})/Fragments({kind}={t})"
            pairs.append(tuple([await (await node.get(path)).read() for node in nodes]))
        for n, (a, b) in enumerate(pairs):
            (tmp_path / f"a{n}").write_bytes(a)
            (tmp_path / f"b{n}").write_bytes(b)
            assert a and subprocess.run(["cmp", tmp_path / f"a{n}", tmp_path / f"b{n}"]).returncode == 0, n
            compared += 1

    await wait_for(three_fragments_on_both)
    await compare_all()  # while live
    await push
    await compare_all()  # after end of stream
    masters = [await (await node.get("/live/tee.isml/master.m3u8")).text() for node in nodes]
    assert masters[0] == masters[1]
    assert compared >= 12


# ------------------------------------------------------------------------------------------- restart


class PlaylistReader:
    """Polls a live HLS media playlist every 0.3 s at whatever `base` currently is (the test moves it to the
    restarted process), keeping every media sequence seen and every listed segment's bytes by URL. Connection
    errors (the process is down) are retried; it stops at EXT-X-ENDLIST or when stopped."""

    def __init__(self, session, base: str) -> None:
        self.session = session
        self.base = base
        self.sequences: list[int] = []
        self.segments: dict[str, bytes] = {}
        self.errors = 0
        self.ended = False

    async def run(self, deadline_s: float = 60.0) -> None:
        import aiohttp

        loop = asyncio.get_running_loop()
        end = loop.time() + deadline_s
        while not self.ended and loop.time() < end:
            try:
                await self.poll()
            except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError):
                self.errors += 1
            await asyncio.sleep(0.3)

    async def poll(self) -> None:
        async with self.session.get(self.base + "/master.m3u8") as resp:
            if resp.status != 200:
                return
            master = await resp.text()
        uri = next(u for u in playlist_uris(master) if "/video" in u)
        async with self.session.get(f"{self.base}/{uri}") as resp:
            text = await resp.text()
        self.sequences.append(int(re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", text).group(1)))
        folder = uri.rsplit("/", 1)[0]
        for name in re.findall(r"^(\d+\.m4s)$", text, re.M):
            path = f"/{folder}/{name}"
            if path not in self.segments:
                async with self.session.get(self.base + path) as resp:
                    assert resp.status == 200, path
                    self.segments[path] = await resp.read()
        self.ended = "#EXT-X-ENDLIST" in text


async def test_restart_mid_event_comes_back_from_the_archive(serve_process, sources, tmp_path):
    """A real origin_proxy process (archive on) is SIGKILLed while ffmpeg pushes; a new process on the same
    storage reloads the point from its archive (moof scan) and serves what it had; the encoder reconnects with
    -output_ts_offset and continues the same timeline; a reader polling the live HLS playlist across the restart
    sees the media sequence never go back and every segment URL it fetched before answer the same bytes after."""
    import aiohttp

    remap = yaml_rules(tmp_path / "live")
    first = serve_process(remap, config="log_level: INFO\n")
    point = "/live/rs.isml"
    encoder = await asyncio.create_subprocess_exec(
        "ffmpeg", "-v", "quiet", "-nostdin", "-re", "-i", str(sources["v6"]), "-c", "copy",
        *output(first.base_url + point + "/Streams(s1)", *ISMV))
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        async def indexed(base: str) -> dict:
            try:
                async with session.get(base + point + "/statistics") as resp:
                    stats = await resp.json() if resp.status == 200 else {}
            except aiohttp.ClientError:
                return {}
            return stats if stats.get("tracks") and stats["tracks"][0]["fragments"] >= 3 else {}

        reader = PlaylistReader(session, first.base_url + point)
        reading = asyncio.create_task(reader.run())
        try:
            await wait_for(lambda: indexed(first.base_url))
            await asyncio.sleep(0.4)  # the reader has fetched what is listed
            before = dict(reader.segments)
            first.proc.kill()  # a crash, mid-event
            first.stop()
            await asyncio.wait_for(encoder.wait(), 15.0)  # ffmpeg fails on the broken connection
        finally:
            if encoder.returncode is None:
                encoder.kill()
                await encoder.wait()
        second = serve_process(remap, config="log_level: INFO\n")
        reader.base = second.base_url + point
        stats = await wait_for(lambda: indexed(second.base_url))
        assert stats["state"] == "started"
        track = stats["tracks"][0]
        kept = track["fragments"]
        assert kept >= len(before)
        for path, body in before.items():  # served from the archive, same URL, same bytes
            async with session.get(second.base_url + point + path) as resp:
                assert resp.status == 200 and await resp.read() == body, path
        await run_ffmpeg("-re", "-i", str(sources["v6"]), "-output_ts_offset", str(track["last_time_s"]),
                         "-c", "copy", *output(second.base_url + point + "/Streams(s1)", *ISMV))
        await asyncio.wait_for(reading, 20.0)
    assert reader.ended
    assert reader.sequences == sorted(reader.sequences)
    for path, body in before.items():
        assert reader.segments[path] == body
    assert len(reader.segments) == kept + 6
    async with aiohttp.ClientSession() as session:
        async with session.get(second.base_url + point + "/Manifest") as resp:
            chunks = smooth_chunks(await resp.text(), "video")
    assert len(chunks) == kept + 6
    assert all(a[0] + a[1] == b[0] for a, b in zip(chunks, chunks[1:]))
    pts = [int(row.split(",")[0]) for row in await framemd5(second.base_url + point + "/master.m3u8")]
    assert len(pts) == (kept + 6) * 25 and len({b - a for a, b in zip(pts, pts[1:])}) == 1


def yaml_rules(storage: Path, **settings) -> str:
    import yaml

    return yaml.safe_dump({"remap": live_rule(storage, **settings)}, sort_keys=False)


async def test_timeline_jump_back_is_400_and_changes_nothing(live_edge, cmaf_capture):
    """Per-segment PUTs of a real CMAF capture; a segment resent exactly is dropped (200), one whose tfdt is
    moved back between two indexed fragments is a jump back: 400, nothing indexed, nothing archived."""
    header, *segments = cmaf_parts(cmaf_capture.read_bytes())
    url = "/live/jump.isml/Streams(v)"
    for body in (header, *segments[:3]):
        assert (await live_edge.put(url, data=body, headers=AUTH)).status == 200
    archive = next((live_edge.storage / "jump.isml").glob("E001-*.mp4"))
    size = archive.stat().st_size
    assert (await live_edge.put(url, data=segments[1], headers=AUTH)).status == 200  # exact duplicate
    moved = bytearray(segments[2])
    tfdt = moved.index(b"tfdt")
    version = moved[tfdt + 4]
    fmt = ">Q" if version == 1 else ">I"
    (time_2,) = struct.unpack_from(fmt, moved, tfdt + 8)
    struct.pack_into(fmt, moved, tfdt + 8, time_2 - 1)  # between fragments 2 and 3: neither new nor a resend
    resp = await live_edge.put(url, data=bytes(moved), headers=AUTH)
    assert resp.status == 400 and "jumps back" in await resp.text()
    assert await fragments_of(live_edge, "jump") == {"v/video": 3}
    assert archive.stat().st_size == size


async def test_archive_rotation_parts_decode_and_reload(edge_client, sources, tmp_path):
    """archive_segment_s 2 with a 6 s Smooth push: the stream's archive is several part files, each a VOD file that
    ffmpeg decodes clean (its mfra written at rotation or at end of stream), together holding every pushed frame;
    a new app on the same storage reloads the stopped point from those parts with the same playlists and bytes."""
    rules = live_rule(tmp_path / "live", archive_segment_s=2)
    first = await edge_client(rules)
    await run_ffmpeg("-re", "-i", str(sources["v6"]), "-c", "copy",
                     *output(base_url(first, "rot") + "/Streams(s1)", *ISMV))
    parts = sorted((tmp_path / "live" / "rot.isml").glob("E001-s1-*.mp4"))
    assert len(parts) >= 3
    frames = 0
    for part in parts:
        assert part.read_bytes()[-12:-8] == b"mfro"  # each part is finished: its mfra ends with an mfro
        out, err = await run_ffmpeg("-i", str(part), "-map", "0:v:0", "-f", "framemd5", "-")
        assert err == ""
        frames += sum(1 for line in out.decode().splitlines() if line and not line.startswith("#"))
    assert frames == 150
    init, segments = await segments_of(first, "rot")
    second = await edge_client(rules)  # another app: the point is loaded from the archive parts
    assert (await (await second.get("/live/rot.isml/state")).json())["state"] == "stopped"
    assert await segments_of(second, "rot") == (init, segments)
    assert await framemd5(base_url(second, "rot") + "/master.m3u8") == await framemd5(str(sources["v6"]))


async def test_bitrates_smil_then_stream_id_then_measured(live_edge, smooth_capture, cmaf_capture):
    """Bitrates in the issue's order, from real ffmpeg captures: the SMIL systemBitrate (ffmpeg writes the AAC
    track's 64 kbit/s), the seed's stream-id convention for a track the SMIL gives none (oceans-400k-64k.ismv:
    first track 400 kbit/s), else the first fragment's measured rate; never 0, unique per type."""
    smooth = smooth_capture.read_bytes()
    smooth = smooth[: smooth.rindex(b"mfra") - 4]  # no end of stream: the second stream joins the same event
    assert (await live_edge.post("/live/rates.isml/Streams(oceans-400k-64k.ismv)", data=smooth,
                                 headers=AUTH)).status == 200
    assert (await live_edge.post("/live/rates.isml/Streams(extra.cmfv)", data=cmaf_capture.read_bytes(),
                                 headers=AUTH)).status == 200
    stats = await statistics(live_edge, "rates")
    rates = {(t["stream"], t["type"]): t["bitrate"] for t in stats["tracks"]}
    assert rates[("oceans-400k-64k.ismv", "video")] == 400_000
    assert rates[("oceans-400k-64k.ismv", "audio")] == 64_000
    measured = rates[("extra.cmfv", "video")]
    assert measured > 0 and measured != 400_000
    assert stats["event"] == 1


async def test_whole_body_sent_at_once_then_closed_is_accepted(live_edge, sources, smooth_capture):
    """An encoder that sends its whole body at once and closes without reading the answer (ffmpeg without -re
    does) is indexed whole and ends its event: a raw socket writing request, body and last chunk in one write and
    closing, and three real ffmpeg pushes without -re. (aiohttp raises a loss on the next read even with the body
    buffered: a read loop with a task per read, asyncio.wait_for, lost whole bodies this way against a separate
    process; the loop now reads without a task hop and salvages what is buffered.)"""
    body = smooth_capture.read_bytes()
    reader, writer = await asyncio.open_connection("127.0.0.1", live_edge.server.port)
    writer.write((f"POST /live/fast.isml/Streams(s1) HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n").encode() + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")
    await writer.drain()
    writer.close()

    async def stopped(name: str):
        stats = await statistics(live_edge, name)
        return stats if stats.get("state") == "stopped" else None

    stats = await wait_for(lambda: stopped("fast"), 5.0)
    assert sum(t["fragments"] for t in stats["tracks"]) == body.count(b"moof")
    for n in range(3):
        await run_ffmpeg("-i", str(sources["av"]), "-c", "copy",
                         *output(base_url(live_edge, f"fast{n}") + "/Streams(s1)", *ISMV))
        stats = await wait_for(lambda n=n: stopped(f"fast{n}"), 5.0)
        assert sorted((t["type"], t["last_time_s"] >= 3.9) for t in stats["tracks"]) == \
            [("audio", True), ("video", True)]
