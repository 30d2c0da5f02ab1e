"""package/urls.py: which paths carry a packaging resource, and which resources exist (pure, no server)."""

from __future__ import annotations

import pytest

from fractions import Fraction

from origin_proxy.errors import NotFound, VersionGone
from origin_proxy.package.urls import PackageResource, split_package_path, version_token

V = "0123456789abcdef"


@pytest.mark.parametrize(("rest", "media", "resource"), [
    ("a/movie.mp4/master.m3u8", "a/movie.mp4", PackageResource("master", "master.m3u8")),
    ("movie.MP4/.m3u8", "movie.MP4", PackageResource("master", ".m3u8")),
    ("movie.mov/manifest.mpd", "movie.mov", PackageResource("mpd", "manifest.mpd")),
    ("movie.m4v/.mpd", "movie.m4v", PackageResource("mpd", ".mpd")),
    ("movie.mp4/cmaf1/v1/init.mp4", "movie.mp4", PackageResource("init", "cmaf1/v1/init.mp4", "v1")),
    ("x.mp4/movie.mp4/cmaf1/a2/12.m4s", "x.mp4/movie.mp4", PackageResource("segment", "cmaf1/a2/12.m4s", "a2", 12)),
    ("movie.mp4/cmaf1/a2/playlist.m3u8", "movie.mp4",
     PackageResource("playlist", "cmaf1/a2/playlist.m3u8", "a2")),
    (f"movie.mp4/cmaf1/v1/{V}/init.mp4", "movie.mp4", PackageResource("init", f"cmaf1/v1/{V}/init.mp4", "v1",
                                                                       version=V)),
    (f"a/movie.mp4/cmaf1/a2/{V}/12.m4s", "a/movie.mp4",
     PackageResource("segment", f"cmaf1/a2/{V}/12.m4s", "a2", 12, version=V)),
    (f"movie.mp4/{V}/QualityLevels(800000)/Fragments(video=0)", "movie.mp4",
     PackageResource("fragment", f"{V}/QualityLevels(800000)/Fragments(video=0)", stream="video", bitrate=800000,
                     fragment_time=0, version=V)),
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
                                  "movie.mp4/cmaf1/v1/99999999999.m4s", f"movie.mp4/cmaf1/v1/{V}/playlist.m3u8",
                                  f"movie.mp4/cmaf1/v1/{V[:-1]}/1.m4s", f"movie.mp4/cmaf1/v1/{V.upper()}/1.m4s",
                                  f"movie.mp4/cmaf1/v1/{V}/{V}/1.m4s"])
def test_malformed_resources_are_not_found(rest):
    with pytest.raises(NotFound):
        split_package_path(rest)


def test_version_token_names_validators_and_target():
    token = version_token(("1700000000-1234",), Fraction(4))
    assert len(token) == 16 and int(token, 16) >= 0
    assert token == version_token(("1700000000-1234",), Fraction(4))  # the same on every node
    assert token != version_token(("1700000001-1234",), Fraction(4))
    assert token != version_token(("1700000000-1234",), Fraction(2))
    assert version_token(("a", "b"), Fraction(4)) != version_token(("ab",), Fraction(4))


def test_a_url_of_another_version_is_gone():
    _, resource = split_package_path(f"movie.mp4/cmaf1/v1/{V}/3.m4s")
    assert resource.immutable
    resource.check_version(V)
    with pytest.raises(VersionGone):
        resource.check_version("f" * 16)
    _, plain = split_package_path("movie.mp4/cmaf1/v1/3.m4s")
    assert not plain.immutable
    plain.check_version("f" * 16)  # unversioned URLs are answered with whatever version is current
