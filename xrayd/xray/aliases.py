"""Aliases: xrayd's own names for users, in `data_dir/aliases.json`, keyed by lowercased email.

They live outside Xray's config so that renaming a user never touches Xray and the traffic
counters (keyed by email) keep their key. Kept in memory; every change is an atomic write.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from xrayd import atomic


class AliasStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.version = 0  # bumped on every change, so callers can cache what they derive
        self._values: dict[str, str] | None = None
        self._lock = asyncio.Lock()

    def _loaded(self) -> dict[str, str]:
        if self._values is None:
            try:
                stored = json.loads(self.path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                stored = {}
            except (OSError, ValueError) as exc:
                raise ValueError(f"{self.path}: cannot read aliases: {exc}") from None
            if not isinstance(stored, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in stored.items()
            ):
                raise ValueError(f"{self.path}: expected an object of email: alias")
            self._values = stored
        return self._values

    def load(self) -> None:
        """Read the file now, so a broken one stops the start instead of a later call."""
        self._loaded()

    def all(self) -> Mapping[str, str]:
        return MappingProxyType(self._loaded())

    def get(self, email: str) -> str | None:
        return self._loaded().get(email.lower())

    async def update(self, changes: Mapping[str, str | None]) -> None:
        """Set aliases (None or "" removes one); one write for all of them."""
        async with self._lock:
            values = dict(self._loaded())
            for email, alias in changes.items():
                if alias:
                    values[email.lower()] = alias
                else:
                    values.pop(email.lower(), None)
            if values != self._values:
                await asyncio.to_thread(atomic.write_json, self.path, values)
                self._values = values
                self.version += 1
