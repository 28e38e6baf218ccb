"""An `xray` look-alike: Xray's command lines and output formats, with a fake server behind.

There is no Xray binary on the test and demo machines. The daemon runs whatever `xray_bin` its
config names, so this program answers the commands it uses exactly as Xray (≥ v26.3.23) would,
including the quirks a caller must cope with: `adu`/`rmu` exit 0 even when a user fails, the API
JSON escapes `>` as `\\u003e`, a counter at 0 has no `value`. The server's memory is the state
folder named by $XRAY_STANDIN_STATE (see standin_state).
"""

from __future__ import annotations

import base64
import json
import struct
import sys
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from xrayd.sandbox.standin_state import (
    Reply,
    StandinError,
    State,
    read_state,
    state_dir_from_env,
    update_state,
)
from xrayd.sandbox.xray_config import (
    USER_PROTOCOLS,
    XrayError,
    api_endpoints,
    api_services,
    build_inbound,
    checked_config,
    clients_of,
    decode_key,
    inbound_protocols,
    parse_config,
    xray_uuid,
)

VERSION_LINES = (
    "Xray 26.3.23 (Xray, Penetrates Everything.) Custom (go1.26.1 linux/amd64)\n"
    "A unified platform for anti-censorship.\n"
)
DEFAULT_SERVER = "127.0.0.1:8080"
GRPC_SERVICES = {
    "HandlerService": "xray.app.proxyman.command.HandlerService",
    "StatsService": "xray.app.stats.command.StatsService",
    "LoggerService": "xray.app.log.command.LoggerService",
}
USAGE = (
    "Xray is a platform for building proxies.\n\nUsage:\n\n\txray <command> [arguments]\n\n"
    "The commands are:\n\n\trun\t\tRun Xray with config, the default command\n"
    "\tversion\t\tShow current version of Xray\n\tapi\t\tCall an API in an Xray process\n"
    "\tuuid\t\tGenerate UUIDv4 or UUIDv5\n\tx25519\t\tGenerate key pair for X25519 key exchange\n"
)
_API_FLAGS = {"s": "server", "server": "server", "t": "timeout", "timeout": "timeout"}


class FlagError(Exception):
    """A command line Go's `flag` package would refuse (exit status 2)."""


def parse_flags(
    args: Sequence[str], values: dict[str, str], bools: dict[str, str] | None = None
) -> tuple[dict[str, list[str]], list[str]]:
    """Go `flag` parsing: `-n v`, `-n=v`, `--n=v`, `--n v`; bool flags take no separate value;
    the first non-flag (or `--`) ends the flags. `values`/`bools` map each spelling to a name.
    Returns {name: every value given, in order} and the remaining arguments."""
    bools = bools or {}
    found: dict[str, list[str]] = {}
    rest = list(args)
    while rest and rest[0].startswith("-") and rest[0] != "-":
        arg = rest.pop(0)
        if arg == "--":
            break
        name, has_value, value = arg.lstrip("-").partition("=")
        if not name or arg.startswith("---") or name.startswith("="):
            raise FlagError(f"bad flag syntax: {arg}")
        if name in bools:
            if has_value and value.lower() not in ("1", "0", "t", "f", "true", "false"):
                raise FlagError(f'invalid boolean value "{value}" for -{name}: parse error')
            found.setdefault(bools[name], []).append(
                "true" if not has_value or value.lower() in ("1", "t", "true") else "false"
            )
        elif name in values:
            if not has_value:
                if not rest:
                    raise FlagError(f"flag needs an argument: -{name}")
                value = rest.pop(0)
            found.setdefault(values[name], []).append(value)
        else:
            raise FlagError(f"flag provided but not defined: -{name}")
    return found, rest


def _last(flags: dict[str, list[str]], name: str, default: str = "") -> str:
    return flags[name][-1] if name in flags else default


def _on(flags: dict[str, list[str]], name: str) -> bool:
    return _last(flags, name, "false") == "true"


def go_json(value: Any) -> str:
    """JSON as Go's json.MarshalIndent(v, "", "  ") writes it: sorted keys, `<>&` escaped."""
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
    for char in "<>&\u2028\u2029":
        text = text.replace(char, f"\\u{ord(char):04x}")
    return text + "\n"


# --- run, version -------------------------------------------------------------------------


def _knobs() -> State | None:
    """The fake server's knobs when a state folder is set (`run -test` works without one)."""
    try:
        return read_state(state_dir_from_env())
    except StandinError:
        return None


def cmd_version(args: Sequence[str]) -> Reply:
    parse_flags(args, {})
    return Reply(out=VERSION_LINES)


