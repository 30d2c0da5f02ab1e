"""Range parsing (RFC 9110 §14.1-14.2) and conditional evaluation (§13) as pure functions."""

from __future__ import annotations

import pytest

from origin_proxy.errors import RangeNotSatisfiable
from origin_proxy.server.http_semantics import (
    MAX_RANGES,
    http_date,
    if_range_allows,
    not_modified,
    parse_range,
    strong_etag,
)


@pytest.mark.parametrize(("header", "expected"), [
    ("bytes=0-99", [(0, 99)]),
    ("bytes=-100", [(900, 999)]),
    ("bytes=-5000", [(0, 999)]),
    ("bytes=100-", [(100, 999)]),
    ("bytes=990-5000", [(990, 999)]),
    ("BYTES = 1-2 ,, 5-6", [(1, 2), (5, 6)]),
    ("bytes=500-, 0-0", [(500, 999), (0, 0)]),
    ("bytes=0-0, 2000-", [(0, 0)]),  # the unsatisfiable one is dropped
])
def test_parse_range(header, expected):
    assert parse_range(header, 1000) == expected


@pytest.mark.parametrize("header", [None, "bytes", "bytes=", "bytes=a-b", "bytes=5-1", "pages=1-2", "bytes=1-2-3",
                                    "bytes=" + ",".join(["0-1"] * (MAX_RANGES + 1))])
def test_parse_range_ignored(header):
    assert parse_range(header, 1000) is None


@pytest.mark.parametrize(("header", "length"), [("bytes=1000-", 1000), ("bytes=-0", 1000), ("bytes=0-", 0),
                                                ("bytes=-10", 0)])
def test_parse_range_unsatisfiable(header, length):
    with pytest.raises(RangeNotSatisfiable) as caught:
        parse_range(header, length)
    assert caught.value.complete_length == length


ETAG = strong_etag("file:///a.mp4", "1-2", "")
MTIME = 1_700_000_000.4


def test_etag_depends_on_validator_and_variant():
    assert ETAG != strong_etag("file:///a.mp4", "1-3", "")
    assert ETAG != strong_etag("file:///a.mp4", "1-2", "start=1&mode=exact")
    assert ETAG == strong_etag("file:///a.mp4", "1-2", "")


@pytest.mark.parametrize(("headers", "expected"), [
    ({}, False),
    ({"If-None-Match": ETAG}, True),
    ({"If-None-Match": f'"x", W/{ETAG}'}, True),
    ({"If-None-Match": "*"}, True),
    ({"If-None-Match": '"x"'}, False),
    ({"If-Modified-Since": http_date(MTIME)}, True),
    ({"If-Modified-Since": http_date(MTIME + 10)}, True),
    ({"If-Modified-Since": http_date(MTIME - 10)}, False),
    ({"If-Modified-Since": "garbage"}, False),
    ({"If-None-Match": '"x"', "If-Modified-Since": http_date(MTIME)}, False),
])
def test_not_modified(headers, expected):
    assert not_modified(headers, ETAG, MTIME) is expected


@pytest.mark.parametrize(("value", "expected"), [
    (None, True), (ETAG, True), (f"W/{ETAG}", False), ('"other"', False),
    (http_date(MTIME), True), (http_date(MTIME - 5), False), ("not a date", False),
])
def test_if_range(value, expected):
    headers = {} if value is None else {"If-Range": value}
    assert if_range_allows(headers, ETAG, MTIME) is expected
