"""`origin-proxy serve` as systemd runs it: a real process, real signals, a real sd_notify socket.

Each test starts the CLI in a subprocess with `$NOTIFY_SOCKET` naming a datagram socket the test bound (a path or
an abstract name) and checks what a service manager and a client would see: READY/WATCHDOG/RELOADING/STOPPING
messages, answers before and after SIGHUP, a response that completes across SIGTERM, several workers on one
port, /metrics counters and the JSON access log. The processes are ServeProcess (tests/serve_process.py), stopped
with SIGTERM (SIGKILL if they hang) when the test ends, with no worker left behind.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from serve_process import ServeProcess

REPO_ROOT = Path(__file__).resolve().parents[2]
MEDIA_ROOT = REPO_ROOT.parent / "shared" / "media"
SMALL_FILE = "mp4/bbb_prog_10s.mp4"
SERVICE_CONFIG = "shutdown_timeout_s: 10\naccess_log: json\n"  # a short drain and the JSON access log


class NotifySocket:
    """The service manager's end of sd_notify: a bound AF_UNIX datagram socket that records every message."""

    def __init__(self, address: str | bytes) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.env_value = "@" + address[1:].decode() if isinstance(address, bytes) else address
        self.messages: list[list[str]] = []

    def wait_for(self, line: str, timeout_s: float = 10.0, after: int = 0) -> int:
        """Index of the first message from `after` on holding `line`; waits for new messages up to timeout_s."""
        deadline = time.monotonic() + timeout_s
        while True:
            for index in range(after, len(self.messages)):
                if line in self.messages[index]:
                    return index
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {line!r} in {self.messages[after:]}")
            self.sock.settimeout(remaining)
            try:
                self.messages.append(self.sock.recv(65536).decode().splitlines())
            except TimeoutError:
                pass

    def close(self) -> None:
        self.sock.close()


