"""Command line: `origin-proxy serve` and `origin-proxy check-config` (DESIGN.md §8).

    origin-proxy serve [--config conf/origin-proxy.yaml] [--remap remap.yaml] [--host H] [--port P]
    origin-proxy check-config [--config ...] [--remap ...]
    origin-proxy relay INPUT [--port 8080] [--name NAME] [--loop]   (file, - for stdin, or http(s) URL)

A bad config exits with status 2 and prints every problem with its place in the file (`remap[1].to: ...`).
`--host`/`--port` override the config's `listen:`; `--port 0` picks a free port. Once listening, serve prints
`origin-proxy listening on http://HOST:PORT` on stdout.

Operations: SIGHUP reloads the remap rules, SIGTERM/SIGINT drain and exit 0, `$NOTIFY_SOCKET` gets systemd's
READY/RELOADING/STOPPING/WATCHDOG messages (server/run.py); `--workers N` runs N processes on one port under
a master (workers.py).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
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
            command.add_argument("--workers", type=int, default=None,
                                 help="serving processes sharing the port (overrides service.workers)")
            command.add_argument("--event-loop", choices=("auto", "asyncio", "uvloop"), default=None,
                                 help="event loop (overrides service.event_loop; auto = uvloop when installed)")
            command.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # started by the master
    relay = commands.add_parser("relay", help="relay one Matroska feed (file, '-' for stdin, http(s) URL) to viewers")
    relay.add_argument("input", metavar="INPUT")
    relay.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    relay.add_argument("--port", type=int, default=8080, help="listen port (default 8080; 0 picks one)")
    relay.add_argument("--name", default="live", help="feed name: viewers GET /relay/NAME.mkv (default live)")
    relay.add_argument("--loop", action="store_true", help="send a file input again and again")
    relay.add_argument("--backlog-gops", type=int, default=2, help="GOPs a new viewer gets first (default 2)")
    relay.add_argument("--low-latency", action="store_true", help="forward each cluster as it arrives")
    inspect = commands.add_parser("inspect", help="describe an MP4 file or http(s) URL (moov, tracks, codecs)")
    inspect.add_argument("target", metavar="FILE_OR_URL")
    inspect.add_argument("--json", action="store_true", help="machine-readable output")
    return parser.parse_args(argv)


def _config_path(args: argparse.Namespace) -> Path | None:
    if args.config is None and DEFAULT_CONFIG.exists():
        return DEFAULT_CONFIG
    return args.config


def _load(args: argparse.Namespace) -> AppConfig:
    config = load_config(_config_path(args), args.remap)
    listen_overrides = {key: value for key, value in (("host", getattr(args, "host", None)),
                                                      ("port", getattr(args, "port", None))) if value is not None}
    if listen_overrides:
        listen = config.service.listen.model_copy(update=listen_overrides)
        config = config.model_copy(update={"service": config.service.model_copy(update={"listen": listen})})
    if getattr(args, "event_loop", None) is not None:
        service = config.service.model_copy(update={"event_loop": args.event_loop})
        config = config.model_copy(update={"service": service})
    return config


def _serve(args: argparse.Namespace, config: AppConfig) -> int:
    workers = 1 if args.worker else (args.workers or config.service.workers)
    config_path = _config_path(args)
    config_path = config_path.resolve() if config_path is not None else None
    remap_path = args.remap.resolve() if args.remap is not None else None
    if workers > 1:
        from .workers import run_master

        worker_args = ["serve", "--worker", "--host", config.service.listen.host,
                       "--event-loop", config.service.event_loop]
        worker_args += ["--config", str(config_path)] if config_path is not None else []
        worker_args += ["--remap", str(remap_path)] if remap_path is not None else []
        return run_master(config, worker_args, workers)

    from .server.run import loop_factory, serve  # keep check-config free of the server import

    try:
        factory = loop_factory(config.service.event_loop)
    except ConfigError as exc:
        print(f"origin-proxy: {exc.errors[0]}", file=sys.stderr)
        return 2
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve(config, config_path, remap_path, reuse_port=args.worker, announce=not args.worker))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    if args.command == "inspect":  # needs no config
        from .inspect_file import run_inspect

        return run_inspect(args.target, args.json)
    if args.command == "relay":  # needs no config (server/relay_cli.py)
        from .server.relay_cli import run_relay

        logging.basicConfig(level="INFO", stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        return asyncio.run(run_relay(args.input, args.name, args.host, args.port, args.loop, args.backlog_gops,
                                     args.low_latency))
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
    return _serve(args, config)


if __name__ == "__main__":
    sys.exit(main())
