"""`xray-gateway`: serve the REST API for one xrayd socket."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from aiohttp import web

from client import DEFAULT_SOCKET
from gateway.app import create_app

EXIT_OK, EXIT_CONFIG = 0, 3


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="xray-gateway", description="The xray-report REST gateway.")
    p.add_argument("--socket", default=DEFAULT_SOCKET, help="xrayd's socket (default %(default)s)")
    p.add_argument(
        "--listen",
        type=parse_listen,
        default=("127.0.0.1", 8787),
        help="HOST:PORT to listen on (default 127.0.0.1:8787)",
    )
    p.add_argument("--token-file", type=Path, required=True, help="file whose content is the bearer token")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        token = args.token_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        print(f"xray-gateway: cannot read the token file: {exc.strerror}", file=sys.stderr)
        return EXIT_CONFIG
    if not token:
        print(f"xray-gateway: the token file {args.token_file} is empty", file=sys.stderr)
        return EXIT_CONFIG
    host, port = args.listen
    web.run_app(
        create_app(args.socket, token),
        host=host,
        port=port,
        print=None,
        access_log_format='%a "%r" %s %b %Tfs',
    )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
