"""`xrayd install` / `xrayd uninstall`: put xray-report on a server, idempotently.

Install creates the socket group and the gateway's user, writes a default daemon config
(never over an existing one), makes the gateway's first token (never over an existing one),
renders the two units from `systemd/*.in` with the config's paths, and enables and starts
them. Uninstall stops and removes the units and nothing else: the config, the data, the
token and the accounts stay.

Everything happens under `root` (`/` on a server; a folder in tests, with the systemctl
stand-in), with the same code: paths are prefixed, and users are made with shadow-utils'
`--prefix`.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from xrayd import atomic
from xrayd import config as config_mod
from xrayd.config import Config

TEMPLATES = Path(__file__).resolve().parent.parent / "systemd"
XRAYD_UNIT = "xrayd.service"
GATEWAY_UNIT = Config().units.ui
GATEWAY_USER = "xray-report-gw"
GATEWAY_STATE = "xray-report-gateway"  # StateDirectory=, under /var/lib
CONFIG_FILE = Path("/etc/xray-report/xrayd.toml")
LISTEN = "127.0.0.1:8787"


@dataclass(frozen=True)
class Target:
    """Where to install: `root` prefixes every path; `bin_dir` holds xrayd and xray-gateway;
    `templates` holds the unit templates (the source tree's systemd/)."""

    root: Path = Path("/")
    bin_dir: Path = Path(sys.executable).parent
    systemctl: Path = Path("/usr/bin/systemctl")
    templates: Path = TEMPLATES

    def path(self, absolute: Path) -> Path:
        return self.root / absolute.relative_to("/")

    @property
    def unit_dir(self) -> Path:
        return self.path(Path("/etc/systemd/system"))

    @property
    def token_file(self) -> Path:
        return self.path(Path("/var/lib") / GATEWAY_STATE / "token")


def prefixed(config: Config, target: Target) -> Config:
    """The default config with every path under the target root (the identity on `/`)."""
    paths = {
        f.name: target.path(getattr(config, f.name))
        for f in dataclasses.fields(Config)
        if isinstance(getattr(config, f.name), Path) and f.name != "systemctl"
    }
    return dataclasses.replace(config, **paths, systemctl=target.systemctl)


def read_write_paths(config: Config) -> list[Path]:
    """Exactly the folders xrayd writes: its data, the usage files, Xray's config folder (atomic
    writes rename inside it) and the cron file's folder. The socket's is its RuntimeDirectory."""
    return sorted({config.data_dir, config.usage_dir, config.xray_config.parent, config.cron_file.parent})


def runtime_dir(socket: Path, target: Target) -> str:
    run = target.path(Path("/run"))
    try:
        return str(socket.parent.relative_to(run))
    except ValueError:
        raise ValueError(f"socket: {socket} must be under /run for systemd's RuntimeDirectory") from None


def render_units(config: Config, config_file: Path, target: Target) -> dict[str, str]:
    """The two unit files, filled in from the templates."""
    values = {
        "XRAYD": str(target.bin_dir / "xrayd"),
        "GATEWAY": str(target.bin_dir / "xray-gateway"),
        "CONFIG": str(config_file),
        "SOCKET": str(config.socket),
        "SOCKET_GROUP": config.socket_group,
        "RUNTIME_DIR": runtime_dir(config.socket, target),
        "READ_WRITE": " ".join(f"-{p}" for p in read_write_paths(config)),
        "XRAYD_UNIT": XRAYD_UNIT,
        "GATEWAY_USER": GATEWAY_USER,
        "STATE_DIR": GATEWAY_STATE,
        "TOKEN_FILE": str(target.token_file),
        "LISTEN": LISTEN,
    }
    units = {}
    for name in (XRAYD_UNIT, GATEWAY_UNIT):
        text = (target.templates / f"{name}.in").read_text(encoding="utf-8")
        for key, value in values.items():
            text = text.replace(f"@{key}@", value)
        units[name] = text
    return units


def _names(file: Path) -> set[str]:
    try:
        return {line.split(":", 1)[0] for line in file.read_text(encoding="utf-8").splitlines() if line}
    except FileNotFoundError:
        return set()


def _prefix(target: Target) -> list[str]:
    return [] if target.root == Path("/") else ["--prefix", str(target.root)]


def ensure_accounts(config: Config, target: Target, run: Callable[[list[str]], None]) -> list[str]:
    """The socket group and the gateway's system user (in that group); what was created."""
    made = []
    if config.socket_group not in _names(target.path(Path("/etc/group"))):
        run(["groupadd", *_prefix(target), "--system", config.socket_group])
        made.append(f"group {config.socket_group}")
    if GATEWAY_USER not in _names(target.path(Path("/etc/passwd"))):
        run(
            [
                "useradd",
                *_prefix(target),
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                "--groups",
                config.socket_group,
                GATEWAY_USER,
            ]
        )
        made.append(f"user {GATEWAY_USER}")
    return made


def _run(argv: list[str]) -> None:
    subprocess.run(argv, check=True, timeout=60)


def install(
    target: Target, *, run: Callable[[list[str]], None] = _run, out: Callable[[str], None] = print
) -> None:
    config_file = target.path(CONFIG_FILE)
    if config_file.exists():
        config = config_mod.load(config_file)
        out(f"kept the daemon config {config_file}")
    else:
        config = prefixed(Config(), target)
        config_file.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        atomic.write_text(config_file, config_mod.to_toml(config), mode=0o600)
        out(f"wrote the daemon config {config_file}")
    for made in ensure_accounts(config, target, run):
        out(f"created {made}")
    for folder in (config.data_dir, config.usage_dir):
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    token_file = target.token_file
    if token_file.exists():
        out(f"kept the gateway token {token_file}")
    else:
        token_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        token = secrets.token_urlsafe(32)
        atomic.write_text(token_file, token + "\n", mode=0o600)
        if os.geteuid() == 0 and target.root == Path("/"):
            import pwd

            user = pwd.getpwnam(GATEWAY_USER)
            for path in (token_file.parent, token_file):
                os.chown(path, user.pw_uid, user.pw_gid)
        out(f"made the first API token (admin scope) in {token_file}:\n  {token}")
    target.unit_dir.mkdir(parents=True, exist_ok=True)
    for name, text in render_units(config, config_file, target).items():
        atomic.write_text(target.unit_dir / name, text, mode=0o644)
        out(f"wrote {target.unit_dir / name}")
    systemctl = str(target.systemctl)
    run([systemctl, "daemon-reload"])
    run([systemctl, "enable", "--now", XRAYD_UNIT, GATEWAY_UNIT])
    out(f"enabled and started {XRAYD_UNIT} and {GATEWAY_UNIT}")
    out("next: xrayctl admin set-password (the browser login), xrayctl tokens create NAME")


def uninstall(
    target: Target, *, run: Callable[[list[str]], None] = _run, out: Callable[[str], None] = print
) -> None:
    systemctl = str(target.systemctl)
    units = [name for name in (GATEWAY_UNIT, XRAYD_UNIT) if (target.unit_dir / name).exists()]
    if units:
        run([systemctl, "disable", "--now", *units])
    for name in units:
        (target.unit_dir / name).unlink()
        out(f"removed {target.unit_dir / name}")
    run([systemctl, "daemon-reload"])
    out("kept the daemon config, the data, the gateway token and the accounts")
