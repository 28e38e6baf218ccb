"""Fixture configs for the xray tests: the public templates filled in, and ways to install one
in a sandbox so that the fake Xray runs it."""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from conftest import FIXTURES, start_daemon

from client.aio import XraydClient
from xrayd import atomic
from xrayd.daemon import Daemon
from xrayd.sandbox.builder import Sandbox
from xrayd.sandbox.standin_state import init_state, read_state, update_state

CONFIGS = FIXTURES / "configs"
PRIVATE_KEY = "ADqgfJN12IYgAYgIxrOunpvUEWo4pBx5eHXlkRwPk2s"  # Xray-core issue #5160's example pair
PUBLIC_KEY = "3oxSydKPtqIS6fnKXcfSzni5oPUNdoVaHlstWlMkrBA"
REALITY_TEMPLATE = "VLESS-TCP-XTLS-Vision-REALITY__config_server.jsonc"
REFERENCE = "reference__vless_reality_vision_api_stats.json"


def text_of(name: str) -> str:
    return (CONFIGS / name).read_text(encoding="utf-8")


def filled(name: str) -> str:
    """A template with its placeholders filled in, comments kept: ids, dest, names, key."""
    text = text_of(name)
    text = re.sub(r'"id": ""', lambda _: f'"id": "{uuid.uuid4()}"', text)
    text = text.replace('"dest": ""', '"dest": "www.microsoft.com:443"')
    text = re.sub(r'"serverNames": \[\s*""', '"serverNames": ["www.microsoft.com"', text)
    text = text.replace('"privateKey": ""', f'"privateKey": "{PRIVATE_KEY}"')
    return text.replace("{{ password }}", "example-password")


def api_port(sandbox: Sandbox) -> int:
    return int(sandbox.config.xray_api.rpartition(":")[2])


def reference(sandbox: Sandbox) -> dict[str, Any]:
    """The reference REALITY + Vision config, its API inbound on the sandbox's API port."""
    doc = json.loads(text_of(REFERENCE))
    doc["inbounds"][0]["port"] = api_port(sandbox)
    doc["log"] = {"loglevel": "warning"}
    return doc


def reality_inbound(tag: str | None, port: int = 443, network: str = "tcp", **stream: Any) -> dict[str, Any]:
    """A VLESS + REALITY inbound like the ones 3x-ui and Marzban add to their templates."""
    inbound: dict[str, Any] = {
        "port": port,
        "protocol": "vless",
        "settings": {
            "clients": [{"id": str(uuid.uuid4()), "email": "first@example.org", "flow": ""}],
            "decryption": "none",
        },
        "streamSettings": {
            "network": network,
            "security": "reality",
            "realitySettings": {
                "dest": "www.microsoft.com:443",
                "serverNames": ["www.microsoft.com", "microsoft.com"],
                "privateKey": PRIVATE_KEY,
                "shortIds": ["", "0123456789abcdef"],
            },
            **stream,
        },
    }
    if tag is not None:
        inbound["tag"] = tag
    return inbound


def install(sandbox: Sandbox, config: str | dict[str, Any]) -> Path:
    """Write `config` (text or a document) as Xray's config.json and start the fake Xray on it."""
    path = sandbox.config.xray_config
    text = config if isinstance(config, str) else json.dumps(config, indent=2)
    atomic.write_text(path, text, mode=0o644)
    init_state(sandbox.state_dir, path)
    return path


@contextlib.asynccontextmanager
async def running(
    sandbox: Sandbox, config: str | dict[str, Any] | None = None, settings: dict[str, Any] | None = None
) -> AsyncIterator[tuple[Daemon, XraydClient]]:
    """xrayd in this loop on `config` (installed first when given) with `settings` merged in."""
    if config is not None:
        install(sandbox, config)
    if settings is not None:
        path = sandbox.config.data_dir / "settings.json"
        stored = json.loads(path.read_text()) if path.exists() else {}
        for section, values in settings.items():
            stored.setdefault(section, {}).update(values)
        atomic.write_json(path, stored)
    d = Daemon(sandbox.config, shutdown_grace=5)
    task = await start_daemon(d)
    try:
        async with XraydClient(str(sandbox.config.socket)) as client:
            yield d, client
    finally:
        d.request_stop()
        await task


def running_users(sandbox: Sandbox, tag: str) -> dict[str, dict[str, Any]]:
    """{email_lower: client} the fake Xray holds in memory for inbound `tag`."""
    return read_state(sandbox.state_dir)["inbounds"].get(tag, {})


def restarts(sandbox: Sandbox) -> int:
    return read_state(sandbox.state_dir)["restarts"]


def set_knob(sandbox: Sandbox, **knobs: Any) -> None:
    update_state(sandbox.state_dir, lambda state: state.update(knobs))


async def events(client: XraydClient, type: str) -> list[dict[str, Any]]:
    return (await client.call("events.list", {"type": type}))["events"]
