"""Operator settings: `data_dir/settings.json`, editable through `settings.update`.

One schema says every key, its type, range and default. Paths and programs are never
settings (they live in the daemon config). Every module reads settings through
`Settings.get(section, key)`, so a change takes effect without restarting xrayd.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xrayd import atomic
from xrayd.errors import BadRequest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Field:
    """One setting: its default, and a check that returns a sentence when a value is wrong."""

    default: Any
    check: Callable[[Any], str | None]


def _int(lo: int, hi: int) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int):
            return "must be a whole number"
        return None if lo <= v <= hi else f"must be between {lo} and {hi}"

    return check


def _enum(*allowed: str) -> Callable[[Any], str | None]:
    return lambda v: None if v in allowed else f"must be one of: {', '.join(allowed)}"


def _pattern(regex: str, what: str, *, nullable: bool = False) -> Callable[[Any], str | None]:
    compiled = re.compile(regex)

    def check(v: Any) -> str | None:
        if v is None and nullable:
            return None
        if isinstance(v, str) and compiled.fullmatch(v):
            return None
        return f"must be {what}" + (" or null" if nullable else "")

    return check


def _timezone(v: Any) -> str | None:
    from zoneinfo import available_timezones

    if v == "local" or (isinstance(v, str) and v in available_timezones()):
        return None
    return 'must be "local" or an IANA time zone such as "Europe/Moscow"'


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = rf"(?=.{{1,253}}\Z)({_LABEL}\.)*{_LABEL}|\[[0-9A-Fa-f:.]{{2,45}}\]"
_CRON_FIELD = r"(\*|\d{1,2}(-\d{1,2})?(,\d{1,2}(-\d{1,2})?)*)(/\d{1,2})?"

SCHEMA: dict[str, dict[str, Field]] = {
    "ui": {
        "public_host": Field(None, _pattern(_HOST, "a host name or [IPv6] address", nullable=True)),
        "timezone": Field("local", _timezone),
    },
    "xray": {
        "inbound_tag": Field(None, _pattern(r"[^\x00-\x1f]{1,128}", "an inbound tag", nullable=True)),
        "revoke": Field("restart", _enum("restart", "api_only")),
    },
    "live": {
        "window_seconds": Field(300, _int(30, 3600)),
        "retention_hours": Field(24, _int(1, 168)),
    },
    "collector": {
        "schedule": Field(
            "17 0 * * *", _pattern(rf"{_CRON_FIELD}( {_CRON_FIELD}){{4}}", "a 5-field cron schedule")
        ),
    },
    "backups": {
        "keep": Field(50, _int(1, 1000)),
    },
    "events": {
        "keep_files": Field(5, _int(1, 100)),
        "max_file_mb": Field(10, _int(1, 1024)),
    },
    "auth": {
        "session_hours": Field(12, _int(1, 720)),
        "login_max_failures": Field(5, _int(1, 100)),
        "login_window_seconds": Field(300, _int(10, 86400)),
    },
}


def defaults() -> dict[str, dict[str, Any]]:
    return {section: {k: f.default for k, f in fields.items()} for section, fields in SCHEMA.items()}


def validate_patch(patch: Any) -> list[str]:
    """Every problem of a partial settings object, as `section.key: sentence` lines."""
    if not isinstance(patch, dict):
        return ["settings must be an object of sections"]
    problems = []
    for section, values in patch.items():
        fields = SCHEMA.get(section)
        if fields is None:
            problems.append(f"{section}: unknown section (known: {', '.join(SCHEMA)})")
            continue
        if not isinstance(values, dict):
            problems.append(f"{section}: must be an object")
            continue
        for key, value in values.items():
            field = fields.get(key)
            if field is None:
                problems.append(f"{section}.{key}: unknown setting (known: {', '.join(fields)})")
            elif (why := field.check(value)) is not None:
                problems.append(f"{section}.{key}: {why}")
    return problems


class Settings:
    """The live settings of one daemon, loaded once and kept in memory; writes are atomic."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._values = defaults()
        self._lock = asyncio.Lock()
        self._listeners: list[Callable[[dict[str, Any]], None]] = []

    def load(self) -> None:
        """Read the file; a missing file means defaults, a broken one is an error to fix."""
        try:
            stored = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            raise ValueError(f"{self.path}: cannot read settings: {exc}") from None
        problems = validate_patch(stored)
        if problems:
            raise ValueError(f"{self.path}: " + "; ".join(problems))
        self._values = _merge(defaults(), stored)

    def get(self, section: str, key: str) -> Any:
        return self._values[section][key]

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return copy.deepcopy(self._values)

    def on_change(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """Call `listener(new_settings)` after every successful update."""
        self._listeners.append(listener)

    async def update(self, patch: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """Deep-merge a checked patch; return the new settings and the changed keys."""
        problems = validate_patch(patch)
        if problems:
            raise BadRequest(
                "Invalid settings: " + "; ".join(problems), error="invalid_settings", problems=problems
            )
        async with self._lock:
            merged = _merge(self.snapshot(), patch)
            changed = [
                f"{s}.{k}" for s, vals in merged.items() for k, v in vals.items() if self._values[s][k] != v
            ]
            if changed:
                await asyncio.to_thread(atomic.write_json, self.path, merged)
                self._values = merged
                for listener in self._listeners:
                    listener(self.snapshot())
        return self.snapshot(), changed


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    for section, values in patch.items():
        base[section].update(values)
    return base
