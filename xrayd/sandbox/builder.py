"""Build a sandbox: everything xrayd needs, in one folder, pointing at the stand-ins.

Used by `xrayd demo` and by the tests, so both run the very code production runs; only
`xray_bin` and `systemctl` in the daemon config name stand-ins.
"""

from __future__ import annotations

import grp
import json
import os
import secrets
import socket
from dataclasses import dataclass, replace
from pathlib import Path

from xrayd import atomic
from xrayd.config import Config, Units, load, to_toml
from xrayd.sandbox.reality import new_key_pair, server_config
from xrayd.sandbox.standin_state import init_state
from xrayd.sandbox.standins import install_standins

DEMO_USERS = ["alice@example.org", "bob@example.org", "carol@example.org"]
DEMO_HOST = "vpn.example.org"
SANDBOX_FILE = "sandbox.json"


@dataclass(frozen=True)
class Sandbox:
    root: Path
    config: Config
    config_file: Path
    token: str
    token_file: Path
    state_dir: Path
    public_key: str


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build(
    root: Path,
    *,
    emails: list[str] | None = None,
    gateway_port: int = 8787,
    public_host: str | None = DEMO_HOST,
) -> Sandbox:
    """Lay out a fresh sandbox in `root` (created if missing) and return where things are."""
    root = root.resolve()
    dirs = {
        name: root / name for name in ("bin", "state", "etc", "log", "usage", "data", "run", "tests", "cron")
    }
    for folder in dirs.values():
        folder.mkdir(parents=True, exist_ok=True)
    xray_bin, systemctl = install_standins(dirs["bin"], dirs["state"])
    private_key, public_key = new_key_pair()
    api_port = free_port()
    access_log = dirs["log"] / "access.log"
    xray_config = dirs["etc"] / "config.json"
    doc = server_config(
        private_key=private_key,
        emails=DEMO_USERS if emails is None else emails,
        api_port=api_port,
        access_log=str(access_log),
    )
    atomic.write_json(xray_config, doc, mode=0o644)
    access_log.touch()
    units = Units()
    init_state(dirs["state"], xray_config, xray_unit=units.xray, units=(units.xray, units.ui, units.nextjs))
    config = replace(
        Config(),
        socket=dirs["run"] / "xrayd.sock",
        socket_group=grp.getgrgid(os.getegid()).gr_name,
        xray_config=xray_config,
        xray_bin=xray_bin,
        xray_api=f"127.0.0.1:{api_port}",
        access_log=access_log,
        usage_dir=dirs["usage"],
        data_dir=dirs["data"],
        cron_file=dirs["cron"] / "xray-report-collector",
        systemctl=systemctl,
        stats_poll_seconds=2.0,
        tests_dir=dirs["tests"],
        ports=(gateway_port, 443, 3000),
        units=units,
    )
    config_file = root / "xrayd.toml"
    atomic.write_text(config_file, to_toml(config))
    if public_host:
        atomic.write_json(dirs["data"] / "settings.json", {"ui": {"public_host": public_host}})
    token = secrets.token_urlsafe(32)
    token_file = root / "token"
    atomic.write_text(token_file, token + "\n")
    atomic.write_json(root / SANDBOX_FILE, {"public_key": public_key})
    return Sandbox(root, config, config_file, token, token_file, dirs["state"], public_key)


def open_or_build(root: Path, *, gateway_port: int = 8787) -> Sandbox:
    """Reopen the sandbox in `root` (users, events and backups kept), or build a new one.

    Reopening is a reboot of the sandbox machine: the fake Xray starts again from the
    config on disk, so its counters start at zero as a real restart's would."""
    root = root.resolve()
    if not (root / SANDBOX_FILE).exists():
        return build(root, gateway_port=gateway_port)
    config_file = root / "xrayd.toml"
    config = load(config_file)
    if config.ports[0] != gateway_port:
        config = replace(config, ports=(gateway_port, *config.ports[1:]))
        atomic.write_text(config_file, to_toml(config))
    install_standins(root / "bin", root / "state")
    units = config.units
    init_state(
        root / "state", config.xray_config, xray_unit=units.xray, units=(units.xray, units.ui, units.nextjs)
    )
    token_file = root / "token"
    public_key = json.loads((root / SANDBOX_FILE).read_text())["public_key"]
    return Sandbox(
        root, config, config_file, token_file.read_text().strip(), token_file, root / "state", public_key
    )
