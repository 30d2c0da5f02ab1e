"""moov_writer.write_clip (the per-movie byte template) writes exactly the bytes moov_tree.write_clip_tree (the walk
of the skeleton) writes, on every shared mp4/mov/m4a file, over seeded random `?start=&end=` requests in both modes
(starts near 0, in the middle and near the end; with and without end). Where the template claims to lay a moov out,
the tree walk is patched to raise, so the template path is the one measured. A few clips are also read back by
ffprobe: per stream, the packets it counts are the samples the cut kept, and the clip lasts the window asked.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest

from origin_proxy.errors import BadRequest, OriginError
from origin_proxy.isobmff.edits import movie_duration_s
from origin_proxy.isobmff.movie import MovieFile, parse_moov
from origin_proxy.plan import LazyBytes
from origin_proxy.rewrite import moov_writer
from origin_proxy.rewrite.moov_tree import write_clip_tree
from origin_proxy.rewrite.params import ClipRequest
from origin_proxy.rewrite.select import select

MEDIA_ROOT = Path(__file__).resolve().parents[4] / "shared" / "media"
FILES = sorted(str(p.relative_to(MEDIA_ROOT)) for p in MEDIA_ROOT.rglob("*")
               if p.suffix.lower() in (".mp4", ".mov", ".m4a", ".m4v") and "malformed" not in p.parts)
PROBED = ("mp4/bbb_prog_10s.mp4", "mp4/h265_bframes.mp4", "mov/sample_edit_list.mp4", "mp4/multiple-aac-tracks.mp4")


def _top_boxes(data: bytes):
    offset = 0
    while offset + 8 <= len(data):
        size, fourcc = int.from_bytes(data[offset : offset + 4], "big"), data[offset + 4 : offset + 8]
        if size == 1:
            size = int.from_bytes(data[offset + 8 : offset + 16], "big")
        elif size == 0:
            size = len(data) - offset
        if size < 8:
            return
        yield fourcc, offset, size
        offset += size


def _load(name: str) -> tuple[MovieFile, bytes] | None:
    data = (MEDIA_ROOT / name).read_bytes()
    boxes = {fourcc: (offset, size) for fourcc, offset, size in _top_boxes(data)}
    if b"moov" not in boxes:
        return None
    offset, size = boxes[b"moov"]
    try:
        movie = parse_moov(data[offset : offset + size], len(data), 10_000_000)
    except OriginError:  # fragmented, unsupported: no clip to compare
        return None
    if not movie.tracks:
        return None
    ftyp = data[boxes[b"ftyp"][0] : sum(boxes[b"ftyp"])] if b"ftyp" in boxes else b""
    return MovieFile(movie, ftyp, len(data), offset, size, offset < boxes.get(b"mdat", (len(data),))[0]), data


def _requests(duration_s: Fraction, rng: random.Random) -> list[ClipRequest]:
    ms = int(duration_s * 1000)
    starts = [0, 1, 7, 40, max(ms - 1, 0), max(ms - 35, 0), max(ms - 500, 0)] + \
        [rng.randrange(0, max(ms, 1)) for _ in range(10)]
    out = []
    for index, start in enumerate(starts):
        for mode in ("exact", "keyframe"):
            end = None
            if index % 2:
                end = Fraction(min(start + rng.randrange(1, 4000), ms + 200), 1000)
            start_s = Fraction(start, 1000) if start else None
            if end is not None and start_s is not None and end <= start_s:
                end = None
            out.append(ClipRequest(start_s, end, mode))
    return out


def _render(parts) -> bytes:
    return b"".join(bytes(p) if isinstance(p, LazyBytes) else bytes(p) for p in parts)


def _no_fallback(*args, **kwargs):
    raise AssertionError("the template fell back to the tree walk")


@pytest.mark.parametrize("name", FILES)
def test_template_equals_tree_walk(name, monkeypatch):
    loaded = _load(name)
    if loaded is None:
        pytest.skip("no clip of this file (fragmented, unsupported or no track)")
    movie_file, _ = loaded
    laid_out = moov_writer._template(movie_file.movie) is not None
    if laid_out:
        monkeypatch.setattr(moov_writer, "write_clip_tree", _no_fallback)
    try:
        duration_s = movie_duration_s(movie_file.movie)
    except OriginError:  # an edit list select does not compose: every request is answered with an error
        pytest.skip("no clip of this file (an edit list select does not compose)")
    rng = random.Random(name)
    compared = 0
    for request in _requests(duration_s, rng):
        try:
            cuts = select(movie_file.movie, request)
        except (BadRequest, OriginError):
            continue
        head, source = moov_writer.write_clip(movie_file, cuts)
        tree_head, tree_source = write_clip_tree(movie_file, cuts)
        assert _render(head) == _render(tree_head), (name, request)
        assert (source.offset, source.size) == (tree_source.offset, tree_source.size), (name, request)
        assert sum(map(len, head)) == len(_render(head))
        compared += 1
    assert compared, "no request produced a clip"


def _ffprobe(path: Path, ignore_editlist: bool) -> dict:
    args = ["ffprobe", "-v", "error", "-show_entries", "stream=index,nb_read_packets:format=duration",
            "-count_packets", "-of", "json"]
    if ignore_editlist:
        args[1:1] = ["-ignore_editlist", "1"]
    out = subprocess.run([*args, str(path)], capture_output=True, check=True, timeout=30).stdout
    return json.loads(out)


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe not installed")
@pytest.mark.parametrize("name", PROBED)
def test_clip_reads_back_in_ffprobe(name, tmp_path):
    loaded = _load(name)
    assert loaded is not None
    movie_file, data = loaded
    duration_s = movie_duration_s(movie_file.movie)
    for start_s, end_s in ((duration_s / 3, duration_s * 2 / 3), (duration_s / 2, None)):
        start_s = Fraction(int(start_s * 1000), 1000)
        end_s = Fraction(int(end_s * 1000), 1000) if end_s is not None else None
        cuts = select(movie_file.movie, ClipRequest(start_s, end_s, "exact"))
        head, source = moov_writer.write_clip(movie_file, cuts)
        path = tmp_path / "clip.mp4"
        path.write_bytes(_render(head) + data[source.offset : source.offset + source.size])
        probe = _ffprobe(path, ignore_editlist=True)
        counts = [int(s["nb_read_packets"]) for s in sorted(probe["streams"], key=lambda s: s["index"])]
        assert counts == [cut.stop - cut.first for cut in cuts], (name, start_s, end_s)
        window_s = (end_s if end_s is not None else duration_s) - start_s
        clip_s = Fraction(_ffprobe(path, ignore_editlist=False)["format"]["duration"])
        assert abs(clip_s - window_s) <= Fraction(1, 10), (name, start_s, end_s, float(clip_s), float(window_s))
