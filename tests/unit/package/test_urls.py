"""package/urls.py: which paths carry a packaging resource, and which resources exist (pure, no server)."""

from __future__ import annotations

import pytest

from origin_proxy.errors import NotFound
from origin_proxy.package.urls import PackageResource, split_package_path


@pytest.mark.parametrize(("rest", "media", "resource"), [
    ("a/movie.mp4/master.m3u8", "a/movie.mp4", PackageResource("master", "master.m3u8")),
    ("movie.MP4/.m3u8", "movie.MP4", PackageResource("master", ".m3u8")),
    ("movie.mov/manifest.mpd", "movie.mov", PackageResource("mpd", "manifest.mpd")),
    ("movie.m4v/.mpd", "movie.m4v", PackageResource("mpd", ".mpd")),
    ("movie.mp4/cmaf1/v1/init.mp4", "movie.mp4", PackageResource("init", "cmaf1/v1/init.mp4", "v1")),
    ("x.mp4/movie.mp4/cmaf1/a2/12.m4s", "x.mp4/movie.mp4", PackageResource("segment", "cmaf1/a2/12.m4s", "a2", 12)),
    ("movie.mp4/cmaf1/a2/playlist.m3u8", "movie.mp4",
     PackageResource("playlist", "cmaf1/a2/playlist.m3u8", "a2")),
])
def test_resources(rest, media, resource):
    assert split_package_path(rest) == (media, resource)


@pytest.mark.parametrize("rest", ["movie.mp4", "dir.mp4/movie.mp4", "a/b/c", "", "cmaf1/v1/init.mp4",
                                  "movie.mp4/cmaf1/v1/INIT.MP4"])
def test_no_resource(rest):
    assert split_package_path(rest) is None


@pytest.mark.parametrize("rest", ["movie.mp4/x", "movie.mp4/", "movie.mp4/cmaf1/v1/0.m4s", "movie.mp4/cmaf1/v0/1.m4s",
                                  "movie.mp4/cmaf1/v1/01.m4s", "movie.mp4/cmaf2/v1/1.m4s", "movie.mp4/cmaf1/s1/1.m4s",
                                  "movie.mp4/cmaf1/v1/1.m4s/x", "movie.mp4/Master.m3u8", "movie.mp4/cmaf1/v1",
                                  "movie.mp4/cmaf1/v1/99999999999.m4s"])
def test_malformed_resources_are_not_found(rest):
    with pytest.raises(NotFound):
        split_package_path(rest)
