"""An idle keep-alive connection is closed by the server after `keepalive_timeout_s` (a real process)."""

from __future__ import annotations

import socket
import time


def test_idle_keepalive_connection_is_closed(tmp_path, serve_process):
    (tmp_path / "a.txt").write_bytes(b"hello")
    server = serve_process({"/t/": tmp_path}, config="keepalive_timeout_s: 1\naccess_log: off\n")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /t/a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while not answer.endswith(b"hello"):
            answer += sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert sock.recv(4096) == b"", "the server closes the idle connection"
        assert time.monotonic() - started < 8
