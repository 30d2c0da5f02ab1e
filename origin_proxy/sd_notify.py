"""systemd's readiness protocol, sd_notify(3): newline-separated `KEY=VALUE` lines in one AF_UNIX datagram.

The socket is named by `$NOTIFY_SOCKET`: a filesystem path, or an abstract name written `@name` (sent as a
leading NUL). Without `$NOTIFY_SOCKET` every call does nothing, so `serve` behaves the same outside systemd.
The watchdog interval comes from `$WATCHDOG_USEC` and only applies to this process when `$WATCHDOG_PID` is
unset or names it (sd_watchdog_enabled(3)). A failed send is ignored: readiness is advisory, never fatal.
No aiohttp import; the worker master (workers.py) uses it too.
"""

from __future__ import annotations

import os
import socket


def socket_address(name: str) -> str | bytes:
    """The address to `sendto` for a `$NOTIFY_SOCKET` value: `@name` is the abstract socket `\\0name`."""
    if name.startswith("@"):
        return b"\0" + name[1:].encode()
    return name


class Notifier:
    """Sends state lines to the service manager. `enabled` is False when `$NOTIFY_SOCKET` is unset."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        name = environ.get("NOTIFY_SOCKET", "")
        self._address = socket_address(name) if name else None
        self._sock: socket.socket | None = None
        if self._address is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.watchdog_interval_s = _watchdog_interval_s(environ)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def notify(self, *lines: str) -> bool:
        """Send `lines` (e.g. "READY=1", "STATUS=serving") as one datagram. True when it was sent."""
        if self._sock is None:
            return False
        try:
            self._sock.sendto("\n".join(lines).encode() + b"\n", self._address)
        except OSError:
            return False
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _watchdog_interval_s(environ: dict[str, str]) -> float | None:
    """Half the watchdog timeout in seconds, as sd_watchdog_enabled(3) advises; None when no watchdog is
    asked of this process."""
    usec = environ.get("WATCHDOG_USEC", "")
    pid = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None
    return int(usec) / 2 / 1_000_000
