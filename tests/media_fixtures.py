"""Test media: the shared files in ../shared/media and movies generated once per test session with ffmpeg.

Enable the fixtures for the whole suite with `pytest_plugins = ["media_fixtures"]` in tests/conftest.py, or import
the ones a module needs (`from media_fixtures import movie_60s`). Either way each movie is generated at most once
per session: the file is cached under the session's base temp dir by name, so a fixture registered twice (plugin
and import) finds the first one's file.

If ffmpeg/ffprobe are missing the fixtures raise, so the tests that need them error out; nothing is skipped
(STYLE §2.7).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import mediatools

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_MEDIA = REPO_ROOT.parent / "shared" / "media"

MOVIE_10MIN_S = 600.0
MOVIE_60S_S = 60.0
LARGE_MIN_BYTES = 100 * 2**20


def media(name: str) -> Path:
    """Path of a shared test file, e.g. media("mp4/sample.mp4"); FileNotFoundError (not a skip) if it is missing."""
    path = SHARED_MEDIA / name
    if not path.is_file():
        raise FileNotFoundError(f"shared test media missing: {path} (see {SHARED_MEDIA / 'README.md'})")
    return path


def _generated(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], Path]) -> Path:
    """The cached file `name`, built by `build(path)` the first time it is asked for in this session."""
    mediatools.require_tools()
    cache_dir = tmp_path_factory.getbasetemp() / "generated-media"
    cache_dir.mkdir(exist_ok=True)
    path = cache_dir / name
    if not path.is_file():  # the generators rename into place, so an existing file is complete
        build(path)
    return path


@pytest.fixture(scope="session")
def shared_media() -> Path:
    """The directory ../shared/media (read-only third-party files, listed in its README.md)."""
    return SHARED_MEDIA


@pytest.fixture(scope="session")
def movie_10min_moov_end(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """600 s H.264 (B-frames, irregular closed GOPs, 320x240, 25 fps) + AAC 48 kHz stereo; moov after mdat."""
    return _generated(
        tmp_path_factory,
        "movie_10min_moov_end.mp4",
        lambda path: mediatools.make_test_movie(path, MOVIE_10MIN_S, moov_at_end=True),
    )


@pytest.fixture(scope="session")
def movie_60s(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 s H.264 (B-frames, irregular closed GOPs, 320x240, 25 fps) + AAC 48 kHz stereo; faststart (moov first)."""
    return _generated(
        tmp_path_factory,
        "movie_60s_faststart.mp4",
        lambda path: mediatools.make_test_movie(path, MOVIE_60S_S, moov_at_end=False),
    )


@pytest.fixture(scope="session")
def movie_60s_scene_cuts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """movie_60s with scene cuts (mediatools.scene_cut_times), where x264 adds key frames of its own; moov at end."""
    return _generated(
        tmp_path_factory,
        "movie_60s_scene_cuts.mp4",
        lambda path: mediatools.make_test_movie(path, MOVIE_60S_S, moov_at_end=True, scene_cuts=True),
    )


@pytest.fixture(scope="session")
def movie_large(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A progressive H.264 + AAC MP4 of at least 100 MiB (moov at end). Mark tests using it `@pytest.mark.slow`."""
    return _generated(
        tmp_path_factory,
        "movie_large.mp4",
        lambda path: mediatools.make_large_movie(path, LARGE_MIN_BYTES),
    )


__all__ = [
    "REPO_ROOT",
    "SHARED_MEDIA",
    "media",
    "shared_media",
    "movie_10min_moov_end",
    "movie_60s",
    "movie_60s_scene_cuts",
    "movie_large",
]
