"""Operator settings: `data_dir/settings.json`, editable through `settings.update`.

One schema says every key, its type, range and default. Paths and programs are never
settings (they live in the daemon config): no field here names a file or a program, and no
value of one is ever used as a path. Every module reads settings through
`Settings.get(section, key)`, so a change takes effect without restarting xrayd.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xrayd import atomic
from xrayd.errors import BadRequest

log = logging.getLogger(__name__)

Check = Callable[[Any], str | None]
MAX_PROBLEMS = 20  # problems listed in one error; a hostile patch may have thousands
MAX_NAME_SHOWN = 64  # characters of an unknown key echoed back in a message


@dataclass(frozen=True)
class Field:
    """One setting: its default, and a check that returns a sentence when a value is wrong."""

    default: Any
    check: Check


def _int(lo: int, hi: int) -> Check:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int):
            return "must be a whole number"
        return None if lo <= v <= hi else f"must be between {lo} and {hi}"

    return check


def _enum(*allowed: str) -> Check:
    return lambda v: None if isinstance(v, str) and v in allowed else f"must be one of: {', '.join(allowed)}"


def _nullable(check: Check) -> Check:
    return lambda v: None if v is None else (None if (why := check(v)) is None else f"{why}, or null")


def _pattern(regex: str, what: str, *, max_len: int) -> Check:
    compiled = re.compile(regex)

    def check(v: Any) -> str | None:
        if isinstance(v, str) and len(v) <= max_len and compiled.fullmatch(v):
            return None
        return f"must be {what}"

    return check


# control, format (bidi overrides, zero-width), surrogate, private-use and unassigned
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _printable(text: str) -> bool:
    return all(unicodedata.category(c) not in _UNPRINTABLE for c in text)


def _text(max_len: int) -> Check:
    """Printable text in any script, emoji included."""

    def check(v: Any) -> str | None:
        if isinstance(v, str) and 1 <= len(v) <= max_len and _printable(v):
            return None
        return f"must be 1 to {max_len} characters of printable text"

    return check


_ZONE = re.compile(r"[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9][A-Za-z0-9_+-]*){0,2}")


def _timezone(v: Any) -> str | None:
    from zoneinfo import available_timezones

    if v == "local":
        return None
    if isinstance(v, str) and len(v) <= 64 and _ZONE.fullmatch(v) and v in available_timezones():
        return None
    return 'must be "local" or an IANA time zone such as "Europe/Moscow"'


# cron's five fields and their ranges (day of week: 0 and 7 are both Sunday)
_CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_CRON_ITEM = re.compile(r"(\*|([0-9]{1,2})(?:-([0-9]{1,2}))?)(?:/([0-9]{1,2}))?")


def _cron(v: Any) -> str | None:
    """A numeric five-field cron schedule whose every number is in its field's range."""
    sentence = 'must be a 5-field numeric cron schedule such as "17 0 * * *"'
    if not isinstance(v, str) or len(v) > 100:
        return sentence
    fields = v.split(" ")
    if len(fields) != 5:
        return sentence
    for field, (lo, hi) in zip(fields, _CRON_RANGES, strict=True):
        for item in field.split(","):
            m = _CRON_ITEM.fullmatch(item)
            if m is None:
                return sentence
            first, last, step = (None if g is None else int(g) for g in m.group(2, 3, 4))
            if first is not None and not (lo <= first <= hi and (last is None or first <= last <= hi)):
                return f"{sentence}; {field!r} is out of range {lo}-{hi}"
            if step == 0:
                return f"{sentence}; a step must be 1 or more"
    return None


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = rf"({_LABEL}\.)*{_LABEL}|\[[0-9A-Fa-f:.]{{2,45}}\]"

