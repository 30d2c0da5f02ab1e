"""Live egress over HTTP from a real `origin_proxy serve` process while one ffmpeg push runs, then after it ends
(issue 11 "Must show", egress side). test_live.py covers the ingest side (Smooth and per-segment pushes, HLS
decoded while live, archive decoded, bad ingest); this module adds:

- while live: `ffmpeg -i BASE/manifest.mpd` decodes without an error line; the dynamic MPD
  validates against DASH-MPD.xsd (xmllint); Range on CMAF segments and Smooth fragments answers 206 with the
  right bytes (one range, several, suffix, unsatisfiable 416), HEAD and If-None-Match; every Smooth fragment URL
  the manifest lists (each c@t) answers 200 with a tfxd of exactly that time and duration; `?dvr_window_length`
  narrows all three manifests and a bad one is 400; Cache-Control: about half a fragment on live manifests,
  immutable on segments; GET/HEAD only (405 with Allow);
- after end of stream: the static MPD validates; HLS and DASH decode frame-identical (framemd5 of the video) to
  the pushed file; the archive files end with an mfra (mfro) and decode frame-identical too;
- two origin processes fed by one ffmpeg `tee` push list the same segment URLs and serve byte-identical init
  segments, CMAF segments and Smooth fragments (`cmp`);
- two encoders (two bitrates, one with audio) pushing into one point in parallel: both variants decode while
  live and frame-identical to their files after end of stream.

The pushed files are encoded first (H.264 with 1 s GOPs, + AAC) and pushed with `-re -c copy -f ismv`, so the
reference frames are known. About 30 s (a 14 s and a 6 s push in real time; the tee push is not -re).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import struct
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import aiohttp
import pytest

from serve_process import ServeProcess

TOKEN = "egress-token"
PUSH_S = 14
SCHEMA = Path(__file__).resolve().parents[2].parent / "shared" / "schemas" / "DASH-MPD.xsd"
TFXD_UUID = bytes.fromhex("6d1d9b0542d544e680e2141daff757b2")


@pytest.fixture(scope="module")
def schema(tmp_path_factory) -> Path:
    """DASH-MPD.xsd with its xlink import pointed at the local xlink.xsd (as test_mpd_schema.py does)."""
    assert SCHEMA.is_file() and shutil.which("xmllint"), f"{SCHEMA} and xmllint are needed"
    folder = tmp_path_factory.mktemp("live-schema")
    text = re.sub(r'schemaLocation="https?://www\.w3\.org/[^"]*xlink\.xsd"', 'schemaLocation="xlink.xsd"',
                  SCHEMA.read_text(encoding="utf-8"))
    (folder / "DASH-MPD.xsd").write_text(text, encoding="utf-8")
    for name in ("xlink.xsd", "xml.xsd"):
        shutil.copyfile(SCHEMA.parent / name, folder / name)
    return folder / "DASH-MPD.xsd"


def validate(schema: Path, mpd: bytes, folder: Path) -> None:
    path = folder / "manifest.mpd"
    path.write_bytes(mpd)
    done = subprocess.run(["xmllint", "--noout", "--nonet", "--schema", os.fspath(schema), os.fspath(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]


class Event:
    """The origin process, the push, the paths."""

    def __init__(self, origin: ServeProcess, push: subprocess.Popen, pushed: Path, storage: Path) -> None:
        self.origin, self.push, self.pushed, self.storage = origin, push, pushed, storage
        self.base = origin.base_url + "/live/ev.isml"

    def ended(self) -> None:
        """Wait for the push to end (bounded) and check it succeeded."""
        _, err = self.push.communicate(timeout=PUSH_S + 30)
        assert self.push.returncode == 0, err.decode()


@pytest.fixture(scope="module")
def event(tmp_path_factory):
    root = tmp_path_factory.mktemp("live-egress")
    pushed = root / "pushed.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(PUSH_S),
                    "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-keyint_min", "25",
                    "-sc_threshold", "0", "-bf", "0", "-c:a", "aac", "-b:a", "64k", os.fspath(pushed)],
                   check=True, timeout=60)
    storage = root / "live"
    remap = (f"remap:\n  - from: /live/\n    live:\n      storage: {storage}\n      ingest_token: {TOKEN}\n"
             f"      dvr_window_s: 60\n")
    with ServeProcess(root / "origin", remap) as origin:
        base = origin.base_url + "/live/ev.isml"
        push = subprocess.Popen(
            ["ffmpeg", "-v", "error", "-nostdin", "-re", "-i", os.fspath(pushed), "-c", "copy", "-f", "ismv",
             "-movflags", "isml+frag_keyframe", "-headers", f"Authorization: Bearer {TOKEN}\r\n", "-method", "POST",
             base + "/Streams(s1)"], stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            import urllib.request
            deadline = time.monotonic() + 20
            while True:  # live with 4 fragments listed in the Smooth manifest (one c per fragment)
                assert push.poll() is None and time.monotonic() < deadline, "the point never listed 4 fragments"
                try:
                    with urllib.request.urlopen(base + "/Manifest", timeout=5) as resp:
                        if resp.read().count(b"<c ") >= 2 * 4:
                            break
                except OSError:
                    pass
                time.sleep(0.2)
            yield Event(origin, push, pushed, storage)
        finally:
            if push.poll() is None:
                push.kill()
                push.wait()


async def get(session: aiohttp.ClientSession, url: str, **kwargs) -> tuple[aiohttp.ClientResponse, bytes]:
    async with session.request(kwargs.pop("method", "GET"), url, **kwargs) as resp:
        return resp, await resp.read()


async def stopped_state(session: aiohttp.ClientSession, base: str, timeout_s: float = 10.0) -> bytes:
    """/state once the point stopped (ffmpeg may exit before the origin has read its last bytes), or as it is
    after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        _, state = await get(session, base + "/state")
        if b'"stopped"' in state or time.monotonic() > deadline:
            return state
        await asyncio.sleep(0.1)


