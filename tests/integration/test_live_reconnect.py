"""`restart_on_encoder_reconnect` (issue 11, item 5): an encoder killed and restarted without `-output_ts_offset`
(its timeline starts at 0 again) is accepted as a discontinuity when the flag is on, and refused (400) when off.

Real ffmpeg on both sides: a Smooth push (`-f ismv`, H.264 + AAC) SIGKILLed after three fragments, then a second
push of 3 s of another source whose keyframes are 0.8 s apart (so with the flag off its second fragment is a jump back
between indexed times, not a resend). Every ffmpeg run and wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest
from live_captures import run_ffmpeg

from origin_proxy.config import LiveSettings
from origin_proxy.live.egress import discontinuous_presentation, live_state, segment
from origin_proxy.live.ingest import NEED_DATA, Fragment, Header, IngestParser
from origin_proxy.live.point import PublishingPoint
from origin_proxy.manifest import hls
from origin_proxy.manifest.model import UrlTemplates
from origin_proxy.server.live_points import _registry

TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ISMV = ["-f", "ismv", "-movflags", "isml+frag_keyframe"]
X264 = ["-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-keyint_min", "20",
        "-sc_threshold", "0", "-bf", "0"]
SCHEMA = Path(__file__).resolve().parents[2].parent / "shared" / "schemas" / "DASH-MPD.xsd"


def encode(path: Path, seconds: float, pattern: str, *extra: str) -> Path:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"{pattern}=size=160x120:rate=25",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-c:a", "aac", "-b:a", "64k",
                    "-t", str(seconds), *X264, *extra, str(path)], check=True, timeout=60)
    return path


def push_args(url: str) -> list[str]:
    return [*ISMV, "-headers", f"Authorization: Bearer {TOKEN}\r\n", "-method", "POST", url]


async def wait_for(predicate, timeout_s: float = 15.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not (value := await predicate()):
        assert loop.time() < deadline, f"not true after {timeout_s} s: {predicate.__qualname__}"
        await asyncio.sleep(0.1)
    return value


async def video_stats(client, base: str) -> dict:
    resp = await client.get(f"{base}/statistics")
    stats = await resp.json() if resp.status == 200 else {"tracks": []}
    return next((t for t in stats["tracks"] if t["type"] == "video"), {}) | {"state": stats.get("state")}


async def push_and_kill(client, base: str, source: Path) -> int:
    """A -re push of `source` SIGKILLed once three video fragments are indexed; the fragments it left."""
    url = f"http://127.0.0.1:{client.server.port}{base}/Streams(s1)"
    proc = await asyncio.create_subprocess_exec("ffmpeg", "-v", "quiet", "-nostdin", "-re", "-i", str(source),
                                                "-c", "copy", *push_args(url))
    try:
        await wait_for(lambda: _at_least(client, base, 3))
        proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), 10.0)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    async def disconnected():
        stats = await video_stats(client, base)
        return stats.get("encoder_connections") == 0 and stats

    return (await wait_for(disconnected))["fragments"]


async def _at_least(client, base: str, n: int) -> bool:
    return (await video_stats(client, base)).get("fragments", 0) >= n


async def media_playlist(client, base: str, kind: str) -> tuple[str, str]:
    master = await (await client.get(f"{base}/master.m3u8")).text()
    uris = [line for line in master.splitlines() if line and not line.startswith("#")]
    uris += [part.split('"')[1] for part in master.split("URI=")[1:]]
    uri = next(u for u in uris if f"/{kind}" in u)
    return uri, await (await client.get(f"{base}/{uri}")).text()


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    """`first`: 6 s testsrc, keyframes 1 s apart; `second`: 6 s testsrc2, keyframes forced 0.8 s apart, pushed
    with `-t 3`. The same audio and length, so ffmpeg writes the same moov for both (the esds bitrates are the
    source's): a reconnect with an identical header, which the flag off refuses for its timeline alone."""
    root = tmp_path_factory.mktemp("live-reconnect-sources")
    return {"first": encode(root / "first.mp4", 6, "testsrc"),
            "second": encode(root / "second.mp4", 6, "testsrc2", "-force_key_frames", "expr:gte(t,n_forced*0.8)")}


@pytest.fixture(scope="module")
def schema(tmp_path_factory) -> Path:
    """DASH-MPD.xsd with its xlink import pointed at the local copy (as test_mpd_schema.py does)."""
    assert SCHEMA.is_file() and shutil.which("xmllint"), f"{SCHEMA} and xmllint are needed"
    folder = tmp_path_factory.mktemp("reconnect-schema")
    (folder / "DASH-MPD.xsd").write_text(re.sub(r'schemaLocation="https?://www\.w3\.org/[^"]*xlink\.xsd"',
                                                'schemaLocation="xlink.xsd"', SCHEMA.read_text(encoding="utf-8")),
                                         encoding="utf-8")
    for name in ("xlink.xsd", "xml.xsd"):
        shutil.copyfile(SCHEMA.parent / name, folder / name)
    return folder / "DASH-MPD.xsd"


def video_pts(framemd5: bytes) -> list[int]:
    return [int(line.split(",")[2]) for line in framemd5.decode().splitlines() if line and not line.startswith("#")]


async def test_reconnect_with_timeline_from_zero(edge_client, sources, schema, tmp_path):
    """Flag on (/on/): the second push (timeline from 0) is shifted to continue the first: the HLS video and audio
    playlists have one EXT-X-DISCONTINUITY, after EOS ffmpeg decodes the whole VOD (video and audio) without an
    error line, with every frame of both pushes one frame apart (monotonic, no gap); the static MPD has one Period,
    validates against DASH-MPD.xsd and gives ffmpeg the same frames; the archive has a new part with its offsets
    sidecar, and a point reloaded from the archive has the same index. Flag off (/off/): the
    same second push is 400 (jump back) and what the first indexed stays, served as before."""
    storage = tmp_path / "live"
    rules = [{"from": f"/{flag}/", "live": {"storage": str(storage / flag), "ingest_token": TOKEN,
                                            "dvr_window_s": 30, "restart_on_encoder_reconnect": flag == "on"}}
             for flag in ("on", "off")]
    client = await edge_client(rules)
    kept_on, kept_off = await asyncio.gather(push_and_kill(client, "/on/r.isml", sources["first"]),
                                             push_and_kill(client, "/off/r.isml", sources["first"]))
    assert kept_on >= 3 and kept_off >= 3

    # Flag off: the second push's body (what ffmpeg sends, piped) is refused as a jump back.
    body, _ = await run_ffmpeg("-t", "3", "-i", str(sources["second"]), "-c", "copy", *ISMV, "pipe:1")
    resp = await client.post("/off/r.isml/Streams(s1)", data=body, headers=AUTH)
    assert resp.status == 400 and "jumps back" in await resp.text()
    off = await video_stats(client, "/off/r.isml")
    assert off["fragments"] == kept_off and off["state"] == "started"
    _, playlist = await media_playlist(client, "/off/r.isml", "video")
    assert "#EXT-X-DISCONTINUITY" not in playlist and playlist.count(".m4s") == kept_off

    # Flag on: the real ffmpeg push restarting at 0 is accepted and ends the event.
    await run_ffmpeg("-t", "3", "-i", str(sources["second"]), "-c", "copy",
                     *push_args(f"http://127.0.0.1:{client.server.port}/on/r.isml/Streams(s1)"))
    on = await video_stats(client, "/on/r.isml")
    assert on["state"] == "stopped" and on["fragments"] == kept_on + 4  # keyframes at 0, 0.8, 1.6, 2.4 s
    for kind in ("video", "audio"):
        _, playlist = await media_playlist(client, "/on/r.isml", kind)
        assert playlist.count("#EXT-X-DISCONTINUITY\n") == 1, playlist
        assert playlist.rstrip().endswith("#EXT-X-ENDLIST")
    lines = (await media_playlist(client, "/on/r.isml", "video"))[1].splitlines()
    after = lines[lines.index("#EXT-X-DISCONTINUITY") + 1:]
    assert sum(1 for line in lines[: lines.index("#EXT-X-DISCONTINUITY")] if line.endswith(".m4s")) == kept_on
    assert sum(1 for line in after if line.endswith(".m4s")) == 4

    master = f"http://127.0.0.1:{client.server.port}/on/r.isml/master.m3u8"
    _, err = await run_ffmpeg("-i", master, "-f", "null", "-")
    assert err == ""
    out, err = await run_ffmpeg("-i", master, "-map", "0:v:0", "-f", "framemd5", "-")
    assert err == ""
    pts = video_pts(out)
    assert len(pts) == kept_on * 25 + 75  # every frame of both pushes
    steps = {b - a for a, b in zip(pts, pts[1:])}
    assert len(steps) == 1 and steps.pop() > 0  # monotonic, one frame apart across the discontinuity

    # DASH: one Period (the shifted timeline is continuous), schema-valid, and ffmpeg reads the same frames.
    mpd = await (await client.get("/on/r.isml/manifest.mpd")).read()
    assert mpd.count(b"<Period") == 1
    (tmp_path / "manifest.mpd").write_bytes(mpd)
    done = subprocess.run(["xmllint", "--noout", "--nonet", "--schema", os.fspath(schema),
                           os.fspath(tmp_path / "manifest.mpd")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    out, err = await run_ffmpeg("-i", f"http://127.0.0.1:{client.server.port}/on/r.isml/manifest.mpd",
                                "-map", "0:v:0", "-f", "framemd5", "-")
    assert err == "" and video_pts(out) == pts

    directory = storage / "on" / "r.isml"
    parts = sorted(directory.glob("E001-s1-*.mp4"))
    sidecars = sorted(directory.glob("E001-s1-*.json"))
    assert len(parts) >= 2 and sidecars and all(p.with_suffix(".mp4") in parts for p in sidecars)
    assert all(json.loads(p.read_text())["offsets"] for p in sidecars)
    running = next(p for (rule, _), p in _registry(client.server.app).items() if rule == "/on/")
    reloaded = PublishingPoint("r.isml", directory, running.settings)
    reloaded.load()
    assert reloaded.state is running.state
    for key, live in running.tracks.items():
        a, b = live.index, reloaded.tracks[key].index
        assert (a.times, a.durations, a.sizes, a.locations, a.discontinuities, a.first_number) == \
            (b.times, b.durations, b.sizes, b.locations, b.discontinuities, b.first_number)
        assert len(a.discontinuities) == 1
    # Each track is shifted on its own: audio and video offsets (seconds) differ by less than a fragment.
    shifts = {live.track.kind: live.offset / live.index.timescale for live in running.tracks.values()}
    assert abs(shifts["video"] - shifts["audio"]) < max(running.fragment_duration_s(), 1.0), shifts


# --------------------------------------------------------------------- sans-I/O: window, two nodes, reload


def _feed(point: PublishingPoint, evs: list, start: float) -> None:
    for n, event in enumerate(evs):
        if isinstance(event, Header):
            point.on_header("v", event)
        elif isinstance(event, Fragment):
            point.on_fragment("v", event, start + n)


def _playlist(point: PublishingPoint, window_s: float | None) -> str:
    (view,) = point.views(window_s)
    live = live_state(datetime(2026, 12, 7, tzinfo=timezone.utc), datetime(2026, 12, 7, 1, tzinfo=timezone.utc),
                      30.0, 1.0, ended=False)
    return hls.media_playlist(discontinuous_presentation(view, live, UrlTemplates()), view.rendition_id)


@pytest.mark.parametrize("archive", [True, False])
def test_discontinuity_slides_out_nodes_agree_and_reload(tmp_path, cmaf_capture, archive):
    """A real CMAF capture (3 s, 1 s fragments, tfdt from 0) pushed twice to a point with the flag on, the
    second time after a reconnect: 6 fragments, one timeline, numbers 1..6, a discontinuity at 3 s. The playlist
    tags it while it is listed and counts it in EXT-X-DISCONTINUITY-SEQUENCE once the window slid past it, with
    PROGRAM-DATE-TIME one fragment apart across it; a second node fed the same ingest serves identical segments,
    and (with archive) a point reloaded from the directory has the same index. Inside that connection no second
    restart happens: the first fragment again is a resend (dropped)."""
    parser = IngestParser()
    parser.feed(cmaf_capture.read_bytes())
    evs = []
    while (event := parser.next_event()) is not NEED_DATA:
        evs.append(event)
    pushed = [e for e in evs if isinstance(e, (Header, Fragment))]  # no end of stream
    nodes = []
    for node in ("a", "b"):
        (tmp_path / node).mkdir()
        point = PublishingPoint("p.isml", tmp_path / node, LiveSettings(
            storage=str(tmp_path), archive=archive, restart_on_encoder_reconnect=True))
        _feed(point, pushed, 1000.0)
        _feed(point, pushed, 1010.0)  # the reconnect, timeline from 0 again
        nodes.append(point)
    point, other = nodes
    (live,) = point.tracks.values()
    index = live.index
    assert index.times == sorted(index.times) and len(index) == 6 and index.first_number == 1
    assert index.discontinuities == [index.times[3]] and index.times[3] == index.times[2] + index.durations[2]
    whole = _playlist(point, None)
    lines = whole.splitlines()
    assert lines.count("#EXT-X-DISCONTINUITY") == 1 and "#EXT-X-DISCONTINUITY-SEQUENCE" not in whole
    cut = lines.index("#EXT-X-DISCONTINUITY")
    assert [line for line in lines[:cut] if line.endswith(".m4s")] == ["1.m4s", "2.m4s", "3.m4s"]
    dates = [datetime.fromisoformat(line.split(":", 1)[1].replace("Z", "+00:00")) for line in lines
             if line.startswith("#EXT-X-PROGRAM-DATE-TIME")]
    assert len({b - a for a, b in zip(dates, dates[1:])}) == 1  # one fragment apart, across the jump too
    narrow = _playlist(point, 2.0)  # the newest 2 fragments (4 s..6 s): the discontinuity at 3 s slid out
    assert "#EXT-X-DISCONTINUITY\n" not in narrow and "#EXT-X-DISCONTINUITY-SEQUENCE:1" in narrow
    assert "#EXT-X-MEDIA-SEQUENCE:5" in narrow and [line for line in narrow.splitlines() if "m4s" in line] == \
        ["5.m4s", "6.m4s"]
    (other_live,) = other.tracks.values()
    for position in range(len(index)):
        number = index.first_number + position
        assert segment(point.read(index.locations[position]), live.track_id, index.times[position], number) == \
            segment(other.read(other_live.index.locations[position]), live.track_id,
                    other_live.index.times[position], number)
    if archive:
        reloaded = PublishingPoint("p.isml", tmp_path / "a", point.settings)
        reloaded.load()
        (again,) = reloaded.tracks.values()
        assert (again.index.times, again.index.durations, again.index.sizes, again.index.discontinuities,
                again.offset) == (index.times, index.durations, index.sizes, index.discontinuities, live.offset)
    fragments = [e for e in pushed if isinstance(e, Fragment)]
    assert point.on_fragment("v", fragments[1], 1020.0) == 0  # same connection: no new restart, a resend (4 s)
