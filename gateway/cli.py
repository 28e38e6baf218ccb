"""`xray-gateway`: serve the REST API for one xrayd socket.

It listens on 127.0.0.1 unless told otherwise, and refuses any other address unless it
speaks TLS itself (`--tls-cert`, `--tls-key`) or a reverse proxy in front terminates TLS
(`--proxy-terminates-tls`): credentials never cross a network in plain text by default.
"""

from __future__ import annotations

import argparse
import ipaddress
import ssl
import sys
from pathlib import Path

from aiohttp import web

from client import DEFAULT_SOCKET, jsonlog
from gateway.access_log import JsonAccessLogger
from gateway.app import create_app
from gateway.headers import log_context
from gateway.keys import Options

EXIT_OK, EXIT_USAGE, EXIT_CONFIG = 0, 2, 3


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name could resolve anywhere


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="xray-gateway", description="The xray-report REST gateway.")
    p.add_argument("--socket", default=DEFAULT_SOCKET, help="xrayd's socket (default %(default)s)")
    p.add_argument(
        "--listen",
        type=parse_listen,
        default=("127.0.0.1", 8787),
        help="HOST:PORT to listen on (default 127.0.0.1:8787; other than loopback needs TLS)",
    )
    p.add_argument("--token-file", type=Path, help="file whose content is an admin bearer token")
    p.add_argument("--tls-cert", type=Path, help="serve HTTPS with this certificate chain (PEM)")
    p.add_argument("--tls-key", type=Path, help="the private key of --tls-cert (PEM)")
    p.add_argument(
        "--proxy-terminates-tls",
        action="store_true",
        help="a reverse proxy in front serves HTTPS: mark cookies Secure, trust its X-Forwarded-For",
    )
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    jsonlog.setup(args.log_level, context=log_context)
    host, port = args.listen
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    if not is_loopback(host) and not (args.tls_cert or args.proxy_terminates_tls):
        print(
            f"xray-gateway: refusing to listen on {host} without TLS: give --tls-cert and --tls-key, "
            "or --proxy-terminates-tls when a reverse proxy serves HTTPS in front",
            file=sys.stderr,
        )
        return EXIT_USAGE
    token = None
    if args.token_file is not None:
        try:
            token = args.token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            print(f"xray-gateway: cannot read the token file: {exc.strerror}", file=sys.stderr)
            return EXIT_CONFIG
        if not token:
            print(f"xray-gateway: the token file {args.token_file} is empty", file=sys.stderr)
            return EXIT_CONFIG
    context = None
    if args.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(args.tls_cert, args.tls_key)
        except (OSError, ssl.SSLError) as exc:
            print(f"xray-gateway: cannot load the TLS certificate: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    options = Options(
        https=bool(args.tls_cert or args.proxy_terminates_tls), behind_proxy=args.proxy_terminates_tls
    )
    web.run_app(
        create_app(args.socket, token, options=options),
        host=host,
        port=port,
        ssl_context=context,
        print=None,
        access_log_class=JsonAccessLogger,
    )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
