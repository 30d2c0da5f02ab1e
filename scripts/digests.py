"""Byte-identity check for restructuring: record (status, content type, ETag, sha256 of the body) of every response
the edge makes of the shared media, or compare them with a recording made at another commit.

    python3 scripts/digests.py record OUT.json      # in the tree to check (e.g. a `git worktree` of the old commit)
    python3 scripts/digests.py compare OLD.json     # in the current tree: prints every difference, exit 1 if any

The app runs in-process (aiohttp TestServer) over a file rule on ../shared/media (relative to the tree the script
lives in) and a file rule on a `.ism` multi-bitrate set made once with tests/ism_sets.py into ISM_DIR (default
/tmp/digests-ism; reused, so both recordings read the same bytes). For every .mp4/.mov/.m4a of mp4/, mov/, fate/,
fmp4/: the plain file, three ?start/?end windows, master + every media playlist, the MPD, the Smooth Manifest, every
track's init and its first/middle/last segment, every StreamIndex's first QualityLevel's first/middle/last
fragment. Not a test: a tool for the person moving code.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

TREE = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(TREE), str(TREE / "tests")]
MEDIA_ROOT = Path(os.environ.get("ORIGIN_PROXY_MEDIA", TREE.parent / "shared" / "media")).resolve()
if not MEDIA_ROOT.is_dir():  # a worktree under /tmp: the shared media of the main checkout
    MEDIA_ROOT = Path("/work/shared/media")
ISM_DIR = Path(os.environ.get("ISM_DIR", "/tmp/digests-ism"))
WINDOWS = ("?start=0.5", "?end=0.8", "?start=0.3&end=2.5")
FOLDERS = ("mp4", "mov", "fate", "fmp4")
SUFFIXES = (".mp4", ".mov", ".m4a")


def _three(items: list) -> list:
    return sorted({0, len(items) // 2, len(items) - 1}) if items else []


async def _collect(client, base: str, out: dict[str, list]) -> None:
    async def get(path: str) -> tuple[int, bytes]:
        resp = await client.get(path)
        body = await resp.read()
        out[path] = [resp.status, resp.headers.get("Content-Type", ""), resp.headers.get("ETag", ""),
                     hashlib.sha256(body).hexdigest()]
        return resp.status, body

    if not base.endswith(".ism"):
        await get(base)
        for window in WINDOWS:
            await get(base + window)
    status, master = await get(base + "/master.m3u8")
    if status == 200:
        for line in master.decode().splitlines():
            uri = re.search(r'URI="([^"]+)"', line)
            target = uri.group(1) if uri else (line if line and not line.startswith("#") else None)
            if target is None:
                continue
            status, playlist = await get(f"{base}/{target}")
            if status != 200:
                continue
            folder = target.rsplit("/", 1)[0]
            await get(f"{base}/{folder}/init.mp4")
            segments = [s for s in playlist.decode().splitlines() if s.endswith(".m4s")]
            for index in _three(segments):
                await get(f"{base}/{folder}/{segments[index]}")
    await get(base + "/manifest.mpd")
    status, manifest = await get(base + "/Manifest")
    if status == 200:
        root = ET.fromstring(manifest)
        for stream in root.iter("StreamIndex"):
            name, level = stream.get("Name"), stream.find("QualityLevel")
            times, now = [], 0
            for chunk in stream.iter("c"):
                now = int(chunk.get("t", now))
                times.append(now)
                now += int(chunk.get("d", 0))
            for index in _three(times):
                await get(f"{base}/QualityLevels({level.get('Bitrate')})/Fragments({name}={times[index]})")


async def record() -> dict[str, list]:
    from aiohttp.test_utils import TestClient, TestServer

    from conftest import make_config
    from ism_sets import make_ism_set
    from origin_proxy.server.app import make_app

    if not (ISM_DIR / "set.ism").is_file():
        make_ism_set(ISM_DIR)
    rules = [{"from": "/m/", "to": "file://" + os.fspath(MEDIA_ROOT) + "/"},
             {"from": "/sets/", "to": "file://" + os.fspath(ISM_DIR) + "/", "segment_duration_s": 2}]
    out: dict[str, list] = {}
    async with TestClient(TestServer(make_app(make_config(rules, log_level="ERROR")))) as client:
        for folder in FOLDERS:
            for path in sorted((MEDIA_ROOT / folder).iterdir()):
                if path.suffix.lower() in SUFFIXES:
                    await _collect(client, f"/m/{folder}/{path.name}", out)
        await _collect(client, "/sets/set.ism", out)
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("record", "compare"):
        print(__doc__)
        return 2
    import logging
    logging.disable(logging.CRITICAL)
    now = asyncio.run(record())
    if argv[0] == "record":
        Path(argv[1]).write_text(json.dumps(now, indent=1, sort_keys=True))
        print(f"{len(now)} responses recorded in {argv[1]}")
        return 0
    old = json.loads(Path(argv[1]).read_text())
    differ = sorted(k for k in old.keys() | now.keys() if old.get(k) != now.get(k))
    for key in differ:
        print(f"DIFF {key}\n  old {old.get(key)}\n  new {now.get(key)}")
    same = len(old.keys() & now.keys()) - len([k for k in differ if k in old and k in now])
    print(f"{same} identical, {len(differ)} different, of {len(old)} old / {len(now)} new responses")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
