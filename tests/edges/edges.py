"""Real CDN edges for the tests in this folder: Apache Traffic Server, Varnish and nginx (Debian's packages, as
scripts/_bootstrap.sh installs them), each started from the configs shipped in docs/edges/ in front of an origin.

The shipped files are used as they are except for ports and paths, which are rewritten textually: the origin
address `127.0.0.1:8080` (ATS, nginx) or Varnish's `.port = "8080"`, the listen port `80`, and nginx's cache
path. Everything else an edge needs to run unprivileged in a temporary directory (ATS's other Debian config
files and run/log/cache directories, varnishd's -n work directory, nginx's main context) is set up here, not in
the shipped files. Each `start_*` returns an Edge whose `stop()` ends the process it started (by its pid).
`missing()` names the package whose binary is absent (the tests then skip, saying so).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED = REPO_ROOT / "docs" / "edges"
BINARIES = {"ats": ("/usr/bin/traffic_server", "trafficserver"), "varnish": ("/usr/sbin/varnishd", "varnish"),
            "nginx": ("/usr/sbin/nginx", "nginx-light")}
START_TIMEOUT_S = 30.0


def missing(kind: str) -> str | None:
    """The Debian package to install when `kind`'s binary is absent, else None."""
    binary, package = BINARIES[kind]
    return None if os.access(binary, os.X_OK) else package


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Edge:
    kind: str
    port: int
    proc: subprocess.Popen
    directory: Path
    log_paths: list[Path] = field(default_factory=list)
    remove_on_stop: Path | None = None  # a directory of ours outside pytest's tmp_path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> str:
        return "\n".join(f"--- {p}\n{p.read_text(errors='replace')[-4000:]}" for p in self.log_paths if p.exists())

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)  # its own session: the edge and the children it forked
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        if self.remove_on_stop is not None:
            shutil.rmtree(self.remove_on_stop, ignore_errors=True)


def _wait_listening(edge: Edge) -> Edge:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if edge.proc.poll() is not None:
            raise RuntimeError(f"{edge.kind} exited with {edge.proc.returncode} before listening\n{edge.logs()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", edge.port), timeout=1):
            return edge
        time.sleep(0.2)
    edge.stop()
    raise RuntimeError(f"{edge.kind} not listening on {edge.port} after {START_TIMEOUT_S} s\n{edge.logs()}")


def _popen(argv: list[str], directory: Path, env: dict | None = None) -> subprocess.Popen:
    out = open(directory / "stdout.log", "wb")
    with out:
        return subprocess.Popen(argv, cwd=directory, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})}, start_new_session=True)


def _chown_tree(path: Path, user: str) -> None:
    shutil.chown(path, user, user)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            shutil.chown(os.path.join(root, name), user, user)


def start_ats(directory: Path, origin_port: int) -> Edge:
    """traffic_server from docs/edges/ats/{records,remap}.config over Debian's other config files, in a runroot
    of its own (config, run, log and a 64 MB cache directory under `directory`, run as the trafficserver user)."""
    port = free_port()
    etc, run, log, cache = (directory / name for name in ("etc", "run", "log", "cache"))
    shutil.copytree("/etc/trafficserver", etc)
    for path in (run, log, cache):
        path.mkdir()
    records = (SHIPPED / "ats" / "records.config").read_text()
    (etc / "records.config").write_text(
        (etc / "records.config").read_text().replace("8080 8080:ipv6", str(port)) + "\n"
        + records.replace("server_ports STRING 80", f"server_ports STRING {port}"))
    (etc / "remap.config").write_text(
        (SHIPPED / "ats" / "remap.config").read_text().replace("127.0.0.1:8080", f"127.0.0.1:{origin_port}"))
    (etc / "storage.config").write_text(f"{cache} 64M\n")
    (directory / "runroot.yaml").write_text("\n".join(f"{key}: {value}" for key, value in {
        "prefix": directory, "exec_prefix": "/usr", "bindir": "/usr/bin", "sbindir": "/usr/sbin",
        "sysconfdir": etc, "datadir": cache, "includedir": "/usr/include", "libdir": "/usr/lib/trafficserver",
        "libexecdir": "/usr/lib/trafficserver/modules", "localstatedir": directory, "runtimedir": run,
        "logdir": log, "cachedir": cache}.items()) + "\n")
    _chown_tree(directory, "trafficserver")
    proc = _popen(["/usr/bin/traffic_server", f"--run-root={directory / 'runroot.yaml'}"], directory)
    return _wait_listening(Edge("ats", port, proc, directory, [directory / "stdout.log", log / "diags.log",
                                                              log / "error.log"]))


def start_varnish(directory: Path, origin_port: int) -> Edge:
    """varnishd -F from docs/edges/varnish/default.vcl, 64 MB of malloc storage, its own -n work directory."""
    port = free_port()
    vcl = directory / "default.vcl"
    vcl.write_text((SHIPPED / "varnish" / "default.vcl").read_text()
                   .replace('.port = "8080";', f'.port = "{origin_port}";'))
    work = directory / "work"
    work.mkdir()
    proc = _popen(["/usr/sbin/varnishd", "-F", "-a", f"127.0.0.1:{port}", "-f", str(vcl), "-n", str(work),
                   "-s", "malloc,64m", "-T", "none", "-p", "default_grace=0"], directory)
    return _wait_listening(Edge("varnish", port, proc, directory, [directory / "stdout.log"]))


def start_nginx(directory: Path, origin_port: int) -> Edge:
    """nginx -g 'daemon off;' with docs/edges/nginx/origin-proxy.conf included in a minimal main context."""
    port = free_port()
    cache = directory / "cache"
    cache.mkdir()
    site = (SHIPPED / "nginx" / "origin-proxy.conf").read_text()
    site = (site.replace("127.0.0.1:8080", f"127.0.0.1:{origin_port}").replace("listen 80;", f"listen 127.0.0.1:{port};")
            .replace("/var/cache/nginx/origin-proxy", str(cache)))
    (directory / "origin-proxy.conf").write_text(site)
    (directory / "nginx.conf").write_text(f"""
user root;
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {directory}/access.log;
    client_body_temp_path {directory}/client_body;
    proxy_temp_path {directory}/proxy_temp;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
    include {directory}/origin-proxy.conf;
}}
""")
    proc = _popen(["/usr/sbin/nginx", "-p", str(directory), "-c", str(directory / "nginx.conf"), "-g", "daemon off;"],
                  directory)
    return _wait_listening(Edge("nginx", port, proc, directory, [directory / "stdout.log", directory / "error.log"]))


STARTERS = {"ats": start_ats, "varnish": start_varnish, "nginx": start_nginx}


def start(kind: str, origin_port: int) -> Edge:
    """Start edge `kind` in front of 127.0.0.1:`origin_port`. ATS and varnishd drop to their own users, which
    cannot enter pytest's private tmp_path, so each edge gets a directory of its own under the system temp
    directory, removed by stop()."""
    directory = Path(tempfile.mkdtemp(prefix=f"origin-proxy-{kind}-"))
    os.chmod(directory, 0o755)
    try:
        edge = STARTERS[kind](directory, origin_port)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    edge.remove_on_stop = directory
    return edge
