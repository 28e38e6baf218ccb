"""What the fake Xray knows about a config file: Xray's JSON dialect and the checks it makes.

One module for `xray run -test`, `xray api adu` and the systemctl stand-in's start, so a config the
stand-in tests OK is exactly one it starts with. Errors are worded as Xray's chains
(`pkg: message > pkg: cause`), as far as the fixture README and Xray's source describe them.
"""

from __future__ import annotations

import base64
import json
import re
import string
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Inbound protocols whose users the HandlerService can add and remove.
USER_PROTOCOLS = frozenset({"vless", "vmess", "trojan", "shadowsocks"})
VISION = "xtls-rprx-vision"
ANY_ADDRESS = "0.0.0.0"  # noqa: S104 - Xray's default `listen`, read from configs, never bound
_WILDCARDS = frozenset({"", ANY_ADDRESS, "::"})
_NIL = uuid.UUID(int=0)
# A string, or a comment (`//`, `#`, `/* */`), as Xray's json reader tells them apart.
_TOKEN = re.compile(r"\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*'|//[^\n]*|#[^\n]*|/\*.*?(?:\*/|\Z)", re.S)
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


class XrayError(Exception):
    """A failure, worded as the error chain Xray prints."""


@contextmanager
def _context(message: str) -> Iterator[None]:
    """Prefix any XrayError raised inside with `message > `, as Xray's `.Base(err)` does."""
    try:
        yield
    except XrayError as exc:
        raise XrayError(f"{message} > {exc}") from None


def strip_comments(text: str) -> str:
    """Drop comments outside strings, keeping newlines so JSON errors name the right line."""

    def keep(match: re.Match[str]) -> str:
        token = match.group()
        return token if token[0] in "\"'" else "\n" * token.count("\n")

    return _TOKEN.sub(keep, text)


def _no_constants(name: str) -> None:
    raise ValueError(f"invalid character '{name[0]}' looking for beginning of value")


