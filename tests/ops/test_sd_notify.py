"""sd_notify.py: the watchdog applies only to the process WATCHDOG_PID names; datagrams reach both socket kinds."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from origin_proxy.sd_notify import Notifier


def test_watchdog_interval_is_half_the_timeout_and_only_for_our_pid():
    assert Notifier({"WATCHDOG_USEC": "30000000"}).watchdog_interval_s == 15.0
    assert Notifier({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid())}).watchdog_interval_s == 0.1
    assert Notifier({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid() + 1)}).watchdog_interval_s is None
    assert Notifier({"WATCHDOG_USEC": "0"}).watchdog_interval_s is None
    assert Notifier({}).watchdog_interval_s is None


def test_without_notify_socket_nothing_is_sent():
    notifier = Notifier({})
    assert not notifier.enabled and notifier.notify("READY=1") is False


def test_abstract_and_path_sockets_receive_one_datagram(tmp_path):
    for address in (b"\0op-unit-" + os.urandom(4).hex().encode(), str(tmp_path / "n.sock")):
        receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        receiver.bind(address)
        receiver.settimeout(5)
        name = "@" + address[1:].decode() if isinstance(address, bytes) else address
        notifier = Notifier({"NOTIFY_SOCKET": name})
        try:
            assert notifier.notify("READY=1", "STATUS=ok")
            assert receiver.recv(4096) == b"READY=1\nSTATUS=ok\n"
        finally:
            notifier.close()
            receiver.close()


def test_metrics_module_does_not_import_aiohttp():
    code = "import sys, origin_proxy.metrics, origin_proxy.sd_notify; sys.exit('aiohttp' in sys.modules)"
    repo_root = Path(__file__).resolve().parents[2]
    assert subprocess.run([sys.executable, "-c", code], cwd=repo_root, timeout=60).returncode == 0
