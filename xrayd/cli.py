"""`xrayd`: the thin entry point. Parse, load the config, build the Daemon, run, exit."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys
from pathlib import Path

from client import jsonlog
from xrayd import config as config_mod
from xrayd.rpc.dispatch import log_context

EXIT_OK = 0
EXIT_CONFIG = 3
EXIT_START = 4

DEFAULT_CONFIG = Path("/etc/xray-report/xrayd.toml")


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date as YYYY-MM-DD: {value!r}") from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="xrayd", description="The xray-report root daemon.")
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve JSON-RPC on the Unix socket")
    serve.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG, help=f"daemon config (TOML); default {DEFAULT_CONFIG}"
    )
    serve.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    check = sub.add_parser("check-config", help="load a daemon config, print it resolved, exit")
    check.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    collect = sub.add_parser("collect", help="build the daily usage files (what cron runs)")
    collect.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    collect.add_argument("--date", type=_date, help="collect this server-local date (YYYY-MM-DD) again")
    collect.add_argument("--include-today", action="store_true", help="also collect today so far")
    collect.add_argument("--quiet", action="store_true", help="no progress; only warnings and errors")
    demo = sub.add_parser("demo", help="run the whole product in a sandbox folder, no root needed")
    demo.add_argument("--dir", type=Path, default=Path("build/demo"), help="sandbox folder")
    demo.add_argument("--port", type=int, default=8787, help="gateway port on 127.0.0.1")
    for name, what in (
        ("install", "set up the units, accounts and first token; start"),
        ("uninstall", "stop and remove the units; keep the data"),
    ):
        cmd = sub.add_parser(name, help=what)
        cmd.add_argument("--root", type=Path, default=Path("/"), help="install under this folder (tests)")
        cmd.add_argument("--systemctl", type=Path, default=Path("/usr/bin/systemctl"))
        cmd.add_argument("--units-from", type=Path, help="folder of the unit templates (default: systemd/)")
        cmd.add_argument(
            "--bin-dir",
            type=Path,
            default=Path(sys.executable).parent,
            help="where xrayd and xray-gateway are",
        )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    jsonlog.setup(getattr(args, "log_level", "INFO"), context=log_context)
    if args.command == "demo":
        from xrayd.sandbox.demo import run_demo

        return run_demo(args.dir, port=args.port)
    if args.command in ("install", "uninstall"):
        return setup(args)
    try:
        config = config_mod.load(args.config)
    except config_mod.ConfigError as exc:
        print(f"xrayd: config: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "check-config":
        print(config_mod.to_toml(config), end="")
        return EXIT_OK
    if args.command == "collect":
        from xrayd.usage.runs import standalone

        return standalone(config, include_today=args.include_today, only=args.date, quiet=args.quiet)
    return serve(config, args.config)


def setup(args: argparse.Namespace) -> int:
    import subprocess

    from xrayd import install

    command, root = args.command, args.root.resolve()
    if root == Path("/") and os.geteuid() != 0:
        print(f"xrayd {command}: run it as root", file=sys.stderr)
        return EXIT_START
    target = install.Target(
        root=root,
        bin_dir=args.bin_dir.resolve(),
        systemctl=args.systemctl,
        templates=args.units_from or install.TEMPLATES,
    )
    try:
        (install.install if command == "install" else install.uninstall)(target)
    except (subprocess.CalledProcessError, OSError, ValueError) as exc:
        print(f"xrayd {command}: {exc}", file=sys.stderr)
        return EXIT_START
    return EXIT_OK


def serve(config: config_mod.Config, config_file: Path) -> int:
    from xrayd.daemon import Daemon
    from xrayd.rpc.server import SocketInUse

    try:
        asyncio.run(Daemon(config, config_file=config_file.resolve()).run())
    except (SocketInUse, LookupError, ValueError, PermissionError) as exc:
        print(f"xrayd: cannot start: {exc}", file=sys.stderr)
        return EXIT_START
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