def cmd_run(args: Sequence[str]) -> Reply:
    flags, _ = parse_flags(args, {"config": "config", "c": "config", "format": "format"}, {"test": "test"})
    if not _on(flags, "test"):
        return Reply(
            1,
            err="xray stand-in: only `run -test` is supported; "
            "the fake server starts through the systemctl stand-in\n",
        )
    state = _knobs()
    forced = state["fail_test"] if state else None
    out = VERSION_LINES
    for path in flags.get("config", []):
        stamp = datetime.now().strftime("%Y/%m/%d %H:%M:%S.%f")
        out += f"{stamp} [Info] infra/conf/serial: Reading config: &{{Name:{path} Format:json}}\n"
        try:
            checked_config(Path(path), forced)
        except XrayError as exc:
            return Reply(23, out=f"{out}Failed to start: {exc}\n")
    if not flags.get("config"):
        return Reply(
            23,
            out=f"{out}Failed to start: main: failed to load config files: [] > "
            "infra/conf/serial: no config file given\n",
        )
    return Reply(out=f"{out}Configuration OK.\n")


# --- api ----------------------------------------------------------------------------------


def _api_flags(
    args: Sequence[str], values: dict[str, str] | None = None, bools: dict[str, str] | None = None
) -> tuple[str, dict[str, list[str]], list[str]]:
    flags, rest = parse_flags(args, {**_API_FLAGS, **(values or {})}, {"json": "json", **(bools or {})})
    if not _last(flags, "timeout", "3").lstrip("-").isdigit():
        raise FlagError(f'invalid value "{_last(flags, "timeout")}" for flag -timeout: parse error')
    return _last(flags, "server", DEFAULT_SERVER), flags, rest


def _unreachable(state: State, server: str) -> Reply | None:
    """Xray's answer when nothing listens for the API at `server` (after the dial timeout)."""
    if state["running"] and state["api_up"] and server in api_endpoints(state["started_config"]):
        return None
    return Reply(1, err=f"failed to dial {server}\n")


def _unimplemented(state: State, service: str) -> str | None:
    """gRPC's error when the config's `api.services` does not list `service`."""
    if service in api_services(state["started_config"]):
        return None
    return f"rpc error: code = Unimplemented desc = unknown service {GRPC_SERVICES[service]}"


def cmd_statsquery(args: Sequence[str]) -> Reply:
    server, flags, _ = _api_flags(args, {"pattern": "pattern"}, {"reset": "reset"})
    pattern, reset = _last(flags, "pattern"), _on(flags, "reset")

    def query(state: State) -> Reply:
        failed = _unreachable(state, server)
        if failed:
            return failed
        missing = _unimplemented(state, "StatsService")
        if missing:
            return Reply(1, err=f"failed to query stats: {missing}\n")
        counters = state["counters"]
        stats = []
        for name in sorted(n for n in counters if pattern in n):
            value = str(counters[name]) if state["string_values"] else counters[name]
            stats.append({"name": name, "value": value} if counters[name] else {"name": name})
            if reset:
                counters[name] = 0
        return Reply(out=go_json({"stat": stats} if stats else {}))

    state_dir = state_dir_from_env()
    return update_state(state_dir, query) if reset else query(read_state(state_dir))


def _online(args: Sequence[str], answer: Callable[[str, dict[str, int]], dict[str, Any]]) -> Reply:
    server, flags, _ = _api_flags(args, {"email": "email"})
    name = f"user>>>{_last(flags, 'email')}>>>online"
    state = read_state(state_dir_from_env())
    failed = _unreachable(state, server)
    if failed:
        return failed
    missing = _unimplemented(state, "StatsService")
    ips = state["online"].get(_last(flags, "email"))
    if missing or ips is None:
        reason = missing or f"rpc error: code = NotFound desc = {name} not found."
        return Reply(1, err=f"failed to get stats: {reason}\n")
    return Reply(out=go_json(answer(name, ips)))


def cmd_statsonline(args: Sequence[str]) -> Reply:
    return _online(
        args, lambda name, ips: {"stat": {"name": name, "value": len(ips)} if ips else {"name": name}}
    )


def cmd_statsonlineiplist(args: Sequence[str]) -> Reply:
    return _online(args, lambda name, ips: {"name": name, "ips": ips})


def cmd_restartlogger(args: Sequence[str]) -> Reply:
    server, _, _ = _api_flags(args)
    state = read_state(state_dir_from_env())
    failed = _unreachable(state, server)
    if failed:
        return failed
    missing = _unimplemented(state, "LoggerService")
    return Reply(1, err=f"failed to restart logger: {missing}\n") if missing else Reply()


