"""Imports go one way (DESIGN.md §2): the pure core (isobmff/, rewrite/, plan) never loads aiohttp."""

import subprocess
import sys


def test_pure_core_does_not_import_aiohttp():
    code = (
        "import sys, origin_proxy.isobmff.movie, origin_proxy.rewrite.clip, origin_proxy.rewrite.moov_writer, "
        "origin_proxy.plan; sys.exit(3 if any(m.startswith('aiohttp') for m in sys.modules) else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_only_server_imports_aiohttp_web():
    code = (
        "import sys, origin_proxy.store.moov, origin_proxy.store.cache, origin_proxy.remap, origin_proxy.store.source.upstream; "
        "sys.exit(3 if 'aiohttp.web' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
