"""Plan slicing and the multipart/byteranges layout the edge builds from it (RFC 9110 §14.6)."""

from __future__ import annotations

import pytest

from origin_proxy.plan import Plan, SourceRange
from origin_proxy.server.http_semantics import multipart_body

SOURCE = bytes(range(256)) * 8  # stands in for the upstream file
PLAN = Plan((b"HEAD", SourceRange(100, 50), b"MID", SourceRange(1000, 20)))


def render(parts) -> bytes:
    return b"".join(p if isinstance(p, bytes) else SOURCE[p.offset : p.offset + p.size] for p in parts)


WHOLE = render(PLAN.parts)


def test_total_bytes():
    assert PLAN.total_bytes == 4 + 50 + 3 + 20 == len(WHOLE)


@pytest.mark.parametrize(("first", "last"), [(0, 76), (0, 0), (2, 5), (4, 53), (53, 57), (76, 76), (10, 60)])
def test_slice_matches_the_rendered_body(first, last):
    parts = PLAN.slice(first, last)
    assert render(parts) == WHOLE[first : last + 1]
    assert all((len(p) if isinstance(p, bytes) else p.size) > 0 for p in parts)


@pytest.mark.parametrize(("first", "last"), [(-1, 3), (5, 4), (0, 77)])
def test_slice_rejects_out_of_body(first, last):
    with pytest.raises(ValueError):
        PLAN.slice(first, last)


def test_multipart_length_is_exact_and_parts_carry_their_ranges():
    body = multipart_body(PLAN, [(0, 9), (70, 76)], "BOUNDARY")
    rendered = render(body.parts)
    assert body.total_bytes == len(rendered)
    assert body.content_type == "multipart/byteranges; boundary=BOUNDARY"
    expected = (
        b"--BOUNDARY\r\nContent-Type: video/mp4\r\nContent-Range: bytes 0-9/77\r\n\r\n" + WHOLE[:10]
        + b"\r\n--BOUNDARY\r\nContent-Type: video/mp4\r\nContent-Range: bytes 70-76/77\r\n\r\n" + WHOLE[70:]
        + b"\r\n--BOUNDARY--\r\n"
    )
    assert rendered == expected
