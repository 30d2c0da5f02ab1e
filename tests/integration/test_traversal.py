"""Nothing outside a file: root is ever served, whatever the request path looks like (raw bytes on the wire)."""

from __future__ import annotations

import os

import pytest

from conftest import raw_get

SECRET = b"TOP-SECRET-" + os.urandom(16).hex().encode()


@pytest.fixture
async def jail(edge_client, tmp_path):
    """root/ is served under /files/; outside/secret.bin lies next to it; root holds symlinks pointing out."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.bin").write_bytes(SECRET)
    (root / "inside.bin").write_bytes(b"inside")
    (root / "escape.bin").symlink_to(outside / "secret.bin")
    (root / "escape_dir").symlink_to(outside)
    (root / "ok_link.bin").symlink_to(root / "inside.bin")
    client = await edge_client([{"from": "/files/", "to": f"file://{root}/"}])
    return client


@pytest.mark.parametrize(
    "target",
    [
        "/files/../outside/secret.bin",
        "/files/%2e%2e/outside/secret.bin",
        "/files/%2E%2E/outside/secret.bin",
        "/files/.%2e/outside/secret.bin",
        "/files/%252e%252e/outside/secret.bin",
        "/files/%25252e%25252e/outside/secret.bin",
        "/files/..%2foutside%2fsecret.bin",
        "/files/..%5coutside%5csecret.bin",
        "/files/..\\outside\\secret.bin",
        "/files/./../outside/secret.bin",
        "/files/inside.bin%00/../../outside/secret.bin",
        "/files/%00",
        "/files/escape.bin",
        "/files/escape_dir/secret.bin",
        "/files//../outside/secret.bin",
    ],
)
async def test_traversal_never_serves_outside(jail, target):
    status, body = await raw_get(jail.port, target)
    assert status in (400, 403, 404), (target, status)
    assert SECRET not in body


async def test_inside_files_and_inside_symlinks_are_served(jail):
    assert await raw_get(jail.port, "/files/inside.bin") == (200, b"inside")
    assert await raw_get(jail.port, "/files/ok_link.bin") == (200, b"inside")
