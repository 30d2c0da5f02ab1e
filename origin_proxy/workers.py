"""`serve --workers N`: a small master over N serving processes that share one port (SO_REUSEPORT).

The master never serves. It picks the port (holding a bound, non-listening SO_REUSEPORT socket while the
workers start when `port: 0` asks for any free one), creates `$PROMETHEUS_MULTIPROC_DIR` so /metrics sums every
worker, and starts each worker as `origin-proxy serve --worker ...`. Each worker has its own caches and
single-flight.

Workers talk to the master with the sd_notify protocol itself: their `$NOTIFY_SOCKET` is the master's own
datagram socket (abstract name, SO_PASSCRED gives each message's pid). The master tells systemd `READY=1` once
every worker said so; on SIGHUP it sends `RELOADING=1`, forwards the signal and says `READY=1` when every worker
has reloaded; it pings systemd's watchdog only while every worker pings its own; SIGTERM/SIGINT are forwarded
and the master exits when the workers have drained. A worker that dies on its own stops the whole service
(exit 1), so systemd's `Restart=` decides what happens next.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import signal
import socket
import struct
import sys
import tempfile
import time

from .config import AppConfig
from .sd_notify import Notifier

log = logging.getLogger("origin_proxy.workers")

_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def _hold_port(host: str, port: int) -> tuple[int, socket.socket | None]:
    """The port every worker binds; for port 0, a free one reserved by a bound SO_REUSEPORT socket."""
    if port != 0:
        return port, None
    family = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)[0][0]
    holder = socket.socket(family, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind((host, 0))
    return holder.getsockname()[1], holder


class _Master:
    def __init__(self, config: AppConfig, worker_args: list[str], workers: int) -> None:
        self.config = config
        self.worker_args = worker_args
        self.count = workers
        self.notifier = Notifier()
        self.procs: dict[int, asyncio.subprocess.Process] = {}
        self.ready: set[int] = set()
        self.reloading: set[int] = set()
        self.last_ping: dict[int, float] = {}
        self.all_ready = asyncio.Event()
        self.stopping = False
        self.stop = asyncio.Event()
        self.failed = False
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.notify_name = f"@origin-proxy-master-{os.getpid()}-{secrets.token_hex(6)}"
        self.sock.bind(b"\0" + self.notify_name[1:].encode())

    # ------------------------------------------------------------------ messages from workers

    def on_datagram(self) -> None:
        while True:
            try:
                data, ancdata, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(_UCRED.size))
            except BlockingIOError:
                return
            pid = next((_UCRED.unpack_from(d)[0] for level, kind, d in ancdata
                        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS), None)
            if pid not in self.procs:
                continue
            for line in data.decode(errors="replace").splitlines():
                if line == "WATCHDOG=1":
                    self.last_ping[pid] = time.monotonic()
                elif line == "READY=1":
                    self.last_ping[pid] = time.monotonic()
                    self.ready.add(pid)
                    self.reloading.discard(pid)
                    if len(self.ready) == self.count and not self.all_ready.is_set():
                        self.all_ready.set()
                    elif self.all_ready.is_set() and not self.reloading and not self.stopping:
                        self.notifier.notify("READY=1", f"STATUS=serving with {self.count} workers")

    # ------------------------------------------------------------------ signals

    def on_hup(self) -> None:
        if self.stopping:
            return
        self.reloading = set(self.procs)
        self.notifier.notify("RELOADING=1", "STATUS=reloading")
        for proc in self.procs.values():
            proc.send_signal(signal.SIGHUP)

    def on_term(self) -> None:
        self.stop.set()

    # ------------------------------------------------------------------ lifecycle

    async def watchdog(self, interval_s: float) -> None:
        """Ping systemd only while every worker's last ping is recent (two of their intervals)."""
        while True:
            now = time.monotonic()
            if all(now - self.last_ping.get(pid, now) < 2 * interval_s for pid in self.procs):
                self.notifier.notify("WATCHDOG=1")
            await asyncio.sleep(interval_s)

    async def watch(self, pid: int, proc: asyncio.subprocess.Process) -> None:
        code = await proc.wait()
        if not self.stopping:
            log.error("worker %d exited with status %s; stopping the service", pid, code)
            self.failed = True
            self.stop.set()
        elif code != 0:
            self.failed = True

    async def run(self) -> int:
        service = self.config.service
        host = service.listen.host
        port, holder = _hold_port(host, service.listen.port)
        own_metrics_dir = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
        metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="origin-proxy-metrics-")
        env = {**os.environ, "NOTIFY_SOCKET": self.notify_name, "PROMETHEUS_MULTIPROC_DIR": metrics_dir}
        env.pop("WATCHDOG_PID", None)
        # Workers run this very package, wherever it was imported from (not whatever `-m` finds on their path).
        package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")]))
        if self.notifier.watchdog_interval_s is None:
            env.pop("WATCHDOG_USEC", None)
        loop = asyncio.get_running_loop()
        loop.add_reader(self.sock.fileno(), self.on_datagram)
        loop.add_signal_handler(signal.SIGHUP, self.on_hup)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.on_term)
        watchers = []
        watchdog = None
        try:
            for _ in range(self.count):
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "origin_proxy", *self.worker_args, "--port", str(port), env=env)
                self.procs[proc.pid] = proc
                watchers.append(asyncio.create_task(self.watch(proc.pid, proc)))
            ready = asyncio.create_task(self.all_ready.wait())
            stopped = asyncio.create_task(self.stop.wait())
            await asyncio.wait([ready, stopped], return_when=asyncio.FIRST_COMPLETED)
            ready.cancel()
            if self.all_ready.is_set() and not self.stop.is_set():
                if holder is not None:
                    holder.close()
                    holder = None
                print(f"origin-proxy listening on http://{host}:{port} ({self.count} workers)", flush=True)
                self.notifier.notify("READY=1", f"STATUS=serving with {self.count} workers",
                                     f"MAINPID={os.getpid()}")
                if self.notifier.watchdog_interval_s is not None:
                    watchdog = asyncio.create_task(self.watchdog(self.notifier.watchdog_interval_s))
                await stopped
        finally:
            self.stopping = True
            self.notifier.notify("STOPPING=1", "STATUS=draining")
            for proc in self.procs.values():
                if proc.returncode is None:
                    proc.send_signal(signal.SIGTERM)
            done, pending = await asyncio.wait(watchers, timeout=service.shutdown_timeout_s + 10) if watchers \
                else (set(), set())
            for proc in self.procs.values():
                if proc.returncode is None:
                    log.error("worker %d did not stop in time; killing it", proc.pid)
                    proc.kill()
                    await proc.wait()
                    self.failed = True
            if watchdog is not None:
                watchdog.cancel()
            loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self.notifier.close()
            if holder is not None:
                holder.close()
            if own_metrics_dir:
                shutil.rmtree(metrics_dir, ignore_errors=True)
        return 1 if self.failed else 0


def run_master(config: AppConfig, worker_args: list[str], workers: int) -> int:
    """Run `workers` processes of `origin-proxy <worker_args> --port P` until SIGTERM/SIGINT; the exit status."""
    async def main() -> int:
        return await _Master(config, worker_args, workers).run()

    return asyncio.run(main())
