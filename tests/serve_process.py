"""A real `python -m origin_proxy serve` in a subprocess, for tests that need what only a process has: signals,
sd_notify, several workers on one port, /proc, wrk.

`ServeProcess` writes the remap file (and the service config unless `config=None`) into its own directory, starts
serve with `--port 0` plus the caller's arguments, and is ready once it has printed its listening line on stdout
and a TCP connection to that port is accepted. The kernel picks the port inside serve (the worker master holds it
until its workers listen), so two tests running at once can never be handed the same port. stdout and stderr go
to files in that directory, so a chatty process can never block on a full pipe, and the failure message of a
process that exits or hangs before it listens carries its stderr.

Stopping sends SIGTERM, waits `stop_timeout_s`, then SIGKILLs. The process's descendants (the workers of
`--workers N`) are recorded while it runs; stopping fails the test if any of them is still alive afterwards.

Readiness is a bare TCP connect, never an HTTP request, so request counters, access logs and caches see only what
the test itself sends.

Use it as `with ServeProcess(...) as svc:`, as `async with` (start and stop run in a thread, so the test's event
loop, which may be serving an upstream, keeps running), or through the `serve_process` factory fixture, which
stops every process it started. Linux only: descendants are found through /proc.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
# What a service manager or an outer test run might have set; a test passes the ones it wants in `env`.
INHERITED_ENV_DROPPED = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "PROMETHEUS_MULTIPROC_DIR")
LISTENING = re.compile(r"origin-proxy listening on http://(\S+):(\d+)")
STDERR_TAIL_CHARS = 6000


def remap_yaml(rules: Mapping[str, str | Path] | str) -> str:
    """A remap document, rules in order; a Path target becomes `file://<path>/`, a string is used as it is.
    A str instead of rules is the document's text."""
    if isinstance(rules, str):
        return rules
    entries = [{"from": prefix, "to": f"file://{target}/" if isinstance(target, Path) else target}
               for prefix, target in rules.items()]
    return yaml.safe_dump({"remap": entries}, sort_keys=False)