def metric(svc: ServeProcess, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`, from /metrics."""
    status, _, body = svc.get("/metrics")
    assert status == 200
    total = 0.0
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
    return total


@pytest.fixture(params=["path", "abstract"])
def notify(request, tmp_path):
    address: str | bytes = (str(tmp_path / "notify.sock") if request.param == "path"
                            else b"\0origin-proxy-test-" + os.urandom(6).hex().encode())
    sock = NotifySocket(address)
    yield sock
    sock.close()


@pytest.fixture
def service(notify, serve_process):
    """Factory: service(*serve_args, rules=...) -> serve with $NOTIFY_SOCKET, a short drain and the JSON access
    log; /a/ -> the shared media unless `rules` says otherwise. (serve_process after notify: stopped first.)"""

    def start(*extra: str, rules: dict[str, Path | str] | None = None,
              watchdog_usec: int | None = 200_000) -> ServeProcess:
        env = {"NOTIFY_SOCKET": notify.env_value,
               "WATCHDOG_USEC": str(watchdog_usec) if watchdog_usec is not None else None}
        svc = serve_process(rules or {"/a/": MEDIA_ROOT}, *extra, env=env, config=SERVICE_CONFIG)
        assert svc.listening_line.startswith("origin-proxy listening on http://127.0.0.1:"), svc.listening_line
        return svc

    return start


def test_ready_watchdog_metrics_and_access_log(service, notify):
    svc = service()
    ready = notify.wait_for("READY=1")
    assert any(line.startswith("STATUS=serving on http://127.0.0.1:") for line in notify.messages[ready])
    status, headers, body = svc.get("/a/" + SMALL_FILE)
    assert status == 200 and body == (MEDIA_ROOT / SMALL_FILE).read_bytes()
    # WATCHDOG_USEC=200000 asks for a ping every 0.1 s: several must arrive while the service idles.
    first = notify.wait_for("WATCHDOG=1", after=ready + 1)
    second = notify.wait_for("WATCHDOG=1", after=first + 1)
    notify.wait_for("WATCHDOG=1", after=second + 1)

    before = metric(svc, "origin_proxy_http_requests_total", route="media_passthrough", status="200")
    assert before == 1
    for _ in range(3):
        assert svc.get("/a/" + SMALL_FILE)[0] == 200
    assert svc.get("/a/missing.mp4")[0] == 404
    assert svc.get(f"/a/{SMALL_FILE}?start=2&end=4")[0] == 200
    assert svc.get(f"/a/{SMALL_FILE}?start=2&end=4")[0] == 200
    assert metric(svc, "origin_proxy_http_requests_total", route="media_passthrough", status="200") == before + 3
    assert metric(svc, "origin_proxy_http_requests_total", route="media_passthrough", status="404") == 1
    assert metric(svc, "origin_proxy_http_requests_total", route="media_clip", status="200") == 2
    assert metric(svc, "origin_proxy_http_request_duration_seconds_count", route="media_clip") == 2
    assert metric(svc, "origin_proxy_l1_cache_loads_total") == 1  # the second clip was a cache hit
    assert metric(svc, "origin_proxy_l1_cache_hits_total") == 1
    assert metric(svc, "origin_proxy_http_requests_in_flight") == 1  # the /metrics request itself

    svc.signal(signal.SIGTERM)
    assert svc.wait(15) == 0
    notify.wait_for("STOPPING=1")
    access = [json.loads(line) for line in svc.stderr().splitlines() if line.startswith("{")]
    clips = [entry for entry in access if entry["path"] == f"/a/{SMALL_FILE}?start=2&end=4"]
    assert len(clips) == 2
    assert set(clips[0]) == {"method", "path", "status", "bytes", "duration_ms", "remote"}
    assert (clips[0]["method"], clips[0]["status"], clips[0]["remote"]) == ("GET", 200, "127.0.0.1")
    assert clips[0]["bytes"] > 0 and clips[0]["duration_ms"] >= 0


def test_sighup_reloads_rules_and_keeps_them_on_error(service, notify):
    svc = service()
    notify.wait_for("READY=1")
    assert svc.get("/a/" + SMALL_FILE)[0] == 200
    assert svc.get("/b/" + SMALL_FILE)[0] == 404

    svc.write_remap({"/b/": MEDIA_ROOT})
    mark = len(notify.messages)
    svc.signal(signal.SIGHUP)
    reloading = notify.wait_for("RELOADING=1", after=mark)
    notify.wait_for("READY=1", after=reloading + 1)
    assert svc.get("/b/" + SMALL_FILE)[0] == 200
    assert svc.get("/a/" + SMALL_FILE)[0] == 404

    svc.write_remap("remap:\n  - from: /c/\n    to: file:///no/such/dir/\n  - from: nope\n    to: ftp://x/\n")
    mark = len(notify.messages)
    svc.signal(signal.SIGHUP)
    reloading = notify.wait_for("RELOADING=1", after=mark)
    notify.wait_for("READY=1", after=reloading + 1)
    assert svc.get("/b/" + SMALL_FILE)[0] == 200  # the previous rules still serve
    assert svc.get("/c/" + SMALL_FILE)[0] == 404
    errors = [line for line in svc.stderr().splitlines() if " ERROR " in line]
    assert len(errors) == 1, errors
    assert "reload failed, keeping the previous rules" in errors[0]
    assert "remap[0].to: directory /no/such/dir does not exist" in errors[0]
    assert "remap[1].from:" in errors[0] and "remap[1].to:" in errors[0]
    assert svc.proc.poll() is None


def test_sigterm_lets_a_slow_response_finish(service, notify, tmp_path):
    big = tmp_path / "media" / "big.mp4"
    big.parent.mkdir()
    big.write_bytes(os.urandom(48 * 1024 * 1024))
    svc = service(rules={"/a/": MEDIA_ROOT, "/big/": big.parent})
    notify.wait_for("READY=1")

    client = socket.create_connection(("127.0.0.1", svc.port), timeout=10)
    try:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)  # a slow reader: small window
        client.sendall(b"GET /big/big.mp4 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += client.recv(4096)
        head, _, body = head.partition(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")))
        assert length == big.stat().st_size

        svc.signal(signal.SIGTERM)
        notify.wait_for("STOPPING=1")
        # Listening stopped: a new connection is refused while the old response drains.
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", svc.port), timeout=2).close()
            except ConnectionRefusedError:
                break
            assert time.monotonic() < deadline, "still accepting connections after SIGTERM"
            time.sleep(0.05)
        assert svc.proc.poll() is None  # still draining
        received = len(body)
        while True:
            chunk = client.recv(1024 * 1024)
            if not chunk:
                break
            received += len(chunk)
    finally:
        client.close()
    assert received == length
    assert svc.wait(10) == 0  # shutdown_timeout_s: 10


def test_two_workers_share_one_port(service, notify):
    svc = service("--workers", "2")
    assert "(2 workers)" in svc.listening_line
    ready = notify.wait_for("READY=1")
    assert any(line.startswith("MAINPID=") for line in notify.messages[ready])
    notify.wait_for("WATCHDOG=1", after=ready + 1)  # relayed by the master while both workers ping
    pids: Counter[str] = Counter()
    deadline = time.monotonic() + 20
    while len(pids) < 2 and time.monotonic() < deadline:
        status, headers, _ = svc.get("/healthz")
        assert status == 200
        pids[headers["X-Origin-Proxy-Pid"]] += 1
    assert len(pids) == 2, pids
    assert str(svc.proc.pid) not in pids  # the master does not serve
    assert svc.get("/a/" + SMALL_FILE)[0] == 200
    # Metrics are summed over both workers: every /healthz above is counted once.
    assert metric(svc, "origin_proxy_http_requests_total", route="healthz", status="200") == sum(pids.values())

    svc.write_remap({"/b/": MEDIA_ROOT})
    mark = len(notify.messages)
    svc.signal(signal.SIGHUP)
    reloading = notify.wait_for("RELOADING=1", after=mark)
    notify.wait_for("READY=1", after=reloading + 1)
    for _ in range(10):  # whichever worker answers has the new rules
        assert svc.get("/b/" + SMALL_FILE)[0] == 200

    svc.signal(signal.SIGTERM)
    assert svc.wait(20) == 0
    notify.wait_for("STOPPING=1")
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid), 0)