def parse_config(text: str) -> dict[str, Any]:
    """Parse Xray's JSON-with-comments into a dict."""
    try:
        value = json.loads(strip_comments(text), parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise XrayError(
            "infra/conf/serial: failed to parse json config > infra/conf/serial: "
            f"{exc.msg} at line {exc.lineno} char {exc.colno}"
        ) from None
    except ValueError as exc:
        raise XrayError(f"infra/conf/serial: failed to parse json config > {exc}") from None
    if not isinstance(value, dict):
        raise XrayError(
            "infra/conf/serial: failed to parse json config > json: cannot unmarshal "
            f"{type(value).__name__} into Go value of type conf.Config"
        )
    return value


def read_config(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise XrayError(f"infra/conf/serial: failed to read config: {path} > open {path}: {reason}") from None
    return parse_config(text)


def xray_uuid(text: str) -> uuid.UUID | None:
    """Xray's `uuid.ParseString`: a UUID, or 1..30 bytes mapped to a UUIDv5; None if neither."""
    size = len(text.encode())
    if not 32 <= size <= 36:
        return uuid.uuid5(_NIL, text) if 0 < size <= 30 else None
    digits, rest = "", text
    for group in (8, 4, 4, 4, 12):
        rest = rest.removeprefix("-")
        chunk, rest = rest[:group], rest[group:]
        if len(chunk) < group or not all(c in string.hexdigits for c in chunk):
            return None
        digits += chunk
    return uuid.UUID(digits)


def decode_key(text: str) -> bytes | None:
    """Base64url without padding (Go's RawURLEncoding); None if not valid."""
    if not _BASE64URL.fullmatch(text) or len(text) % 4 == 1:
        return None
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _port(inbound: dict[str, Any]) -> int | None:
    port = inbound.get("port")
    if isinstance(port, str) and port.isdigit():
        return int(port)
    return port if isinstance(port, int) and not isinstance(port, bool) else None


def clients_of(settings: Any) -> list[Any]:
    """An inbound's `settings.clients`, or [] when it has none."""
    clients = settings.get("clients") if isinstance(settings, dict) else None
    return clients if isinstance(clients, list) else []


def _check_vless(settings: Any) -> None:
    settings = settings if isinstance(settings, dict) else {}
    for client in clients_of(settings):
        if not isinstance(client, dict) or not isinstance(client.get("id"), str):
            raise XrayError("infra/conf: VLESS clients: invalid user")
        if not isinstance(client.get("email", ""), str):
            raise XrayError(
                "infra/conf: VLESS clients: invalid user > json: cannot unmarshal "
                "into Go struct field User.email of type string"
            )
        if xray_uuid(client["id"]) is None:
            raise XrayError(f"common/uuid: invalid UUID: {client['id']}")
        flow = client.get("flow", "")
        if flow not in ("", VISION):
            raise XrayError(f'infra/conf: VLESS clients: "flow" doesn\'t support "{flow}" in this version')
    if settings.get("decryption") != "none":
        raise XrayError('infra/conf: VLESS settings: please add/set "decryption":"none" to every settings')


def _host_port(address: str) -> bool:
    """Whether Go's net.SplitHostPort accepts `address`."""
    if address.startswith("["):
        end = address.find("]")
        return end != -1 and address[end + 1 : end + 2] == ":" and ":" not in address[end + 2 :]
    host, sep, _ = address.rpartition(":")
    return bool(sep) and ":" not in host


def _check_reality(settings: dict[str, Any]) -> None:
    dest = settings["target"] if "target" in settings else settings.get("dest")
    if isinstance(dest, int) and not isinstance(dest, bool):
        dest = str(dest)
    dest = dest if isinstance(dest, str) else ""
    if dest.isdigit():
        dest = f"127.0.0.1:{dest}"
    typed = bool(settings.get("type")) and bool(dest)
    if not typed and not (dest and (dest[0] in "@/" or _host_port(dest))):
        raise XrayError('infra/conf: please fill in a valid value for "target"')
    xver = settings.get("xver", 0)
    if not isinstance(xver, int) or not 0 <= xver <= 2:
        raise XrayError('infra/conf: invalid PROXY protocol version, "xver" only accepts 0, 1, 2')
    names = settings.get("serverNames")
    if not isinstance(names, list) or not names:
        raise XrayError('infra/conf: empty "serverNames"')
    key = settings.get("privateKey") or ""
    if not key:
        raise XrayError('infra/conf: empty "privateKey"')
    decoded = decode_key(key) if isinstance(key, str) else None
    if decoded is None or len(decoded) != 32:
        raise XrayError(f'infra/conf: invalid "privateKey": {key}')
    short_ids = settings.get("shortIds")
    if not isinstance(short_ids, list) or not short_ids:
        raise XrayError('infra/conf: empty "shortIds"')
    for i, sid in enumerate(short_ids):
        if not (
            isinstance(sid, str)
            and len(sid) <= 16
            and len(sid) % 2 == 0
            and all(c in string.hexdigits for c in sid)
        ):
            raise XrayError(f'infra/conf: invalid "shortIds[{i}]": {sid}')


def _check_stream(stream: Any) -> None:
    if not isinstance(stream, dict) or str(stream.get("security", "")).lower() != "reality":
        return
    network = str(stream.get("network") or "tcp").lower()
    if network not in ("tcp", "raw", "xhttp", "splithttp", "grpc"):
        raise XrayError("infra/conf: REALITY only supports RAW, XHTTP and gRPC for now.")
    settings = stream.get("realitySettings")
    if not isinstance(settings, dict):
        raise XrayError('infra/conf: REALITY: Empty "realitySettings".')
    with _context("infra/conf: Failed to build REALITY config."):
        _check_reality(settings)


def build_inbound(inbound: Any) -> None:
    """Check one inbound as Xray's config builder does (`adu` builds its files' inbounds too)."""
    if not isinstance(inbound, dict):
        raise XrayError("json: cannot unmarshal into Go value of type conf.InboundDetourConfig")
    if not isinstance(inbound.get("tag", ""), str):
        raise XrayError("json: cannot unmarshal into Go struct field .tag of type string")
    if "streamSettings" in inbound:
        with _context("infra/conf: failed to build stream settings"):
            _check_stream(inbound["streamSettings"])
    protocol = str(inbound.get("protocol", "")).lower()
    if protocol == "vless":
        with _context(f"infra/conf: failed to build inbound handler for protocol {protocol}"):
            _check_vless(inbound.get("settings"))


def _inbounds(config: dict[str, Any]) -> list[Any]:
    inbounds = config.get("inbounds") or []
    if not isinstance(inbounds, list):
        raise XrayError(
            "infra/conf/serial: failed to parse json config > json: cannot unmarshal "
            "into Go struct field Config.inbounds of type []conf.InboundDetourConfig"
        )
    return inbounds


def _check_together(inbounds: list[dict[str, Any]]) -> None:
    """What only fails once the inbounds are created: shared tags, emails and ports."""
    tags: set[str] = set()
    bound: list[tuple[str, int]] = []
    for inbound in inbounds:
        tag = inbound.get("tag") or ""
        if tag in tags:
            raise XrayError(f"app/proxyman/inbound: existing tag found: {tag}")
        if tag:
            tags.add(tag)
        if str(inbound.get("protocol", "")).lower() == "vless":
            emails: set[str] = set()
            for client in clients_of(inbound.get("settings")):
                email = client.get("email") or ""
                if email and email.lower() in emails:
                    raise XrayError(
                        f"proxy/vless/inbound: failed to add user > proxy/vless: User {email} already exists."
                    )
                emails.add(email.lower())
        listen, port = str(inbound.get("listen") or ANY_ADDRESS), _port(inbound)
        if port is None or listen[:1] in ("/", "@"):
            continue
        for other, other_port in bound:
            if port == other_port and (listen == other or {listen, other} & _WILDCARDS):
                raise XrayError(
                    f"app/proxyman/inbound: failed to listen TCP on {port} > transport/internet: "
                    f"failed to listen on address: {listen}:{port} > "
                    f"listen tcp {listen}:{port}: bind: address already in use"
                )
        bound.append((listen, port))


def checked_config(path: Path, forced: str | None = None) -> dict[str, Any]:
    """Load and check a config as `xray run -test` does; `forced` makes it fail with that text.

    The XrayError's text is what Xray prints after `Failed to start: `.
    """
    with _context(f"main: failed to load config files: [{path}]"):
        if forced:
            raise XrayError(forced)
        config = read_config(path)
        for inbound in _inbounds(config):
            tag = (inbound.get("tag") or "") if isinstance(inbound, dict) else ""
            with _context(f"infra/conf: failed to build inbound config with tag {tag}"):
                build_inbound(inbound)
    with _context("main: failed to create server"):
        _check_together(config.get("inbounds") or [])
    return config


def inbound_protocols(config: dict[str, Any]) -> dict[str, str]:
    """{tag: protocol} of the tagged inbounds."""
    return {
        inbound["tag"]: str(inbound.get("protocol", "")).lower()
        for inbound in _inbounds(config)
        if isinstance(inbound, dict) and isinstance(inbound.get("tag"), str) and inbound["tag"]
    }


def config_users(config: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """{tag: {email_lower: client}} for every user-managing inbound (clients without an email,
    which the API cannot name, are left out)."""
    users: dict[str, dict[str, dict[str, Any]]] = {}
    for inbound in _inbounds(config):
        tag = inbound.get("tag") if isinstance(inbound, dict) else None
        if not tag or str(inbound.get("protocol", "")).lower() not in USER_PROTOCOLS:
            continue
        users[tag] = {
            client["email"].lower(): client
            for client in clients_of(inbound.get("settings"))
            if isinstance(client, dict) and isinstance(client.get("email"), str) and client["email"]
        }
    return users


def _dial_names(host: str, port: int) -> set[str]:
    """The `--server` spellings that reach a listener on host:port."""
    if host in _WILDCARDS:
        return {f"127.0.0.1:{port}", f"localhost:{port}", f"{ANY_ADDRESS}:{port}", f"[::1]:{port}"}
    if host in ("127.0.0.1", "localhost"):
        return {f"127.0.0.1:{port}", f"localhost:{port}"}
    if host == "::1":
        return {f"[::1]:{port}", f"localhost:{port}"}
    return {f"[{host}]:{port}" if ":" in host else f"{host}:{port}"}


def _string_list(value: Any) -> list[Any]:
    """Xray's StringList: one string, or a list of them."""
    return [value] if isinstance(value, str) else value if isinstance(value, list) else []


def api_endpoints(config: dict[str, Any]) -> set[str]:
    """Where `xray api --server=…` reaches this config's API: `api.listen`, or the inbound
    tagged `api.tag` (dokodemo-door/tunnel) that a routing rule sends to the api outbound."""
    api = config.get("api")
    if not isinstance(api, dict):
        return set()
    listen = api.get("listen")
    if isinstance(listen, str) and listen:
        host, _, port = listen.rpartition(":")
        return _dial_names(host.strip("[]"), int(port)) if port.isdigit() else set()
    tag = api.get("tag")
    routing = config.get("routing") if isinstance(config.get("routing"), dict) else {}
    rules = routing.get("rules") if isinstance(routing.get("rules"), list) else []
    routed = any(
        isinstance(rule, dict)
        and rule.get("outboundTag") == tag
        and tag in _string_list(rule.get("inboundTag"))
        for rule in rules
    )
    for inbound in _inbounds(config) if routed else []:
        if not isinstance(inbound, dict) or inbound.get("tag") != tag:
            continue
        port = _port(inbound)
        if inbound.get("protocol") in ("dokodemo-door", "tunnel") and port is not None:
            return _dial_names(str(inbound.get("listen") or ANY_ADDRESS), port)
    return set()


def api_services(config: dict[str, Any]) -> set[str]:
    api = config.get("api")
    services = api.get("services") if isinstance(api, dict) else None
    return {s for s in services if isinstance(s, str)} if isinstance(services, list) else set()


def user_stats(config: dict[str, Any], level: Any) -> tuple[bool, bool, bool]:
    """Which per-user stats (uplink, downlink, online) Xray keeps for a user of this level."""
    policy = config.get("policy") if isinstance(config.get("policy"), dict) else {}
    levels = policy.get("levels") if isinstance(policy.get("levels"), dict) else {}
    rules = levels.get(str(level)) if isinstance(levels.get(str(level)), dict) else {}
    on = "stats" in config
    return (
        on and rules.get("statsUserUplink") is True,
        on and rules.get("statsUserDownlink") is True,
        on and rules.get("statsUserOnline") is True,
    )


def inbound_stats(config: dict[str, Any]) -> tuple[bool, bool]:
    """Whether Xray counts traffic per inbound (uplink, downlink)."""
    policy = config.get("policy") if isinstance(config.get("policy"), dict) else {}
    system = policy.get("system") if isinstance(policy.get("system"), dict) else {}
    on = "stats" in config
    return (
        on and system.get("statsInboundUplink") is True,
        on and system.get("statsInboundDownlink") is True,
    )
