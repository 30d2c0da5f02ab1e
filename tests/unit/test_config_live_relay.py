"""The `live:` and `relay:` blocks of a remap rule: exactly one target per rule, tokens from files, paths resolved."""

from __future__ import annotations

import pytest

from origin_proxy.config import ConfigError, parse_remap


def test_a_rule_has_exactly_one_of_to_live_relay(tmp_path):
    with pytest.raises(ConfigError, match=r"remap\[0\]: a rule needs exactly one of 'to', 'live' or 'relay' \(has to, live\)"):
        parse_remap({"remap": [{"from": "/x/", "to": f"file:{tmp_path}/", "live": {"storage": "s"}}]}, tmp_path)
    with pytest.raises(ConfigError, match="exactly one of"):
        parse_remap({"remap": [{"from": "/x/"}]}, tmp_path)


def test_live_storage_and_token_file_resolve_against_the_remap_file(tmp_path):
    (tmp_path / "token").write_text("s3cret\nignored\n")
    remap = parse_remap({"remap": [{"from": "/live/", "live": {"storage": "live", "ingest_token_file": "token",
                                                                "dvr_window_s": 60}}]}, tmp_path)
    live = remap.remap[0].live
    assert remap.remap[0].kind == "live" and remap.remap[0].to is None
    assert live.storage == str(tmp_path / "live") and live.ingest_token == "s3cret" and live.dvr_window_s == 60
    assert live.create_on_ingest is True and live.archive is True and live.archive_segment_s == 3600


def test_bad_live_and_relay_values_are_reported_with_their_place(tmp_path):
    with pytest.raises(ConfigError, match="cannot read token file"):
        parse_remap({"remap": [{"from": "/l/", "live": {"storage": "/tmp", "ingest_token_file": "missing"}}]}, tmp_path)
    with pytest.raises(ConfigError, match=r"remap\[0\]\.relay\.feeds"):
        parse_remap({"remap": [{"from": "/r/", "relay": {"feeds": {"cam": "ftp://x/y.mkv"}}}]}, tmp_path)
    with pytest.raises(ConfigError, match="viewer_max_lag_s"):
        parse_remap({"remap": [{"from": "/r/", "relay": {"viewer_buffer_s": 30, "viewer_max_lag_s": 10}}]}, tmp_path)
    with pytest.raises(ConfigError, match="not both"):
        parse_remap({"remap": [{"from": "/r/", "relay": {"publish_token": "a", "publish_token_file": "b"}}]}, tmp_path)


def test_relay_rule_defaults(tmp_path):
    relay = parse_remap({"remap": [{"from": "/relay/", "relay": {"publish_token": "t"}}]}, tmp_path).remap[0].relay
    assert (relay.backlog_gops, relay.viewer_buffer_s, relay.viewer_max_lag_s, relay.low_latency, relay.feeds) == \
        (2, 10.0, 60.0, False, {})