def media_playlist_urls(master: str) -> list[str]:
    return [line for line in master.splitlines() if line and not line.startswith("#")]


def smooth_fragments(manifest: bytes) -> list[tuple[str, int, int, int, str]]:
    """(kind, bitrate, t, d, URL after BASE/) of every listed chunk of every QualityLevel (c@t, or the previous
    end; the URL from StreamIndex@Url, MS-SSTR §2.2.2.3)."""
    out = []
    for stream in ET.fromstring(manifest).iter("StreamIndex"):
        template = stream.get("Url")
        t = 0
        chunks = []
        for c in stream.iter("c"):
            t = int(c.get("t", t))
            chunks.append((t, int(c.get("d"))))
            t += int(c.get("d"))
        for level in stream.iter("QualityLevel"):
            bitrate = level.get("Bitrate")
            out += [(stream.get("Type"), int(bitrate), t, d,
                     template.replace("{bitrate}", bitrate).replace("{start time}", str(t))) for t, d in chunks]
    return out


async def ffmpeg_errors(*args: str, timeout_s: float = 40) -> str:
    proc = await asyncio.create_subprocess_exec("ffmpeg", "-v", "error", "-nostdin", *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    assert proc.returncode == 0, err.decode()[-3000:]
    return err.decode()


async def framemd5(source: str) -> list[str]:
    proc = await asyncio.create_subprocess_exec("ffmpeg", "-v", "error", "-nostdin", "-i", source, "-map", "0:v:0",
                                                "-f", "framemd5", "-", stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return [line.rsplit(",", 1)[1].strip() for line in out.decode().splitlines() if not line.startswith("#")]


# ---- while live ---------------------------------------------------------------------------------------------

async def test_live_http_semantics(event):
    async with aiohttp.ClientSession() as session:
        resp, body = await get(session, event.base + "/state")
        assert b'"started"' in body, "the push ended before the live checks ran"
        resp, master = await get(session, event.base + "/master.m3u8")
        assert resp.status == 200 and resp.headers["Cache-Control"] == "public, max-age=1"  # 1 s fragments
        video_playlist = next(u for u in media_playlist_urls(master.decode()) if "video" in u)
        resp, playlist = await get(session, event.base + "/" + video_playlist)
        assert resp.headers["Cache-Control"] == "public, max-age=1"
        segment_url = event.base + "/" + video_playlist.rsplit("/", 1)[0] + "/" + \
            media_playlist_urls(playlist.decode())[1]
        for url in (segment_url, event.base + "/Manifest"):  # viewers never write
            for method in ("POST", "PUT", "DELETE"):
                resp, _ = await get(session, url, method=method, data=b"x",
                                    headers={"Authorization": f"Bearer {TOKEN}"})
                assert (resp.status, resp.headers.get("Allow")) == (405, "GET, HEAD"), (method, url)

        # Range on a CMAF segment and on a Smooth fragment (RFC 9110 §14).
        _, manifest = await get(session, event.base + "/Manifest")
        kind, bitrate, t, d, path = smooth_fragments(manifest)[1]
        fragment_url = f"{event.base}/{path}"
        assert path == f"E1/QualityLevels({bitrate})/Fragments({kind}={t})"  # the event is part of the URL
        resp, bare = await get(session, f"{event.base}/QualityLevels({bitrate})/Fragments({kind}={t})")
        _, same = await get(session, fragment_url)
        assert bare == same and resp.headers["Cache-Control"] == "public, max-age=1"  # MS-SSTR's bare form
        resp, _ = await get(session, f"{event.base}/E2/QualityLevels({bitrate})/Fragments({kind}={t})")
        assert resp.status == 404  # no such event
        for url in (segment_url, fragment_url):
            resp, whole = await get(session, url)
            assert resp.status == 200 and resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
            n = len(whole)
            assert n > 300 and resp.headers["Accept-Ranges"] == "bytes"
            resp, part = await get(session, url, headers={"Range": "bytes=100-199"})
            assert (resp.status, resp.headers["Content-Range"], part) == (206, f"bytes 100-199/{n}", whole[100:200])
            resp, part = await get(session, url, headers={"Range": "bytes=-50"})
            assert (resp.status, resp.headers["Content-Range"], part) == (206, f"bytes {n - 50}-{n - 1}/{n}",
                                                                           whole[-50:])
            resp, part = await get(session, url, headers={"Range": "bytes=0-9,20-29"})
            assert resp.status == 206 and resp.content_type == "multipart/byteranges"
            assert f"Content-Range: bytes 0-9/{n}\r\n\r\n".encode() + whole[0:10] in part
            assert f"Content-Range: bytes 20-29/{n}\r\n\r\n".encode() + whole[20:30] in part
            resp, _ = await get(session, url, headers={"Range": f"bytes={n}-"})
            assert (resp.status, resp.headers["Content-Range"]) == (416, f"bytes */{n}")
            resp, head = await get(session, url, method="HEAD")
            assert (resp.status, int(resp.headers["Content-Length"]), head) == (200, n, b"")
            resp, _ = await get(session, url, headers={"If-None-Match": resp.headers["ETag"]})
            assert resp.status == 304

        # ?dvr_window_length narrows every manifest; a bad value is 400, not 404.
        resp, narrow = await get(session, event.base + "/" + video_playlist + "?dvr_window_length=2")
        assert resp.status == 200
        listed = narrow.decode().count("#EXTINF")
        assert 3 <= listed < playlist.decode().count("#EXTINF") + 2  # never below 3 segments (RFC 8216 §6.2.2)
        _, wide = await get(session, event.base + "/" + video_playlist)
        assert listed < wide.decode().count("#EXTINF")
        _, mpd = await get(session, event.base + "/manifest.mpd?dvr_window_length=2")
        depth_s = float(re.search(r'timeShiftBufferDepth="PT([0-9.]+)S"', mpd.decode()).group(1))
        assert 3.5 <= depth_s < 3.6  # 2 s asked, widened to 3.5 fragments of about 1 s
        assert ET.fromstring(mpd).find(".//{*}S") is not None
        _, smooth = await get(session, event.base + "/Manifest?dvr_window_length=2")
        assert int(ET.fromstring(smooth).get("DVRWindowLength")) == pytest.approx(depth_s * 10_000_000, abs=10_000)
        for bad in ("abc", "0", "-3", "nan", "inf", ""):
            resp, _ = await get(session, event.base + "/manifest.mpd?dvr_window_length=" + bad)
            assert resp.status == 400, bad


async def test_every_listed_smooth_time_answers_its_tfxd(event):
    async with aiohttp.ClientSession() as session:
        _, manifest = await get(session, event.base + "/Manifest")
        assert b'IsLive="TRUE"' in manifest
        listed = smooth_fragments(manifest)
        assert {kind for kind, *_ in listed} == {"video", "audio"} and len(listed) >= 8
        for kind, bitrate, t, d, path in listed:
            resp, body = await get(session, f"{event.base}/{path}")
            assert resp.status == 200, (kind, t)
            at = body.index(TFXD_UUID) + 16  # MS-SSTR §2.2.4.4: version 1, then 64-bit time and duration
            assert struct.unpack_from(">IQQ", body, at) == (1 << 24, t, d), (kind, t)


async def test_ffmpeg_decodes_the_live_dash(event, schema, tmp_path):
    async with aiohttp.ClientSession() as session:
        resp, mpd = await get(session, event.base + "/manifest.mpd")
        assert b'type="dynamic"' in mpd, "the push ended before the live checks ran"
    validate(schema, mpd, tmp_path)
    # 3 s while the push goes on: no error line at all (test_live.py decodes the live HLS the same way).
    assert await ffmpeg_errors("-t", "3", "-i", event.base + "/manifest.mpd", "-f", "null", "-") == ""


# ---- after end of stream ------------------------------------------------------------------------------------

async def test_after_end_of_stream_the_event_is_vod(event, schema, tmp_path):
    await asyncio.to_thread(event.ended)
    async with aiohttp.ClientSession() as session:
        assert b'"stopped"' in await stopped_state(session, event.base)
        resp, mpd = await get(session, event.base + "/manifest.mpd")
        assert b'type="static"' in mpd and b"mediaPresentationDuration" in mpd
        assert resp.headers["Cache-Control"] == "public, max-age=60"
        _, manifest = await get(session, event.base + "/Manifest")
        assert b"IsLive" not in manifest
    validate(schema, mpd, tmp_path)
    pushed = await framemd5(os.fspath(event.pushed))
    hls, dash = await asyncio.gather(framemd5(event.base + "/master.m3u8"), framemd5(event.base + "/manifest.mpd"))
    assert len(pushed) == 25 * PUSH_S
    assert hls == pushed
    assert dash == pushed
    archives = sorted((event.storage / "ev.isml").glob("E001-*.mp4"))
    assert archives
    for archive in archives:  # (test_live.py decodes them with ffmpeg; here: they end as VOD files do)
        data = archive.read_bytes()
        size, fourcc = struct.unpack_from(">I4s", data, len(data) - 16)  # mfro: the last 16 bytes
        assert fourcc == b"mfro"
        mfra_size = struct.unpack_from(">I", data, len(data) - 4)[0]  # mfro's mfra_size (§8.8.11)
        assert data[len(data) - mfra_size + 4 : len(data) - mfra_size + 8] == b"mfra"
    assert await framemd5(os.fspath(archives[0])) == pushed


# ---- two nodes, one tee'd ingest ----------------------------------------------------------------------------

def test_two_nodes_fed_by_a_tee_serve_identical_segments(tmp_path):
    """ffmpeg's tee muxer pushes one encode to two origin processes (redundant origins behind a CDN): both list the
    same segment URLs and answer byte-identical init segments, CMAF segments and Smooth fragments (cmp)."""
    pushed = tmp_path / "tee.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "4", "-pix_fmt", "yuv420p",
                    "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "aac", os.fspath(pushed)],
                   check=True, timeout=60)
    import urllib.request

    def fetch(url: str) -> bytes:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.read()

    nodes = []
    try:
        for name in ("a", "b"):
            remap = (f"remap:\n  - from: /live/\n    live:\n      storage: {tmp_path / name / 'live'}\n"
                     f"      ingest_token: {TOKEN}\n")
            nodes.append(ServeProcess(tmp_path / name, remap).start())
        # tee: '|' separates outputs, ':' options; the header's own ':' is escaped for both levels.
        header = f"Authorization\\\\\\: Bearer {TOKEN}\r\n"
        outputs = "|".join(f"[f=ismv:movflags=isml+frag_keyframe:method=POST:headers={header}]"
                           f"{node.base_url}/live/tee.isml/Streams(s1)" for node in nodes)
        done = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", os.fspath(pushed), "-map", "0", "-c", "copy",
                               "-f", "tee", outputs], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and done.stderr == "", done.stderr
        bases = [node.base_url + "/live/tee.isml/" for node in nodes]
        resources: list[list[str]] = []
        for base in bases:
            master = fetch(base + "master.m3u8").decode()
            paths = []
            for playlist in media_playlist_urls(master) + re.findall(r'URI="([^"]+)"', master):
                folder = playlist.rsplit("/", 1)[0] + "/"
                text = fetch(base + playlist).decode()
                paths += [folder + uri for uri in re.findall(r'#EXT-X-MAP:URI="([^"]+)"', text)]
                paths += [folder + uri for uri in media_playlist_urls(text)]
            paths += [path for *_, path in smooth_fragments(fetch(base + "Manifest"))]
            resources.append(sorted(set(paths)))
        assert resources[0] == resources[1]  # the same URLs on both nodes
        assert len(resources[0]) >= 2 * 4 * 2 + 2  # two tracks: init + 4 segments each, as CMAF and as Smooth
        for index, path in enumerate(resources[0]):
            copies = [tmp_path / f"{name}-{index}" for name in ("a", "b")]
            for base, copy in zip(bases, copies):
                copy.write_bytes(fetch(base + path))
            assert subprocess.run(["cmp", *map(os.fspath, copies)]).returncode == 0, path
    finally:
        for node in nodes:
            node.stop()