def _handler(state: State, tag: str) -> tuple[str, dict[str, Any] | None] | str:
    """(protocol, users) of the running inbound `tag`, or the rpc error naming why not."""
    protocol = inbound_protocols(state["started_config"]).get(tag)
    if protocol is None:
        return (
            "rpc error: code = Unknown desc = app/proxyman/command: failed to get handler: "
            f"{tag} > app/proxyman/inbound: handler not found: {tag}"
        )
    return protocol, state["inbounds"].get(tag)


def _add_user(state: State, tag: str, client: dict[str, Any]) -> str | None:
    handler = _handler(state, tag)
    if isinstance(handler, str):
        return handler
    protocol, users = handler
    if users is None:
        return "rpc error: code = Unknown desc = app/proxyman/command: proxy is not a UserManager"
    if client["email"].lower() in users:
        return f"rpc error: code = Unknown desc = proxy/{protocol}: User {client['email']} already exists."
    users[client["email"].lower()] = client
    return None


def _remove_user(state: State, tag: str, email: str) -> str | None:
    handler = _handler(state, tag)
    if isinstance(handler, str):
        return handler
    protocol, users = handler
    if users is None:
        return "rpc error: code = Unknown desc = app/proxyman/command: proxy is not a UserManager"
    if not email:
        return f"rpc error: code = Unknown desc = proxy/{protocol}: Email must not be empty."
    if users.pop(email.lower(), None) is None:
        return f"rpc error: code = Unknown desc = proxy/{protocol}: User {email} not found."
    return None


def _inbounds_of(files: Sequence[str]) -> list[Any] | Reply:
    inbounds: list[Any] = []
    for name in files:
        try:
            text = Path(name).read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            return Reply(1, err=f"failed to load {name}: open {name}: {(exc.strerror or str(exc)).lower()}\n")
        try:
            config = parse_config(text)
        except XrayError as exc:
            return Reply(1, err=f"failed to decode {name}: {exc}\n")
        inbounds += config.get("inbounds") if isinstance(config.get("inbounds"), list) else []
    return inbounds


def cmd_adu(args: Sequence[str]) -> Reply:
    server, _, files = _api_flags(args)
    inbounds = _inbounds_of(files)
    if isinstance(inbounds, Reply):
        return inbounds

    def add(state: State) -> Reply:
        failed = _unreachable(state, server)
        if failed:
            return failed
        missing = _unimplemented(state, "HandlerService")
        lines, added = [], 0
        for inbound in inbounds:
            tag = inbound.get("tag") if isinstance(inbound, dict) else None
            if not tag:
                continue
            lines.append(f"processing inbound: {tag}")
            try:
                build_inbound(inbound)
            except XrayError as exc:
                lines.append(f"failed to build config: {exc}")
                continue
            if str(inbound.get("protocol", "")).lower() not in USER_PROTOCOLS:
                lines.append("unsupported inbound type")
                continue
            for client in clients_of(inbound.get("settings")):
                email = client.get("email") if isinstance(client, dict) else None
                if not isinstance(email, str) or not email:
                    continue  # Xray skips users it could not name later
                lines.append(f"add user: {email}")
                error = missing or _add_user(state, tag, client)
                lines.append(error or "result: ok")
                added += error is None
        lines.append(f"Added {added} user(s) in total.")
        return Reply(out="\n".join(lines) + "\n")

    return update_state(state_dir_from_env(), add)


def cmd_rmu(args: Sequence[str]) -> Reply:
    server, flags, emails = _api_flags(args, {"tag": "tag"})
    tag = _last(flags, "tag")
    if not tag:
        return Reply(1, err="inbound tag not specified\n")

    def remove(state: State) -> Reply:
        failed = _unreachable(state, server)
        if failed:
            return failed
        missing = _unimplemented(state, "HandlerService")
        lines, removed = [], 0
        for email in emails:
            lines.append(f"remove user: {email}")
            error = missing or _remove_user(state, tag, email)
            if error:
                lines.append(error)
            removed += error is None
        lines.append(f"Removed {removed} user(s) in total.")
        return Reply(out="\n".join(lines) + "\n")

    return update_state(state_dir_from_env(), remove)


API_COMMANDS: dict[str, Callable[[Sequence[str]], Reply]] = {
    "statsquery": cmd_statsquery,
    "statsonline": cmd_statsonline,
    "statsonlineiplist": cmd_statsonlineiplist,
    "adu": cmd_adu,
    "rmu": cmd_rmu,
    "restartlogger": cmd_restartlogger,
}


def cmd_api(args: Sequence[str]) -> Reply:
    if not args or args[0] not in API_COMMANDS:
        known = ", ".join(API_COMMANDS)
        what = f"unknown subcommand {args[0]!r}" if args else "missing subcommand"
        return Reply(1, err=f"xray api: {what} (the stand-in knows {known})\n")
    return API_COMMANDS[args[0]](args[1:])