SCHEMA: dict[str, dict[str, Field]] = {
    "ui": {
        "public_host": Field(
            None,
            _nullable(_pattern(_HOST, "a host name (xn-- form for IDN) or an [IPv6] address", max_len=253)),
        ),
        "timezone": Field("local", _timezone),
    },
    "xray": {
        "inbound_tag": Field(None, _nullable(_text(128))),
        "revoke": Field("restart", _enum("restart", "api_only")),
    },
    "live": {
        "window_seconds": Field(300, _int(30, 3600)),
        "retention_hours": Field(24, _int(1, 168)),
    },
    "collector": {
        "schedule": Field("17 0 * * *", _cron),
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
    "tests": {
        # below the gateway's 600-second wait for long calls, so a run always gets its answer
        "timeout_seconds": Field(300, _int(10, 540)),
    },
}


def defaults() -> dict[str, dict[str, Any]]:
    return {section: {k: f.default for k, f in fields.items()} for section, fields in SCHEMA.items()}


def _shown(name: str) -> str:
    """A key as a message may echo it: cut short, odd code points escaped."""
    cut = name[:MAX_NAME_SHOWN]
    shown = cut if _printable(cut) else cut.encode("ascii", "backslashreplace").decode("ascii")
    return shown + ("…" if len(name) > MAX_NAME_SHOWN else "")


def validate_patch(patch: Any) -> list[str]:
    """Every problem of a partial settings object, as `section.key: sentence` lines."""
    if not isinstance(patch, dict):
        return ["settings must be an object of sections"]
    problems = []
    for section, values in patch.items():
        fields = SCHEMA.get(section)
        if fields is None:
            problems.append(f"{_shown(section)}: unknown section (known: {', '.join(SCHEMA)})")
            continue
        if not isinstance(values, dict):
            problems.append(f"{section}: must be an object")
            continue
        for key, value in values.items():
            field = fields.get(key)
            if field is None:
                problems.append(f"{section}.{_shown(key)}: unknown setting (known: {', '.join(fields)})")
            elif (why := field.check(value)) is not None:
                problems.append(f"{section}.{key}: {why}")
    return problems


def _refuse(problems: list[str]) -> BadRequest:
    listed = problems[:MAX_PROBLEMS]
    more = len(problems) - len(listed)
    sentence = "Invalid settings: " + "; ".join(listed) + (f"; and {more} more." if more else ".")
    return BadRequest(sentence, error="invalid_settings", problems=listed)


class Settings:
    """The live settings of one daemon, loaded once and kept in memory; writes are atomic."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._values = defaults()
        self._lock = asyncio.Lock()
        self._listeners: list[Callable[[dict[str, Any]], None]] = []

    def load(self) -> None:
        """Read the file; a missing file means defaults, a broken one is an error to fix.

        Temp files of a write that a crash interrupted are removed: the file itself is
        always whole, the old one or the new one."""
        for stale in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        try:
            stored = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            raise ValueError(f"{self.path}: cannot read settings: {exc}") from None
        problems = validate_patch(stored)
        if problems:
            raise ValueError(f"{self.path}: " + "; ".join(problems[:MAX_PROBLEMS]))
        self._values = _merge(defaults(), stored)

    def get(self, section: str, key: str) -> Any:
        """The one accessor every module reads a setting through (always the current value)."""
        return self._values[section][key]

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """A copy callers may change: one level per section is enough, every value is a scalar
        (the schema allows nothing else), and it is ten times cheaper than a deep copy."""
        return {section: dict(values) for section, values in self._values.items()}

    def on_change(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """Call `listener(new_settings)` after every successful update."""
        self._listeners.append(listener)

    async def update(self, patch: Any) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """Deep-merge a checked patch and write it; return the new settings and the changes
        as `{"section.key": {"from": old, "to": new}}`. A patch that changes nothing writes
        nothing."""
        problems = validate_patch(patch)
        if problems:
            raise _refuse(problems)
        async with self._lock:
            merged = _merge(self.snapshot(), patch)
            changes = {
                f"{s}.{k}": {"from": self._values[s][k], "to": v}
                for s, vals in merged.items()
                for k, v in vals.items()
                if self._values[s][k] != v
            }
            if changes:
                await asyncio.to_thread(atomic.write_json, self.path, merged)
                self._values = merged
                for listener in self._listeners:
                    try:
                        listener(self.snapshot())
                    except Exception:  # the change is made and saved; a listener cannot undo it
                        log.exception("a settings listener failed")
            return self.snapshot(), changes


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    for section, values in patch.items():
        base[section].update(values)
    return base
