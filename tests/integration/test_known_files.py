"""Local opens without a thread hop (store/source/local.py KnownFiles, issue 13): a path opened recently is opened
again on the loop while it still names the same inode, and anything else about it is seen by the very next request.

Each test serves a real movie, changes the file on disk (rewritten in place, renamed over, a symlink moved out of the
root, deleted) and checks the next answer: its bytes equal the new file's, its ETag is new, and ffprobe reads the
new encode out of a clip of it. The table's counters only show which open ran (the fast one must have been used
before the change, or the test would not test it).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import mediatools
from origin_proxy.server.state import EDGE_STATE


@pytest.fixture(scope="module")
def two_movies(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("known_files")
    old, new = folder / "old.mp4", folder / "new.mp4"
    mediatools.make_test_movie(old, 6, moov_at_end=False)
    mediatools.make_test_movie(new, 9, moov_at_end=False, size="352x288")
    return old, new


def _rule(folder: Path) -> list[dict]:
    return [{"from": "/files/", "to": "file://" + os.fspath(folder) + "/"}]


async def _get(client, url: str) -> tuple[int, bytes, str | None]:
    response = await client.get(url)
    return response.status, await response.read(), response.headers.get("ETag")


def _video_size(body: bytes, tmp_path: Path) -> tuple[int, int]:
    out = tmp_path / "answer.mp4"
    out.write_bytes(body)
    assert mediatools.decode_errors(out) == ""
    video = next(s for s in mediatools.ffprobe_streams(out) if s["codec_type"] == "video")
    return video["width"], video["height"]


async def _served_twice(client, url: str, expected: bytes) -> str:
    """GET `url` twice (the second open is the fast one); both bodies must be `expected`; the ETag."""
    known = client.app[EDGE_STATE].known_files
    status, body, etag = await _get(client, url)
    assert (status, body) == (200, expected)
    fast_before = known.fast_opens
    status, body, again = await _get(client, url)
    assert (status, body, again) == (200, expected, etag)
    assert known.fast_opens == fast_before + 1  # the second open reused the known inode
    return etag


def _folder_with(tmp_path, source):
    """A media folder under tmp_path holding a copy of `source` as movie.mp4: (folder, movie path)."""
    folder = tmp_path / "media"
    folder.mkdir()
    movie = folder / "movie.mp4"
    shutil.copyfile(source, movie)
    return folder, movie


@pytest.mark.parametrize("how", ["rewritten in place", "renamed over"])
async def test_a_replaced_file_is_served_new_by_the_next_request(edge_client, two_movies, tmp_path, how):
    old, new = two_movies
    folder, movie = _folder_with(tmp_path, old)
    client = await edge_client(_rule(folder))
    old_etag = await _served_twice(client, "/files/movie.mp4", old.read_bytes())
    old_clip_etag = (await _get(client, "/files/movie.mp4?start=2"))[2]
    inode = movie.stat().st_ino

    if how == "rewritten in place":
        with open(movie, "r+b") as f:  # the same inode, new bytes
            f.truncate(0)
            f.write(new.read_bytes())
        assert movie.stat().st_ino == inode
    else:
        staged = folder / ".movie.tmp"
        shutil.copyfile(new, staged)
        os.replace(staged, movie)
        assert movie.stat().st_ino != inode

    status, body, etag = await _get(client, "/files/movie.mp4")
    assert status == 200 and body == new.read_bytes()
    assert etag != old_etag
    status, clip, clip_etag = await _get(client, "/files/movie.mp4?start=2")
    assert status == 200 and clip_etag != old_clip_etag
    assert _video_size(clip, tmp_path) == (352, 288)  # the new encode's head and samples
    assert abs(mediatools.duration_s(tmp_path / "answer.mp4") - 7) < 0.1


async def test_a_symlink_moved_out_of_the_root_is_refused_at_once(edge_client, two_movies, tmp_path):
    old, new = two_movies
    folder, outside = tmp_path / "media", tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    shutil.copyfile(old, folder / "real.mp4")
    shutil.copyfile(new, outside / "secret.mp4")
    link = folder / "link.mp4"
    link.symlink_to(folder / "real.mp4")
    client = await edge_client(_rule(folder))
    await _served_twice(client, "/files/link.mp4", old.read_bytes())

    link.unlink()
    link.symlink_to(outside / "secret.mp4")
    status, body, _ = await _get(client, "/files/link.mp4")
    assert status == 404 and new.read_bytes()[:64] not in body


async def test_a_deleted_file_is_404_at_once_and_a_new_one_is_served(edge_client, two_movies, tmp_path):
    old, new = two_movies
    folder, movie = _folder_with(tmp_path, old)
    client = await edge_client(_rule(folder))
    await _served_twice(client, "/files/movie.mp4", old.read_bytes())

    movie.unlink()
    assert (await _get(client, "/files/movie.mp4"))[0] == 404
    shutil.copyfile(new, movie)
    status, body, _ = await _get(client, "/files/movie.mp4")
    assert status == 200 and body == new.read_bytes()


async def test_known_files_off_still_serves(edge_client, two_movies, tmp_path):
    old, _ = two_movies
    client = await edge_client(_rule(old.parent), cache={"known_files": 0})
    assert client.app[EDGE_STATE].known_files is None
    status, body, _ = await _get(client, f"/files/{old.name}?start=1")
    assert status == 200
    assert _video_size(body, tmp_path) == (320, 240)
