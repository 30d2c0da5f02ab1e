"""RemapTable remembers its successful results (remap.py, issue 13: the per-request path): a repeated request gets
the same answer as a fresh table gives, refusals are refused every time, the memory is bounded, and a reloaded
table (a new RemapTable, as SIGHUP makes) answers by its own rules."""

from __future__ import annotations

import pytest

from origin_proxy.config import parse_remap
from origin_proxy.errors import Forbidden, NotFound
from origin_proxy.remap import RemapTable


def _table(tmp_path, to: str) -> RemapTable:
    return RemapTable(parse_remap({"remap": [{"from": "/vod/", "to": to},
                                             {"from": "http://tenant.example/vod/", "to": "http://10.0.0.1/t/"}]},
                                  tmp_path).remap)


def test_repeated_resolves_equal_a_fresh_tables(tmp_path):
    table = _table(tmp_path, "http://127.0.0.1:9000/media/")
    for path, host in (("/vod/a%20b/c.mp4", None), ("/vod/x.mp4", "tenant.example"), ("/vod/x.mp4", "other:80")):
        first, again = table.resolve(path, host), table.resolve(path, host)
        assert again == first == _table(tmp_path, "http://127.0.0.1:9000/media/").resolve(path, host)
    assert table.resolve("/vod/x.mp4", "tenant.example").location == "http://10.0.0.1/t/x.mp4"
    assert table.resolve("/vod/x.mp4", "other:80").location == "http://127.0.0.1:9000/media/x.mp4"


@pytest.mark.parametrize("path, error", [("/vod/%2e%2e/etc/passwd", Forbidden), ("/elsewhere/a.mp4", NotFound)])
def test_refusals_are_refused_every_time(tmp_path, path, error):
    table = _table(tmp_path, "http://127.0.0.1:9000/media/")
    for _ in range(3):
        with pytest.raises(error):
            table.resolve(path)


def test_memory_is_bounded_and_a_new_table_uses_its_own_rules(tmp_path):
    table = _table(tmp_path, "http://127.0.0.1:9000/media/")
    for i in range(5000):
        assert table.resolve(f"/vod/{i}.mp4").location == f"http://127.0.0.1:9000/media/{i}.mp4"
    assert len(table._resolved) <= 4096
    assert table.resolve("/vod/1.mp4").location == "http://127.0.0.1:9000/media/1.mp4"  # evicted, computed again
    reloaded = _table(tmp_path, "http://127.0.0.2:9000/new/")
    assert reloaded.resolve("/vod/1.mp4").location == "http://127.0.0.2:9000/new/1.mp4"
