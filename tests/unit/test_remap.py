"""remap.py: ATS map semantics (longest prefix, host rules) and path hygiene, without a server."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from origin_proxy.config import parse_remap
from origin_proxy.errors import BadRequest, Forbidden, NotFound
from origin_proxy.remap import RemapTable


@pytest.fixture
def table(tmp_path):
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "deep").mkdir()
    config = parse_remap({"remap": [
        {"from": "/vod/", "to": "http://127.0.0.1:9000/media/"},
        {"from": "/vod/special/", "to": "https://cdn.example/other/"},
        {"from": "http://tenant.example/vod/", "to": "http://10.0.0.1/tenant/"},
        {"from": "/files/", "to": "file:media/"},
        {"from": "/exact", "to": "http://127.0.0.1:9000/one"},
    ]}, tmp_path)
    return RemapTable(config.remap), tmp_path


def test_longest_prefix_wins_and_rest_is_appended(table):
    remap, _ = table
    assert remap.resolve("/vod/a/b.mp4").location == "http://127.0.0.1:9000/media/a/b.mp4"
    assert remap.resolve("/vod/special/x.mp4").location == "https://cdn.example/other/x.mp4"


def test_host_rule_needs_its_host(table):
    remap, _ = table
    assert remap.resolve("/vod/x.mp4", "Tenant.Example").location == "http://10.0.0.1/tenant/x.mp4"
    assert remap.resolve("/vod/x.mp4", "other.example").location == "http://127.0.0.1:9000/media/x.mp4"


def test_file_rule_resolves_relative_to_the_remap_file(table):
    remap, base = table
    ref = remap.resolve("/files/deep/a%20b.mp4")
    assert ref.is_local
    assert ref.location == str(base / "media" / "deep" / "a b.mp4")
    assert ref.identity == "file://" + ref.location
    assert ref.rule.root_dir == str(base / "media")


def test_prefix_without_slash_matches_whole_segments_only(table):
    remap, _ = table
    assert remap.resolve("/exact").location == "http://127.0.0.1:9000/one"
    assert remap.resolve("/exact/x").location == "http://127.0.0.1:9000/one/x"
    with pytest.raises(NotFound):
        remap.resolve("/exactly")


def test_no_rule_is_not_found(table):
    remap, _ = table
    with pytest.raises(NotFound):
        remap.resolve("/nothing/here.mp4")


@pytest.mark.parametrize("raw", [
    "/files/../x", "/files/a/../../x", "/files/%2e%2e/x", "/files/%2E./x", "/files/%252e%252e/x",
    "/files/a%2fb", "/files/a%2Fb", "/files/a%5cb", "/files/a\\b", "/files/a%00b", "/files/a\x00b",
    "/files/./x", "/files/%25%32%65%25%32%65/x", "/vod/%0d%0aHost:evil/x", "relative/x",
])
def test_traversal_shapes_are_forbidden(table, raw):
    remap, _ = table
    with pytest.raises(Forbidden):
        remap.resolve(raw)


def test_non_utf8_path_is_bad_request(table):
    remap, _ = table
    with pytest.raises(BadRequest):
        remap.resolve("/files/%ff.mp4")


@pytest.mark.parametrize("raw", ["/vod/%3Fstart=1", "/vod/a%23b", "/vod//evil.example/x", "/vod/http:%40evil/x",
                                 "/vod/a%20b?c", "/vod/@evil.example/x"])
def test_http_target_keeps_scheme_host_and_prefix(table, raw):
    remap, _ = table
    url = urlsplit(remap.resolve(raw).location)
    assert (url.scheme, url.netloc) == ("http", "127.0.0.1:9000")
    assert url.path.startswith("/media/")
    assert url.query == "" and url.fragment == ""


def test_special_characters_are_quoted_for_upstream(table):
    remap, _ = table
    assert remap.resolve("/vod/a%20b%3F.mp4").location == "http://127.0.0.1:9000/media/a%20b%3F.mp4"
