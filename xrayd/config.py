"""The daemon config: TOML, root-owned, never editable through the API.

Everything that names a file root writes or a program root runs lives here and only here.
`Config` only stores values; `load()` reads and checks a file and raises `ConfigError`.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """The daemon config file is missing, unreadable, or has a bad key or value."""


@dataclass(frozen=True)
class Units:
    """systemd unit behind each restart target."""

    xray: str = "xray.service"
    ui: str = "xray-report-gateway.service"
    nextjs: str = "xray-report-ui.service"


@dataclass(frozen=True)
class Config:
    socket: Path = Path("/run/xray-report/xrayd.sock")
    socket_group: str = "xray-report"
    socket_mode: int = 0o660
    xray_config: Path = Path("/usr/local/etc/xray/config.json")
    xray_bin: Path = Path("/usr/local/bin/xray")
    xray_api: str = "127.0.0.1:10085"
    access_log: Path = Path("/var/log/xray/access.log")
    usage_dir: Path = Path("/var/log/xray/usage")
    data_dir: Path = Path("/opt/xray-report-ui/data")
    cron_file: Path = Path("/etc/cron.d/xray-report-collector")
    systemctl: Path = Path("/usr/bin/systemctl")
    stats_poll_seconds: float = 10.0
    tests_dir: Path = Path("/opt/xray-report-ui/tests")
    ports: tuple[int, ...] = (3000, 8787, 443)
    units: Units = field(default_factory=Units)
    subprocess_timeout: float = 10.0

    @property
    def backups_dir(self) -> Path:
        return self.data_dir / "backups"


_PATH_KEYS = {f.name for f in dataclasses.fields(Config) if f.type in ("Path", Path)}


def _check_api(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"xray_api: expected HOST:PORT, got {value!r}")
    return value


def _convert(key: str, value: Any) -> Any:
    """Check one top-level value's type and turn it into the field's type."""
    if key in _PATH_KEYS:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{key}: expected a path string, got {value!r}")
        path = Path(value)
        if not path.is_absolute():
            raise ConfigError(f"{key}: expected an absolute path, got {value!r}")
        return path
    if key == "socket_group":
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{key}: expected a group name, got {value!r}")
        return value
    if key == "socket_mode":
        if isinstance(value, str):
            try:
                value = int(value, 8)
            except ValueError:
                raise ConfigError(f'{key}: expected an octal mode like "0660"') from None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0o777:
            raise ConfigError(f"{key}: expected a mode between 0 and 0777, got {value!r}")
        return value
    if key == "xray_api":
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected HOST:PORT, got {value!r}")
        return _check_api(value)
    if key in ("stats_poll_seconds", "subprocess_timeout"):
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigError(f"{key}: expected a positive number, got {value!r}")
        return float(value)
    if key == "ports":
        if not isinstance(value, list) or not all(
            isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536 for p in value
        ):
            raise ConfigError(f"{key}: expected a list of port numbers, got {value!r}")
        return tuple(value)
    if key == "units":
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table")
        names = {f.name for f in dataclasses.fields(Units)}
        for name, unit in value.items():
            if name not in names:
                raise ConfigError(f"units.{name}: unknown key (known: {', '.join(sorted(names))})")
            if not isinstance(unit, str) or not unit or "/" in unit or unit.startswith("-"):
                raise ConfigError(f"units.{name}: expected a unit name, got {unit!r}")
        return Units(**value)
    raise AssertionError(key)  # pragma: no cover - every field is handled above


def from_mapping(raw: dict[str, Any]) -> Config:
    """Build a Config from parsed TOML, naming the first bad key."""
    known = {f.name for f in dataclasses.fields(Config)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            raise ConfigError(f"{key}: unknown key (known: {', '.join(sorted(known))})")
        values[key] = _convert(key, value)
    return Config(**values)


def load(path: Path) -> Config:
    """Read and check a daemon config file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return from_mapping(raw)


def to_toml(config: Config) -> str:
    """Render a Config as TOML (the sandbox and the installer write daemon configs)."""
    lines = []
    for f in dataclasses.fields(Config):
        value = getattr(config, f.name)
        if f.name == "units":
            continue
        if isinstance(value, Path | str):
            lines.append(f"{f.name} = {_toml_str(str(value))}")
        elif f.name == "socket_mode":
            lines.append(f'{f.name} = "{value:04o}"')
        elif isinstance(value, tuple):
            lines.append(f"{f.name} = [{', '.join(str(v) for v in value)}]")
        else:
            lines.append(f"{f.name} = {value}")
    lines.append("")
    lines.append("[units]")
    for f in dataclasses.fields(Units):
        lines.append(f"{f.name} = {_toml_str(getattr(config.units, f.name))}")
    return "\n".join(lines) + "\n"


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
