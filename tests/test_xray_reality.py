"""REALITY parameters and vless:// links: every parameter parsed back, for each transport."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit
from xml.etree import ElementTree

import pytest
from xray_configs import PRIVATE_KEY, PUBLIC_KEY, REALITY_TEMPLATE, filled, reality_inbound

from xrayd.errors import Unprocessable
from xrayd.xray import document, jsonc, reality

HOST = "vpn.example.org"


def parse_link(link: str) -> tuple[str, str, int, dict[str, str], str]:
    """(id, host, port, params, name) of a vless:// link, with a check that no param repeats."""
    parts = urlsplit(link)
    assert parts.scheme == "vless"
    pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True)
    params = dict(pairs)
    assert len(params) == len(pairs)
    return (
        unquote(parts.username or ""),
        parts.hostname or "",
        parts.port or 0,
        params,
        unquote(parts.fragment),
    )


def test_public_key_is_derived_with_x25519() -> None:
    """The known pair from Xray-core issue #5160: private ADqg… gives public 3oxS…."""
    assert reality.public_key(PRIVATE_KEY) == PUBLIC_KEY
    for bad in ("", "short", PRIVATE_KEY + "AA", "!!!!"):
        with pytest.raises(Unprocessable) as err:
            reality.public_key(bad)
        assert err.value.error == "reality_key_invalid"


def test_tcp_link_from_the_reality_template() -> None:
    """tcp: type, encryption, security, pbk, fp, sni, sid, flow; name is the URL-encoded label."""
    doc, _ = jsonc.loads(filled(REALITY_TEMPLATE))
    managed = document.find_managed(doc, None)
    p = reality.params(managed, HOST)
    client_id = managed.clients()[0]["id"]
    link = reality.link(p, client_id, "xtls-rprx-vision", "Мама & папа #1")
    got_id, host, port, params, name = parse_link(link)
    assert (got_id, host, port, name) == (client_id, HOST, 443, "Мама & папа #1")
    assert params == {
        "type": "tcp",
        "encryption": "none",
        "security": "reality",
        "pbk": PUBLIC_KEY,
        "fp": "chrome",
        "sni": "www.microsoft.com",
        "sid": "0123456789abcdef",
        "flow": "xtls-rprx-vision",
    }


def test_grpc_link_has_service_name_and_mode_and_no_flow() -> None:
    """grpc: serviceName and mode (multi when multiMode), never flow."""
    inbound = reality_inbound("g", network="grpc", grpcSettings={"serviceName": "my svc", "multiMode": True})
    p = reality.params(document.Managed(0, inbound), HOST)
    _, _, _, params, _ = parse_link(reality.link(p, "id", "xtls-rprx-vision", "g"))
    assert params["type"] == "grpc" and params["serviceName"] == "my svc" and params["mode"] == "multi"
    assert "flow" not in params and params["security"] == "reality" and params["pbk"] == PUBLIC_KEY
    gun = reality_inbound("g", network="grpc", grpcSettings={"serviceName": "s"})
    assert reality.params(document.Managed(0, gun), HOST)["transport"]["mode"] == "gun"


def test_xhttp_link_has_path_host_and_mode() -> None:
    """xhttp (and its old name splithttp): path, host and mode, from xhttpSettings."""
    settings = {"path": "/up load", "host": "cdn.example.org", "mode": "packet-up"}
    for network, key in (("xhttp", "xhttpSettings"), ("splithttp", "splithttpSettings")):
        inbound = reality_inbound("x", network=network, **{key: settings})
        p = reality.params(document.Managed(0, inbound), HOST)
        _, _, _, params, _ = parse_link(reality.link(p, "id", "", "x"))
        assert params["type"] == "xhttp"
        assert (params["path"], params["host"], params["mode"]) == (
            "/up load",
            "cdn.example.org",
            "packet-up",
        )


def test_xhttp_defaults() -> None:
    """An xhttp inbound without settings links path=/ and mode=auto, and no empty host."""
    p = reality.params(document.Managed(0, reality_inbound("x", network="xhttp")), HOST)
    _, _, _, params, _ = parse_link(reality.link(p, "id", "", "x"))
    assert params["path"] == "/" and params["mode"] == "auto" and "host" not in params


@pytest.mark.parametrize("network", ["ws", "httpupgrade"])
def test_ws_and_httpupgrade_transport_params(network: str) -> None:
    """ws and httpupgrade give path and host (the Host header when `host` is not set)."""
    inbound = {
        "protocol": "vless",
        "streamSettings": {
            "network": network,
            f"{network}Settings": {"path": "/w", "headers": {"Host": "h.example"}},
        },
    }
    assert reality._transport(inbound, network) == {"path": "/w", "host": "h.example"}


def test_spx_fp_and_ipv6_host() -> None:
    """spx and fp come from realitySettings.settings (3x-ui's place); an [IPv6] host stays bracketed."""
    inbound = reality_inbound("r")
    inbound["streamSettings"]["realitySettings"]["settings"] = {"spiderX": "/s?x=1", "fingerprint": "firefox"}
    inbound["streamSettings"]["realitySettings"]["shortIds"] = [""]
    p = reality.params(document.Managed(0, inbound), "[2001:db8::1]")
    link = reality.link(p, str(uuid.UUID(int=1)), "", "n")
    _, host, _, params, _ = parse_link(link)
    assert host == "2001:db8::1" and "@[2001:db8::1]:443?" in link
    assert params["spx"] == "/s?x=1" and params["fp"] == "firefox" and params["sid"] == ""


def test_no_public_host_is_a_clear_error() -> None:
    """Links need ui.public_host; without it the error says to set it."""
    p = reality.params(document.Managed(0, reality_inbound("r")), None)
    assert p["host"] is None
    with pytest.raises(Unprocessable) as err:
        reality.link(p, "id", "", "n")
    assert err.value.error == "public_host_not_set" and "ui.public_host" in err.value.message


def test_non_reality_inbound_has_no_reality_params() -> None:
    """A VLESS + TLS inbound (chosen by tag) is refused for links with not_reality."""
    doc: dict[str, Any] = json.loads(
        json.dumps(jsonc.loads(filled("VLESS-TCP-XTLS-Vision__config_server.jsonc"))[0])
    )
    with pytest.raises(Unprocessable) as err:
        reality.params(document.Managed(0, doc["inbounds"][0]), HOST)
    assert err.value.error == "not_reality"


def test_qr_is_an_svg_document() -> None:
    """The QR code is a well-formed SVG image."""
    svg = reality.qr_svg("vless://x@h:1?type=tcp#n")
    root = ElementTree.fromstring(svg)  # noqa: S314 - our own QR output, not untrusted input
    assert root.tag.endswith("svg") and int(float(root.get("width", "0"))) > 100
