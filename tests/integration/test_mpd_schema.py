"""Every MPD we make validates against the MPEG-DASH schema (ISO/IEC 23009-1 DASH-MPD.xsd) with xmllint.

The schema is not ours to ship: it is read from ORIGIN_PROXY_DASH_XSD (a path to DASH-MPD.xsd) or from
../shared/schemas/DASH-MPD.xsd. Its xlink import (the W3C URL) is pointed at an xlink.xsd next to it, so xmllint
runs with --nonet. Without the schema the module is skipped, and says why.

Checked: the MPD of every file in ../shared/media mp4/ and mov/, of a two-language file and of the 3-variant .ism set.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import mediatools as mt
from conftest import MEDIA_ROOT
from ism_sets import make_ism_set

_CANDIDATES = [os.environ.get("ORIGIN_PROXY_DASH_XSD", ""), os.fspath(MEDIA_ROOT.parent / "schemas/DASH-MPD.xsd")]
SCHEMA = next((Path(p) for p in _CANDIDATES if p and Path(p).is_file()), None)

pytestmark = pytest.mark.skipif(
    SCHEMA is None or shutil.which("xmllint") is None,
    reason="DASH-MPD.xsd not found (set ORIGIN_PROXY_DASH_XSD or put it in ../shared/schemas/) or no xmllint")

FILES = sorted(p.relative_to(MEDIA_ROOT).as_posix() for d in ("mp4", "mov") for p in (MEDIA_ROOT / d).iterdir())


@pytest.fixture(scope="module")
def schema(tmp_path_factory) -> Path:
    """A copy of the schema whose xlink import points at the local xlink.xsd (which imports xml.xsd beside it)."""
    folder = tmp_path_factory.mktemp("dash-schema")
    text = SCHEMA.read_text(encoding="utf-8")
    text = re.sub(r'schemaLocation="https?://www\.w3\.org/[^"]*xlink\.xsd"', 'schemaLocation="xlink.xsd"', text)
    (folder / "DASH-MPD.xsd").write_text(text, encoding="utf-8")
    for name in ("xlink.xsd", "xml.xsd"):
        imported = SCHEMA.parent / name
        if not imported.is_file():
            pytest.skip(f"no {name} next to {SCHEMA}")
        shutil.copyfile(imported, folder / name)
    return folder / "DASH-MPD.xsd"


def _validate(schema: Path, mpd: bytes, tmp_path: Path) -> None:
    path = tmp_path / "manifest.mpd"
    path.write_bytes(mpd)
    done = subprocess.run(["xmllint", "--noout", "--nonet", "--schema", os.fspath(schema), os.fspath(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.parametrize("name", FILES)
async def test_mpd_of_every_file_validates(edge, schema, tmp_path, name):
    resp = await edge.client.get(f"/files/{name}/manifest.mpd")
    if resp.status != 200:  # nothing DASH can carry (e.g. a codec matrix gap): the 4xx is tested elsewhere
        pytest.skip(f"{name}: no MPD ({resp.status})")
    _validate(schema, await resp.read(), tmp_path)


async def test_mpd_of_two_languages_and_of_a_set_validates(edge_client, schema, tmp_path):
    root = tmp_path / "media"
    root.mkdir()
    mt.run([mt.FFMPEG, "-nostdin", "-y", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=24",
            "-f", "lavfi", "-i", "sine=frequency=440", "-f", "lavfi", "-i", "sine=frequency=660", "-t", "4",
            "-map", "0:v", "-map", "1:a", "-map", "2:a", "-c:v", "libx264", "-preset", "superfast", "-c:a", "aac",
            "-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=fra", root / "lang.mp4"], timeout=120)
    ism = make_ism_set(root / "set", 6.0)
    client = await edge_client([{"from": "/g/", "to": "file://" + os.fspath(root) + "/"}])
    for path in ("lang.mp4", f"set/{ism.ism_name}"):
        resp = await client.get(f"/g/{path}/manifest.mpd")
        assert resp.status == 200, path
        _validate(schema, await resp.read(), tmp_path)
