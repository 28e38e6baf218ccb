"""REALITY parameters of the managed inbound, and the `vless://` links and QR codes built on them.

The public key is derived from `privateKey` with X25519, so it can never disagree with the
key Xray uses. Links carry the parameters 3x-ui and Marzban emit, so every common client
imports them: type, encryption=none, security=reality, pbk, fp, sni, sid, spx (when set),
flow (tcp only), and the transport's own (serviceName/mode for grpc; path/host/mode for
xhttp; path/host for ws and httpupgrade).
"""

from __future__ import annotations

import base64
import binascii
import io
from typing import Any
from urllib.parse import quote

import segno
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from xrayd.errors import Unprocessable
from xrayd.xray import document
from xrayd.xray.document import Managed

DEFAULT_FINGERPRINT = "chrome"
_TRANSPORT_SETTINGS = {
    "tcp": ("rawSettings", "tcpSettings"),
    "grpc": ("grpcSettings",),
    "xhttp": ("xhttpSettings", "splithttpSettings"),
    "ws": ("wsSettings",),
    "httpupgrade": ("httpupgradeSettings",),
}


def public_key(private_key: str) -> str:
    """The REALITY public key (`pbk`) of a base64url `privateKey`, as `xray x25519 -i` prints it."""
    try:
        raw = base64.urlsafe_b64decode(private_key + "=" * (-len(private_key) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise Unprocessable(
            "The REALITY privateKey of the managed inbound is not a 32-byte base64url key.",
            error="reality_key_invalid",
        )
    public = X25519PrivateKey.from_private_bytes(raw).public_key().public_bytes_raw()
    return base64.urlsafe_b64encode(public).rstrip(b"=").decode()


def _first(values: Any) -> str:
    """The first non-empty string of a list (a client's sni or sid), else ""."""
    items = values if isinstance(values, list) else []
    return next((v for v in items if isinstance(v, str) and v), "")


def _transport(inbound: dict[str, Any], network: str) -> dict[str, str]:
    """The link parameters of the inbound's transport, named as links name them."""
    stream = document.stream(inbound)
    settings: dict[str, Any] = {}
    for key in _TRANSPORT_SETTINGS.get(network, ()):
        if isinstance(stream.get(key), dict):
            settings = stream[key]
            break
    if network == "grpc":
        out = {
            "serviceName": str(settings.get("serviceName") or ""),
            "mode": "multi" if settings.get("multiMode") else "gun",
        }
        if settings.get("authority"):
            out["authority"] = str(settings["authority"])
        return out
    if network in ("xhttp", "ws", "httpupgrade"):
        headers = settings.get("headers") if isinstance(settings.get("headers"), dict) else {}
        out = {
            "path": str(settings.get("path") or "/"),
            "host": str(settings.get("host") or headers.get("Host") or ""),
        }
        if network == "xhttp":
            out["mode"] = str(settings.get("mode") or "auto")
        return out
    return {}


def params(managed: Managed, public_host: str | None) -> dict[str, Any]:
    """Everything a client needs besides its id, from the managed inbound."""
    inbound = managed.inbound
    if document.security(inbound) != "reality":
        raise Unprocessable(
            f"The managed inbound uses security {document.security(inbound)!r}; "
            "links are built for REALITY only.",
            error="not_reality",
        )
    reality = document.stream(inbound).get("realitySettings")
    reality = reality if isinstance(reality, dict) else {}
    extra = reality.get("settings") if isinstance(reality.get("settings"), dict) else {}
    port = document.port_of(inbound)
    if port is None:
        raise Unprocessable("The managed inbound has no numeric port.", error="inbound_port_invalid")
    network = document.network(inbound)
    private = reality.get("privateKey")
    return {
        "ok": True,
        "tag": managed.tag,
        "host": public_host,
        "port": port,
        "type": network,
        "security": "reality",
        "pbk": public_key(private if isinstance(private, str) else ""),
        "sni": _first(reality.get("serverNames")),
        "sid": _first(reality.get("shortIds")),
        "fp": str(extra.get("fingerprint") or reality.get("fingerprint") or DEFAULT_FINGERPRINT),
        "spx": str(extra.get("spiderX") or reality.get("spiderX") or ""),
        "flow": managed.default_flow(),
        "dest": reality.get("target", reality.get("dest")),
        "server_names": [v for v in reality.get("serverNames") or [] if isinstance(v, str)],
        "short_ids": [v for v in reality.get("shortIds") or [] if isinstance(v, str)],
        "transport": _transport(inbound, network),
    }


def link(p: dict[str, Any], client_id: str, flow: str, name: str) -> str:
    """`vless://ID@HOST:PORT?…#NAME` for one client, from `params(...)`."""
    if not p["host"]:
        raise Unprocessable(
            'Set ui.public_host (POST /api/settings {"ui": {"public_host": "vpn.example.org"}}) '
            "to the host name clients connect to; links are not built without it.",
            error="public_host_not_set",
        )
    query: list[tuple[str, str]] = [
        ("type", p["type"]),
        ("encryption", "none"),
        ("security", "reality"),
        ("pbk", p["pbk"]),
        ("fp", p["fp"]),
        ("sni", p["sni"]),
        ("sid", p["sid"]),
    ]
    if p["spx"]:
        query.append(("spx", p["spx"]))
    if p["type"] == "tcp" and flow:
        query.append(("flow", flow))
    query += [(k, v) for k, v in p["transport"].items() if v]
    encoded = "&".join(f"{k}={quote(v, safe='')}" for k, v in query)
    return f"vless://{quote(client_id, safe='')}@{p['host']}:{p['port']}?{encoded}#{quote(name, safe='')}"


def qr_svg(text: str) -> str:
    """An SVG QR code of `text` (error correction M: survives a smudged screen)."""
    buffer = io.BytesIO()
    segno.make(text, error="m", micro=False).save(buffer, kind="svg", scale=6, border=4)
    return buffer.getvalue().decode("utf-8")
