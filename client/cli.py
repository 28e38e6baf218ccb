"""`xrayctl`: call xrayd from a shell.

    xrayctl [--socket PATH] [--output json|table] call METHOD [key=value ...]
    xrayctl [--socket PATH] MODULE ACTION [key=value | --key value | --flag ...]

`xrayctl users list` calls `users.list`; `--include-today` means include_today=true. A value
that parses as JSON is sent as JSON (numbers, true, lists), anything else as a string.

    xrayctl tokens create NAME [--scope read|admin]    (prints the token once)
    xrayctl tokens list | xrayctl tokens revoke NAME
    xrayctl admin set-password                         (asks for it; never on the command line)
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from typing import Any

from client import DEFAULT_SOCKET
from client.protocol import CallTimeout, DaemonUnavailable, RpcError
from client.sync import SyncXraydClient

EXIT_OK, EXIT_RPC_ERROR, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3
POSITIONAL = {"tokens.create": "name", "tokens.revoke": "name"}  # `xrayctl tokens revoke ci`
SECRET = {"admin.set_password": "password"}  # asked for, so it stays out of ps and shell history


def ask_secret(name: str) -> str:
    """Read a secret: twice from a terminal (without echo), else one line of stdin."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass(f"{name}: ")
    if getpass.getpass(f"{name} again: ") != first:
        raise ValueError(f"the two {name}s differ")
    return first


def parse_params(tokens: list[str]) -> dict[str, Any]:
    """`key=value`, `--key value`, `--key=value` and bare `--flag` into named params."""
    params: dict[str, Any] = {}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.startswith("--"):
            key, eq, raw = tok[2:].partition("=")
            if not eq:
                if i + 1 < len(tokens) and not tokens[i + 1].startswith("--") and "=" not in tokens[i + 1]:
                    raw, i = tokens[i + 1], i + 1
                else:
                    raw = "true"
        elif "=" in tok:
            key, _, raw = tok.partition("=")
        else:
            raise ValueError(f"expected key=value or --key value, got {tok!r}")
        if not key:
            raise ValueError(f"empty parameter name in {tok!r}")
        params[key.replace("-", "_")] = _value(raw)
        i += 1
    return params


def _value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def render_table(result: Any) -> str:
    """A list of objects as aligned columns; anything else as `key: value` lines."""
    rows = None
    if isinstance(result, list):
        rows = result
    elif isinstance(result, dict):
        lists = [v for v in result.values() if isinstance(v, list)]
        if len(lists) == 1:
            rows = lists[0]
    if rows is not None and all(isinstance(r, dict) for r in rows):
        if not rows:
            return "(none)"
        cols = list(dict.fromkeys(k for r in rows for k in r))
        cells = [[_cell(r.get(c)) for c in cols] for r in rows]
        widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
        lines = ["  ".join(c.upper().ljust(w) for c, w in zip(cols, widths, strict=True))]
        lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
        return "\n".join(line.rstrip() for line in lines)
    if isinstance(result, dict):
        return "\n".join(f"{k}: {_cell(v)}" for k, v in result.items())
    return _cell(result)


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, dict | list):
        return json.dumps(v, ensure_ascii=False)
    return str(v)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="xrayctl",
        description="Call the xray-report daemon (xrayd) over its Unix socket.",
        epilog="Examples: xrayctl users list | xrayctl users add email=alice@example.org "
        "| xrayctl call events.list limit=5 | xrayctl events stats --hours 48",
    )
    p.add_argument(
        "--socket",
        default=os.environ.get("XRAYD_SOCKET", DEFAULT_SOCKET),
        help="xrayd's socket (env XRAYD_SOCKET; default %(default)s)",
    )
    p.add_argument("--output", "-o", choices=["json", "table"], default="json")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for an answer")
    p.add_argument(
        "words", nargs=argparse.REMAINDER, help="`call METHOD [params]` or `MODULE ACTION [params]`"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    words = args.words
    if len(words) >= 2 and words[0] == "call":
        method, rest = words[1], words[2:]
    elif len(words) >= 2 and not words[0].startswith("-"):
        method, rest = f"{words[0]}.{words[1].replace('-', '_')}", words[2:]
    else:
        parser.print_usage(sys.stderr)
        print("xrayctl: give `call METHOD` or `MODULE ACTION`", file=sys.stderr)
        return EXIT_USAGE
    try:
        if method in POSITIONAL and rest and not rest[0].startswith("-") and "=" not in rest[0]:
            rest = [f"{POSITIONAL[method]}={rest[0]}", *rest[1:]]
        params = parse_params(rest)
        if method in SECRET and SECRET[method] not in params:
            params[SECRET[method]] = ask_secret(SECRET[method])
    except ValueError as exc:
        print(f"xrayctl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        with SyncXraydClient(args.socket, call_timeout=args.timeout) as client:
            result = client.call(method, params)
    except RpcError as exc:
        print(f"xrayctl: {exc.message} ({exc.error})", file=sys.stderr)
        return EXIT_RPC_ERROR
    except (DaemonUnavailable, CallTimeout) as exc:
        print(f"xrayctl: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    if args.output == "table":
        print(render_table(result))
    else:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
