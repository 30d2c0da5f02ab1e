"""Command line: `origin-proxy serve` and `origin-proxy check-config` (DESIGN.md §8).

    origin-proxy serve [--config conf/origin-proxy.yaml] [--remap remap.yaml] [--host H] [--port P]
    origin-proxy check-config [--config ...] [--remap ...]

A bad config exits with status 2 and prints every problem with its place in the file (`remap[1].to: ...`).
`--host`/`--port` override the config's `listen:`; `--port 0` picks a free port. Once listening, serve prints
`origin-proxy listening on http://HOST:PORT` on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from .config import AppConfig, ConfigError, load_config

DEFAULT_CONFIG = Path("conf/origin-proxy.yaml")


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="origin-proxy", description="Streaming-media origin and caching proxy.")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("serve", "run the HTTP server"), ("check-config", "validate the config and exit")):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--config", type=Path, default=None,
                             help=f"service config YAML (default: {DEFAULT_CONFIG} when it exists)")
        command.add_argument("--remap", type=Path, default=None, help="remap YAML (overrides the config's remap:)")
        if name == "serve":
            command.add_argument("--host", default=None, help="listen address (overrides listen.host)")
            command.add_argument("--port", type=int, default=None, help="listen port (overrides listen.port)")
    return parser.parse_args(argv)


def _load(args: argparse.Namespace) -> AppConfig:
    config_path = args.config
    if config_path is None and DEFAULT_CONFIG.exists():
        config_path = DEFAULT_CONFIG
    config = load_config(config_path, args.remap)
    listen_overrides = {key: value for key, value in (("host", getattr(args, "host", None)),
                                                      ("port", getattr(args, "port", None))) if value is not None}
    if listen_overrides:
        listen = config.service.listen.model_copy(update=listen_overrides)
        config = config.model_copy(update={"service": config.service.model_copy(update={"listen": listen})})
    return config


async def _serve(config: AppConfig) -> None:
    from aiohttp import web  # keep check-config free of the server import

    from .server.app import make_app

    runner = web.AppRunner(make_app(config))  # access log: one line per request on the aiohttp.access logger
    await runner.setup()
    site = web.TCPSite(runner, config.service.listen.host, config.service.listen.port)
    await site.start()
    host, port = runner.addresses[0][:2]
    print(f"origin-proxy listening on http://{host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    try:
        config = _load(args)
    except ConfigError as exc:
        print(f"origin-proxy: invalid configuration in {exc.source}:", file=sys.stderr)
        for line in exc.errors:
            print(f"  {line}", file=sys.stderr)
        return 2
    logging.basicConfig(level=config.service.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "check-config":
        rules = len(config.remap.remap)
        print(f"configuration OK: {rules} remap rule{'s' if rules != 1 else ''}")
        return 0
    asyncio.run(_serve(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