class ServeProcess:
    """One `origin_proxy serve` process. After start(): pid, host, port, base_url, listening_line,
    stdout_path, stderr_path, remap_path, config_path (None without --config), proc (the Popen)."""

    def __init__(self, directory: Path, rules: Mapping[str, str | Path] | str, *args: str,
                 config: Mapping[str, object] | str | None = MappingProxyType({}),
                 env: Mapping[str, str | None] | None = None, cwd: Path = REPO_ROOT,
                 start_timeout_s: float = 20.0, stop_timeout_s: float = 30.0) -> None:
        """`rules` as for remap_yaml(); `args` follow `--port 0` on the command line (`--workers 2`, `--host ...`);
        `config` is the service YAML as a mapping or as text (None: no --config); in `env`, None removes a variable
        from the inherited environment."""
        self.directory = directory
        self.args = args
        self.cwd = cwd
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        directory.mkdir(parents=True, exist_ok=True)
        self.remap_path = directory / "remap.yaml"
        self.write_remap(rules)
        self.config_path: Path | None = None
        if config is not None:
            self.config_path = directory / "origin-proxy.yaml"
            self.config_path.write_text(config if isinstance(config, str)
                                        else yaml.safe_dump(dict(config), sort_keys=False))
        self.stdout_path = directory / "stdout.log"
        self.stderr_path = directory / "stderr.log"
        self.env = {**os.environ}
        for name in INHERITED_ENV_DROPPED:
            self.env.pop(name, None)
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
        for name, value in (env or {}).items():
            if value is None:
                self.env.pop(name, None)
            else:
                self.env[name] = value
        self.proc: subprocess.Popen | None = None
        self.host = ""
        self.port = 0
        self.listening_line = ""
        self._descendants: dict[int, int] = {}  # pid -> start time in clock ticks (tells a reused pid apart)

    # ------------------------------------------------------------------------------------------------ lifecycle

    def start(self) -> ServeProcess:
        argv = [sys.executable, "-m", "origin_proxy", "serve", "--port", "0", "--remap", str(self.remap_path)]
        argv += ["--config", str(self.config_path)] if self.config_path is not None else []
        with open(self.stdout_path, "wb") as stdout, open(self.stderr_path, "wb") as stderr:
            self.proc = subprocess.Popen([*argv, *self.args], cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                                         stdout=stdout, stderr=stderr)
        try:
            self._wait_until_listening()
        except BaseException:
            with contextlib.suppress(AssertionError):  # leftovers are killed either way; the startup error matters
                self.stop()
            raise
        self._descendants.update(_descendants(self.proc.pid))
        return self

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while "\n" not in self.stdout():
            self._check_alive_before(deadline, "printing its listening line")
            time.sleep(0.02)
        self.listening_line = self.stdout().split("\n", 1)[0]
        match = LISTENING.match(self.listening_line)
        assert match, f"not a listening line: {self.listening_line!r}; stderr:\n{self.stderr_tail()}"
        self.host, self.port = match.group(1), int(match.group(2))
        while True:
            try:
                socket.create_connection((self.connect_host, self.port), timeout=1).close()
                return
            except OSError:
                self._check_alive_before(deadline, f"accepting connections on port {self.port}")
                time.sleep(0.02)

    def _check_alive_before(self, deadline: float, doing: str) -> None:
        code = self.proc.poll()
        if code is not None:
            raise AssertionError(f"origin_proxy serve exited with {code} before {doing}; "
                                 f"stdout: {self.stdout()!r}; stderr:\n{self.stderr_tail()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"origin_proxy serve was not {doing} after {self.start_timeout_s} s; "
                                 f"stdout: {self.stdout()!r}; stderr:\n{self.stderr_tail()}")

    def stop(self) -> int | None:
        """SIGTERM, wait up to stop_timeout_s, SIGKILL if still running; the exit status. Raises AssertionError
        (after SIGKILLing them) when descendants of the process outlive it."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self._descendants.update(_descendants(self.proc.pid))
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        # Give orphans a moment to finish a drain they had already begun.
        deadline = time.monotonic() + 5
        left = _alive(self._descendants)
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = _alive(self._descendants)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert not left, f"processes {sorted(left)} outlived origin_proxy serve {self.proc.pid}"
        return self.proc.returncode

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def __aenter__(self) -> ServeProcess:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.to_thread(self.stop)

    # ------------------------------------------------------------------------------------------------ while it runs

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def connect_host(self) -> str:
        """Where a client connects: loopback when serve listens on every address."""
        return {"0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "::1"}.get(self.host, self.host)

    @property
    def base_url(self) -> str:
        return f"http://{self.connect_host}:{self.port}"

    def write_remap(self, rules: Mapping[str, str | Path] | str) -> None:
        """Replace the remap file (serve reads it again on SIGHUP)."""
        self.remap_path.write_text(remap_yaml(rules))

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout_s: float) -> int:
        return self.proc.wait(timeout=timeout_s)

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """GET on a fresh connection; (status, headers, body)."""
        conn = http.client.HTTPConnection(self.connect_host, self.port, timeout=10)
        try:
            conn.request("GET", path, headers=dict(headers or {}))
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stderr_tail(self) -> str:
        text = self.stderr()
        return text if len(text) <= STDERR_TAIL_CHARS else "..." + text[-STDERR_TAIL_CHARS:]


@pytest.fixture
def serve_process(tmp_path) -> Iterator:
    """Factory: serve_process(rules, *args, **options) -> a started ServeProcess in tmp_path/serve-<n>; every one
    is stopped (and its descendants checked) when the test ends."""
    started: list[ServeProcess] = []

    def start(rules: Mapping[str, str | Path] | str, *args: str, **options) -> ServeProcess:
        svc = ServeProcess(tmp_path / f"serve-{len(started)}", rules, *args, **options)
        started.append(svc)
        return svc.start()

    yield start
    failures = []
    for svc in started:
        try:
            svc.stop()
        except AssertionError as exc:
            failures.append(str(exc))
    assert not failures, failures


# ---------------------------------------------------------------------------------------------------- /proc


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, start time) of a process from /proc/<pid>/stat; None when there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) ", where comm may hold spaces
    return fields[0], int(fields[1]), int(fields[19])


def _descendants(root: int) -> dict[int, int]:
    """Every process below `root`, as pid -> start time."""
    parents: dict[int, list[tuple[int, int]]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None:
                parents.setdefault(stat[1], []).append((int(entry), stat[2]))
    found: dict[int, int] = {}
    todo = [root]
    while todo:
        for pid, started in parents.get(todo.pop(), []):
            if pid not in found:
                found[pid] = started
                todo.append(pid)
    return found


def _alive(processes: Mapping[int, int]) -> list[int]:
    """The pids that still name the same process and have not exited (a zombie has exited)."""
    alive = []
    for pid, started in processes.items():
        stat = _stat(pid)
        if stat is not None and stat[2] == started and stat[0] not in ("Z", "X"):
            alive.append(pid)
    return alive