# --- keys and ids -------------------------------------------------------------------------

_IV = (0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19)
_PERMUTATION = (2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8)
_G_STEPS = (
    (0, 4, 8, 12, 0, 1),
    (1, 5, 9, 13, 2, 3),
    (2, 6, 10, 14, 4, 5),
    (3, 7, 11, 15, 6, 7),
    (0, 5, 10, 15, 8, 9),
    (1, 6, 11, 12, 10, 11),
    (2, 7, 8, 13, 12, 13),
    (3, 4, 9, 14, 14, 15),
)
_MASK = 0xFFFFFFFF


def _rotr(x: int, n: int) -> int:
    return ((x >> n) | (x << (32 - n))) & _MASK


def blake3_256(data: bytes) -> bytes:
    """BLAKE3 of at most 64 bytes (a single root block), for `x25519`'s `Hash32` line:
    Python has no BLAKE3 and this is the one place that needs it."""
    if len(data) > 64:
        raise ValueError("blake3_256 hashes one 64-byte block at most")
    m = list(struct.unpack("<16I", data.ljust(64, b"\0")))
    v = [*_IV, *_IV[:4], 0, 0, len(data), 1 | 2 | 8]  # CHUNK_START | CHUNK_END | ROOT
    for _ in range(7):
        for a, b, c, d, x, y in _G_STEPS:
            v[a] = (v[a] + v[b] + m[x]) & _MASK
            v[d] = _rotr(v[d] ^ v[a], 16)
            v[c] = (v[c] + v[d]) & _MASK
            v[b] = _rotr(v[b] ^ v[c], 12)
            v[a] = (v[a] + v[b] + m[y]) & _MASK
            v[d] = _rotr(v[d] ^ v[a], 8)
            v[c] = (v[c] + v[d]) & _MASK
            v[b] = _rotr(v[b] ^ v[c], 7)
        m = [m[i] for i in _PERMUTATION]
    return struct.pack("<8I", *(v[i] ^ v[i + 8] for i in range(8)))


def cmd_x25519(args: Sequence[str]) -> Reply:
    # Imported here: every call is a fresh process and only this command needs it.
    import secrets

    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    flags, _ = parse_flags(args, {"i": "i"}, {"std-encoding": "std"})
    std = _on(flags, "std")
    given = _last(flags, "i")
    raw = secrets.token_bytes(32) if not given else _std_decode(given) if std else decode_key(given)
    if raw is None or len(raw) != 32:
        return Reply(out="Invalid length of X25519 private key.\n")
    private = bytearray(raw)
    private[0] &= 248
    private[31] = (private[31] & 127) | 64
    public = X25519PrivateKey.from_private_bytes(bytes(private)).public_key().public_bytes_raw()

    def encode(data: bytes) -> str:
        text = base64.b64encode(data) if std else base64.urlsafe_b64encode(data).rstrip(b"=")
        return text.decode()

    return Reply(
        out=f"PrivateKey: {encode(bytes(private))}\nPassword (PublicKey): "
        f"{encode(public)}\nHash32: {encode(blake3_256(public))}\n"
    )


def _std_decode(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        return None


def cmd_uuid(args: Sequence[str]) -> Reply:
    flags, _ = parse_flags(args, {"i": "i"})
    given = _last(flags, "i")
    if len(given.encode()) > 30:
        return Reply(out="Input must be within 30 bytes.\n")
    return Reply(out=f"{xray_uuid(given) if given else uuid.uuid4()}\n")


COMMANDS: dict[str, Callable[[Sequence[str]], Reply]] = {
    "run": cmd_run,
    "version": cmd_version,
    "api": cmd_api,
    "x25519": cmd_x25519,
    "uuid": cmd_uuid,
}


def main(argv: Sequence[str]) -> int:
    """Answer one `xray` command line (without the program name); return the exit status."""
    argv = ["run", *argv] if not argv or argv[0].startswith("-") else list(argv)
    command = COMMANDS.get(argv[0])
    if command is None:
        sys.stderr.write(f"xray: unknown command {argv[0]!r}\n\n{USAGE}")
        return 1
    try:
        reply = command(argv[1:])
    except FlagError as exc:
        reply = Reply(2, err=f"{exc}\nRun 'xray help {argv[0]}' for details.\n")
    except StandinError as exc:
        reply = Reply(1, err=f"xray stand-in: {exc}\n")
    sys.stdout.write(reply.out)
    sys.stderr.write(reply.err)
    return reply.code
