"""config.py and the CLI: valid files load, every error is reported with its place, serve prints its address."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from origin_proxy.__main__ import main
from origin_proxy.config import ConfigError, ServiceConfig, load_config, load_remap, load_service, parse_remap
from serve_process import ServeProcess

REPO_ROOT = Path(__file__).resolve().parents[2]


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_shipped_service_config_is_valid_and_documents_the_defaults():
    assert load_service(REPO_ROOT / "conf" / "origin-proxy.yaml") == ServiceConfig()


def test_remap_file_with_relative_file_target(tmp_path):
    (tmp_path / "demo" / "media").mkdir(parents=True)
    remap = load_remap(write(tmp_path / "remap.yaml", """
remap:
  - from: /vod/
    to: http://127.0.0.1:9000/media/
    cache_control: "public, max-age=60"
  - from: /files/
    to: file:demo/media
    mode: keyframe
"""))
    http_rule, file_rule = remap.remap
    assert (http_rule.prefix, http_rule.host, http_rule.is_local) == ("/vod/", None, False)
    assert http_rule.cache_control == "public, max-age=60"
    assert file_rule.to == f"file://{tmp_path}/demo/media/"
    assert file_rule.mode == "keyframe"
    with pytest.raises(Exception):  # frozen
        file_rule.mode = "exact"


def test_every_error_is_reported_with_its_place(tmp_path):
    path = write(tmp_path / "remap.yaml", """
remap:
  - from: /ok/
    to: http://127.0.0.1/x/
  - from: no-slash/
    to: ftp://host/x/
  - from: /x/
    to: file:missing/
    mode: fast
    colour: blue
  - to: http://h/
""")
    with pytest.raises(ConfigError) as caught:
        load_remap(path)
    assert caught.value.errors == [
        "remap[1].from: must be a path starting with '/' or http://host/prefix/",
        "remap[1].to: must be an http://, https:// or file: URL",
        f"remap[2].to: directory {tmp_path}/missing does not exist",
        "remap[2].mode: Input should be 'exact' or 'keyframe'",
        "remap[2].colour: Extra inputs are not permitted",
        "remap[3].from: Field required",
    ]


def test_service_errors_and_yaml_errors(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_service(write(tmp_path / "s.yaml", "listen: {port: 70000}\ncache: {max_bytes: -1}\nlog_level: LOUD\n"))
    places = [line.split(":")[0] for line in caught.value.errors]
    assert places == ["listen.port", "cache.max_bytes", "log_level"]
    with pytest.raises(ConfigError) as caught:
        load_service(write(tmp_path / "bad.yaml", "listen: [unclosed\n"))
    assert caught.value.errors[0].startswith("not valid YAML")


def test_config_names_its_remap_file(tmp_path):
    write(tmp_path / "remap.yaml", "remap:\n  - from: /a/\n    to: http://127.0.0.1/\n")
    config = load_config(write(tmp_path / "svc.yaml", "remap: remap.yaml\nlisten: {port: 9999}\n"))
    assert config.service.listen.port == 9999
    assert config.remap.remap[0].prefix == "/a/"


def test_check_config_exit_codes(tmp_path, capsys):
    good = write(tmp_path / "good.yaml", "remap:\n  - from: /a/\n    to: http://127.0.0.1/\n")
    bad = write(tmp_path / "bad.yaml", "remap:\n  - from: /a/\n    to: gopher://x/\n")
    assert main(["check-config", "--remap", str(good)]) == 0
    assert main(["check-config", "--remap", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "remap[0].to: must be an http://, https:// or file: URL" in err


def test_serve_prints_address_and_answers(tmp_path):
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "a.bin").write_bytes(b"hello")
    # Only --remap (no --config), run from tmp_path: the relative file: target resolves next to the remap file.
    with ServeProcess(tmp_path, "remap:\n  - from: /f/\n    to: file:media/\n", config=None, cwd=tmp_path,
                      stop_timeout_s=10) as process:
        assert process.listening_line.startswith("origin-proxy listening on http://127.0.0.1:")
        base = process.listening_line.rsplit(" ", 1)[1]
        body = urllib.request.urlopen(base + "/f/a.bin", timeout=5).read()
        assert body == b"hello"
        assert process.stop() == 0  # SIGTERM: a clean exit within 10 s


def test_empty_remap_list_is_said_in_our_words():
    with pytest.raises(ConfigError) as info:
        parse_remap({"remap": []}, ".")
    assert "the list of rules is empty" in str(info.value) and "Tuple should" not in str(info.value)


def test_a_failing_rule_is_not_also_reported_as_an_empty_list(tmp_path):
    with pytest.raises(ConfigError) as info:
        parse_remap({"remap": [{"from": "/a/", "to": "file:missing/"}]}, tmp_path)
    assert "remap[0].to" in str(info.value) and "empty" not in str(info.value) and "Tuple" not in str(info.value)
