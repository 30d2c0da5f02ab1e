"""No stale mix (issue 17): init/segment URLs name the source version, so replacing the file never hands a
player bytes of two versions (package/urls.py version tokens).

Against a real `origin_proxy serve` on a file: rule (2 s segments), with two different encodes (tests/replaced_source.py):
init + segment 5 fetched from version A's playlist, then the file is replaced by version B; segment 6 of A's
playlist (and A's init) answer 410, never B's bytes. A's pieces decode clean on their own; the new playlist names
new URLs, whose init + segments 5 and 6 decode clean (ffmpeg) and are B's frames. Versioned URLs are immutable,
manifests and unversioned URLs short-lived; the bytes under a versioned and an unversioned URL are the same.
The same scenario through ATS, Varnish and nginx is tests/edges/.
"""

from __future__ import annotations

import pytest

import mediatools as mt
from replaced_source import SEGMENT_S, decodes_clean, http_get, install, make_versions, track_urls
from serve_process import ServeProcess


@pytest.fixture(scope="module")
def versions(tmp_path_factory):
    folder = tmp_path_factory.mktemp("versions")
    return folder, *make_versions(folder)


def test_replacing_the_source_never_mixes_versions(versions, tmp_path):
    folder, a, b = versions
    media = tmp_path / "media"
    media.mkdir()
    install(a, media / "movie.mp4", 0)
    rules = f"remap:\n  - from: /vod/\n    to: file://{media}/\n    segment_duration_s: {SEGMENT_S}\n"
    with ServeProcess(tmp_path / "serve", rules) as svc:
        base = f"{svc.base_url}/vod/movie.mp4"
        get = http_get
        init_a, segments_a = track_urls(get, base, "v1")
        assert len(segments_a) >= 6 and init_a.split("/")[-2] == segments_a[0].split("/")[-2]
        status, init_headers, init_bytes = get(init_a)
        assert status == 200 and "immutable" in init_headers["cache-control"]
        status, _, seg5_a = get(segments_a[4])
        assert status == 200
        _, manifest_headers, _ = get(f"{base}/master.m3u8")
        assert "immutable" not in manifest_headers["cache-control"]
        assert "max-age=10" in manifest_headers["cache-control"]
        # Same bytes under the unversioned URL (the old URL shape), but with the manifests' lifetime.
        status, plain_headers, plain_init = get(f"{base}/cmaf1/v1/init.mp4")
        assert plain_init == init_bytes and plain_headers["cache-control"] == manifest_headers["cache-control"]

        install(b, media / "movie.mp4", 1)
        for old in (segments_a[5], init_a):
            status, headers, body = get(old)
            assert status == 410, (old, status)
            assert headers["cache-control"] == "no-store" and body.startswith(b"this URL names a version")
        errors, frames = decodes_clean(tmp_path, "a.mp4", [init_bytes, seg5_a])
        assert errors == "" and frames > 0

        init_b, segments_b = track_urls(get, base, "v1")
        assert init_b != init_a and all(new not in segments_a for new in segments_b)
        pieces = [get(url) for url in (init_b, segments_b[4], segments_b[5])]
        assert all(status == 200 for status, _, _ in pieces)
        errors, frames = decodes_clean(tmp_path, "b.mp4", [body for _, _, body in pieces])
        assert errors == "" and frames > 0
        stream = next(s for s in mt.ffprobe_streams(tmp_path / "b.mp4") if s["codec_type"] == "video")
        assert (stream["width"], stream["height"]) == (352, 288)  # B's pictures, not A's
        # The mix the issue saw: A's init with B's segment decodes with errors (so the clean decodes above mean
        # something).
        mixed, _ = decodes_clean(tmp_path, "mixed.mp4", [init_bytes, pieces[2][2]])
        assert mixed != ""
