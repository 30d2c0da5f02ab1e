"""An idle keep-alive connection is closed by the server after `keepalive_timeout_s` (a real process)."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time


def test_idle_keepalive_connection_is_closed(tmp_path):
    remap = tmp_path / "remap.yaml"
    remap.write_text(f"remap:\n  - from: /t/\n    to: file://{tmp_path}/\n")
    (tmp_path / "a.txt").write_bytes(b"hello")
    config = tmp_path / "conf.yaml"
    config.write_text("keepalive_timeout_s: 1\naccess_log: off\n")
    server = subprocess.Popen(
        [sys.executable, "-m", "origin_proxy", "serve", "--config", str(config), "--remap", str(remap), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        port = int(re.search(r":(\d+)\s*$", server.stdout.readline()).group(1))
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /t/a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = b""
            while not answer.endswith(b"hello"):
                answer += sock.recv(4096)
            assert answer.startswith(b"HTTP/1.1 200")
            started = time.monotonic()
            assert sock.recv(4096) == b"", "the server closes the idle connection"
            assert time.monotonic() - started < 8
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
