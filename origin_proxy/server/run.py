"""One serving process: the aiohttp runner, signals, systemd notifications, live reload, graceful drain.

Lifecycle (DESIGN.md §8):
- listening -> `READY=1` (sd_notify), and `WATCHDOG=1` every `$WATCHDOG_USEC`/2 from the event loop, so a
  blocked loop stops the pings and systemd restarts us;
- SIGHUP -> `RELOADING=1`; the remap file, `cache_control` and `default_mode` are read again and swapped in
  together; an invalid file leaves the old rules serving and logs one ERROR line listing every problem;
  `READY=1` either way;
- SIGTERM/SIGINT -> `STOPPING=1`; the listening socket closes, in-flight responses get up to
  `shutdown_timeout_s` to finish (aiohttp's `AppRunner(shutdown_timeout=)`), then the rest are cut and the
  process exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from ..config import AppConfig, ConfigError, load_config
from ..sd_notify import Notifier
from .app import make_app
from .malloc import apply_malloc_settings
from .observe import configure_access_log
from .state import EDGE_STATE

log = logging.getLogger("origin_proxy.server")


def loop_factory(event_loop: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop factory for `service.event_loop` (None: asyncio's default loop).

    "auto" takes uvloop when it can be imported (the optional `speed` extra), else asyncio's loop; "uvloop"
    requires it (raises ConfigError when it is not installed); "asyncio" never uses it.
    """
    if event_loop == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if event_loop == "uvloop":
            raise ConfigError("service.event_loop", ["event_loop: uvloop is not installed "
                                                     "(pip install 'origin-proxy[speed]')"]) from None
        return None
    return uvloop.new_event_loop


def reload_rules(app: web.Application, load: Callable[[], AppConfig]) -> bool:
    """Swap in the live-reloadable rules of `load()`'s config. False (old rules kept) when it is invalid."""
    try:
        config = load()
    except ConfigError as exc:
        log.error("reload failed, keeping the previous rules: %s: %s", exc.source, "; ".join(exc.errors))
        return False
    app[EDGE_STATE].apply_rules(config)
    log.info("reloaded: %d remap rule(s)", len(config.remap.remap))
    return True


async def _watchdog(notifier: Notifier, interval_s: float) -> None:
    while True:
        notifier.notify("WATCHDOG=1")
        await asyncio.sleep(interval_s)


async def serve(config: AppConfig, config_path: Path | None, remap_path: Path | None, *,
                reuse_port: bool = False, announce: bool = True) -> None:
    """Serve `config` until SIGTERM/SIGINT. `announce` prints the listening line on stdout (the worker master
    prints its own); `reuse_port` lets several processes bind the port (SO_REUSEPORT)."""
    notifier = Notifier()
    service = config.service
    log.info("malloc thresholds: %s", apply_malloc_settings(service.malloc) or "C library defaults")
    app = make_app(config)
    runner = web.AppRunner(app, shutdown_timeout=service.shutdown_timeout_s,
                           keepalive_timeout=service.keepalive_timeout_s,
                           **configure_access_log(service.access_log))
    await runner.setup()
    log.info("event loop: %s", type(asyncio.get_running_loop()).__module__)
    watchdog = None
    try:
        site = web.TCPSite(runner, service.listen.host, service.listen.port, reuse_port=reuse_port or None)
        await site.start()
        host, port = runner.addresses[0][:2]
        if announce:
            print(f"origin-proxy listening on http://{host}:{port}", flush=True)
        notifier.notify("READY=1", f"STATUS=serving on http://{host}:{port}")
        if notifier.watchdog_interval_s is not None:
            watchdog = asyncio.create_task(_watchdog(notifier, notifier.watchdog_interval_s))

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)

        def on_hup() -> None:
            notifier.notify("RELOADING=1", "STATUS=reloading")
            reload_rules(app, lambda: load_config(config_path, remap_path))
            notifier.notify("READY=1", f"STATUS=serving on http://{host}:{port}")

        loop.add_signal_handler(signal.SIGHUP, on_hup)
        await stop.wait()
        loop.remove_signal_handler(signal.SIGHUP)
        log.info("stopping: draining in-flight requests (up to %gs)", service.shutdown_timeout_s)
        notifier.notify("STOPPING=1", "STATUS=draining")
    finally:
        await runner.cleanup()
        if watchdog is not None:
            watchdog.cancel()
        notifier.close()
    log.info("stopped (pid %d)", os.getpid())
