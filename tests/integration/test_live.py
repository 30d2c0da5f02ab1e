"""Publishing points end to end: real ffmpeg pushes (Smooth and CMAF ingest) into origin_proxy, egress decoded by
ffmpeg while live and after end of stream, archive files decoded, bad ingest refused (issue 11)."""

from __future__ import annotations

import asyncio
import subprocess

import pytest
from live_captures import cmaf_parts

TOKEN = "s3cret"
VIDEO = ["-f", "lavfi", "-re", "-i", "testsrc=size=160x120:rate=25"]
AUDIO = ["-f", "lavfi", "-re", "-i", "sine=frequency=440:sample_rate=48000"]
X264 = ["-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-keyint_min", "25",
        "-sc_threshold", "0", "-bf", "0"]


@pytest.fixture
async def live_edge(edge_client, tmp_path):
    rules = [{"from": "/live/", "live": {"storage": str(tmp_path / "live"), "ingest_token": TOKEN,
                                          "dvr_window_s": 30}}]
    client = await edge_client(rules)
    client.storage = tmp_path / "live"
    return client


def base(client, name: str) -> str:
    return f"http://127.0.0.1:{client.server.port}/live/{name}.isml"


async def push(args: list[str], url: str, token: str = TOKEN, seconds: float = 4.0) -> int:
    cmd = ["ffmpeg", "-v", "error", "-nostdin", *args, "-t", str(seconds), "-headers",
           f"Authorization: Bearer {token}\r\n", "-method", "POST", url]
    proc = await asyncio.create_subprocess_exec(*cmd, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return proc.returncode


async def decode_errors(url: str, *extra: str) -> str:
    proc = await asyncio.create_subprocess_exec("ffmpeg", "-v", "error", "-nostdin", *extra, "-i", url, "-f", "null",
                                                "-", stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return err.decode()


async def framemd5(url: str, stream: str) -> list[str]:
    proc = await asyncio.create_subprocess_exec("ffmpeg", "-v", "error", "-nostdin", "-i", url, "-map", stream,
                                                "-f", "framemd5", "-", stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    return [line.rsplit(",", 1)[1].strip() for line in out.decode().splitlines() if not line.startswith("#")]


async def test_smooth_push_live_then_vod(live_edge):
    url = base(live_edge, "oceans")
    pushing = asyncio.create_task(push([*VIDEO, *AUDIO, *X264, "-c:a", "aac", "-b:a", "64k", "-f", "ismv",
                                        "-movflags", "isml+frag_keyframe"], url + "/Streams(s1)"))
    # While live: the manifests list fragments and decode without an error line.
    for _ in range(100):
        await asyncio.sleep(0.1)
        resp = await live_edge.get("/live/oceans.isml/master.m3u8")
        if resp.status == 200:
            break
    state = await (await live_edge.get("/live/oceans.isml/state")).json()
    assert state["state"] == "started"
    await asyncio.sleep(2.5)
    mpd = await (await live_edge.get("/live/oceans.isml/manifest.mpd")).text()
    assert 'type="dynamic"' in mpd and "timeShiftBufferDepth" in mpd
    smooth = await (await live_edge.get("/live/oceans.isml/Manifest")).text()
    assert 'IsLive="TRUE"' in smooth
    assert "error" not in await decode_errors(url + "/master.m3u8")
    await pushing
    state = await (await live_edge.get("/live/oceans.isml/state")).json()
    assert state["state"] == "stopped"
    playlist_master = await (await live_edge.get("/live/oceans.isml/master.m3u8")).text()
    assert "#EXT-X-STREAM-INF" in playlist_master
    mpd = await (await live_edge.get("/live/oceans.isml/manifest.mpd")).text()
    assert 'type="static"' in mpd and "mediaPresentationDuration" in mpd
    # After end of stream: the whole event decodes frame-identical to what the archive holds.
    archives = sorted((live_edge.storage / "oceans.isml").glob("E001-*.mp4"))
    assert archives
    for archive in archives:
        await decode_errors(str(archive))
    served = await framemd5(url + "/master.m3u8", "0:v:0")
    archived = await framemd5(str(archives[0]), "0:v:0")
    assert len(served) >= 75 and served == archived
    stats = await (await live_edge.get("/live/oceans.isml/statistics")).json()
    assert {t["type"] for t in stats["tracks"]} == {"video", "audio"}
    assert all(t["bitrate"] > 0 for t in stats["tracks"])
    assert (live_edge.storage / "oceans.isml" / "oceans.ism").is_file()


async def test_bad_ingest(live_edge):
    url = "/live/bad.isml/Streams(s1)"
    resp = await live_edge.post(url, data=b"x" * 100)
    assert resp.status == 403
    resp = await live_edge.post(url, data=b"x" * 100, headers={"Authorization": "Bearer nope"})
    assert resp.status == 403
    assert not (live_edge.storage / "bad.isml").exists()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    resp = await live_edge.post(url, data=b"\x00\x00\x00\x10junkjunkjunkjunk" * 10, headers=auth)
    assert resp.status == 400
    resp = await live_edge.post(url, data=b"\x00\x00\x00\x10moofjunkjunkjunk", headers=auth)
    assert resp.status == 412
    resp = await live_edge.post("/live/..%2Fetc.isml/Streams(s1)", data=b"", headers=auth)
    assert resp.status in (400, 403, 404)  # the remap layer refuses encoded slashes and dots (403)
    for bad in ("/live/x/y.isml/Streams(s1)", "/live/a b.isml/Streams(s1)", "/live/oceans.isml/Streams(../x)"):
        assert (await live_edge.post(bad, data=b"", headers=auth)).status == 404, bad
    assert not list(live_edge.storage.rglob("*.mp4"))  # nothing archived from any refused body
    resp = await live_edge.post("/live/probe.isml/Streams(s1)", data=b"", headers=auth)  # the empty probe POST
    assert resp.status == 200
    resp = await live_edge.delete("/live/probe.isml/Manifest")
    assert resp.status == 405


CMAF = ["-f", "mp4", "-movflags", "empty_moov+separate_moof+default_base_moof+cmaf"]


def _auth_output(url: str) -> list[str]:
    return ["-headers", f"Authorization: Bearer {TOKEN}\r\n", "-method", "POST", url]


async def run_ffmpeg(args: list[str]) -> None:
    proc = await asyncio.create_subprocess_exec("ffmpeg", "-v", "error", "-nostdin", *args,
                                                stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()


async def test_per_segment_puts_and_resend(live_edge, tmp_path):
    """DASH-IF per-segment ingest: PUT the header, then each segment, to Streams(ID); a resent segment is dropped
    (first wins); the final mfra ends the stream and the event becomes VOD."""
    capture = tmp_path / "v.cmfv"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25", "-t", "3",
                    *X264, *CMAF, str(capture)], check=True)
    data = capture.read_bytes()
    header, *segments = cmaf_parts(data)
    mfra = data[data.rindex(b"mfra") - 4 :]
    auth = {"Authorization": f"Bearer {TOKEN}"}
    url = "/live/seg.isml/Streams(video.cmfv)"
    assert (await live_edge.put(url, data=header, headers=auth)).status == 200
    for body in segments:
        assert (await live_edge.put(url, data=body, headers=auth)).status == 200
    assert (await live_edge.put(url, data=segments[1], headers=auth)).status == 200  # an encoder resend
    playlist_url = None
    master = await (await live_edge.get("/live/seg.isml/master.m3u8")).text()
    playlist_url = next(line for line in master.splitlines() if line.endswith(".m3u8"))
    playlist = await (await live_edge.get("/live/seg.isml/" + playlist_url)).text()
    assert playlist.count("#EXTINF") == len(segments) and "#EXT-X-ENDLIST" not in playlist
    assert (await live_edge.post(url, data=mfra, headers=auth)).status == 200
    playlist = await (await live_edge.get("/live/seg.isml/" + playlist_url)).text()
    assert "#EXT-X-ENDLIST" in playlist
    source = await framemd5(str(capture), "0:v:0")
    assert await framemd5(base(live_edge, "seg") + "/master.m3u8", "0:v:0") == source