# ---- two encoders, two bitrates, one point ------------------------------------------------------------------

async def test_two_parallel_pushes_into_one_point(tmp_path, serve_process):
    """The seed's "Method 1": one encoder per bitrate pushes into the same point (320x240 with AAC, 160x120 video
    only), in parallel, in real time. While live ffmpeg decodes both HLS variants with no error line; the manifests
    carry both video bitrates (one Smooth StreamIndex, two QualityLevels); after end of stream every representation
    of the MPD decodes cleanly and each variant frame-identical to the file its encoder pushed."""
    files = {}
    for name, size, audio in (("hi", "320x240", True), ("lo", "160x120", False)):
        files[name] = tmp_path / f"{name}.mp4"
        args = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-c:a", "aac"] if audio else []
        subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i", f"testsrc=size={size}:rate=25",
                        *args, "-t", "6", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "ultrafast",
                        "-g", "25", "-keyint_min", "25", "-sc_threshold", "0", "-bf", "0", os.fspath(files[name])],
                       check=True, timeout=60)
    remap = (f"remap:\n  - from: /live/\n    live:\n      storage: {tmp_path / 'live'}\n      ingest_token: {TOKEN}\n")
    origin = serve_process(remap)
    base = origin.base_url + "/live/two.isml"
    pushes = [await asyncio.create_subprocess_exec(
        "ffmpeg", "-v", "error", "-nostdin", "-re", "-i", os.fspath(files[name]), "-c", "copy", "-f", "ismv",
        "-movflags", "isml+frag_keyframe", "-headers", f"Authorization: Bearer {TOKEN}\r\n", "-method", "POST",
        f"{base}/Streams({name})", stderr=asyncio.subprocess.PIPE) for name in files]
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(100):  # both encoders' video listed, in Smooth too (which holds the newest back)
                await asyncio.sleep(0.2)
                resp, manifest = await get(session, base + "/Manifest")
                if resp.status == 200 and manifest.count(b"<QualityLevel ") == 3:
                    break
            _, master = await get(session, base + "/master.m3u8")
            variants = [u for u in media_playlist_urls(master.decode()) if "video" in u]
            assert len(variants) == 2 and b"#EXT-X-MEDIA:TYPE=AUDIO" in master, master.decode()
            video = next(s for s in ET.fromstring(manifest).iter("StreamIndex") if s.get("Type") == "video")
            bitrates = {int(q.get("Bitrate")) for q in video.iter("QualityLevel")}
            assert len(bitrates) == 2 and 0 not in bitrates
            checks = [ffmpeg_errors("-t", "2", "-i", base + "/" + v, "-f", "null", "-") for v in variants]
            assert await asyncio.gather(*checks) == ["", ""]
        for push in pushes:
            _, err = await asyncio.wait_for(push.communicate(), 30)
            assert push.returncode == 0, err.decode()
        async with aiohttp.ClientSession() as session:
            assert b'"stopped"' in await stopped_state(session, base)
        # Every representation of the (now static) MPD at once. While live this was seen to fail once: ffmpeg 5.1's
        # DASH demuxer, on a dynamic MPD only 2 fragments old with every representation mapped, re-read segments
        # after a refresh (non-monotonic dts, not yet understood); the single-push test decodes the dynamic MPD.
        assert await ffmpeg_errors("-i", base + "/manifest.mpd", "-map", "0", "-f", "null", "-") == ""
        served = await asyncio.gather(*(framemd5(base + "/" + v) for v in variants))
        pushed = await asyncio.gather(*(framemd5(os.fspath(f)) for f in files.values()))
        assert len(pushed[0]) == 150 and sorted(served) == sorted(pushed)
    finally:
        for push in pushes:
            if push.returncode is None:
                push.kill()
                await push.wait()
