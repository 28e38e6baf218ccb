"""The config repository: config.json read (cached) and written (validated, backed up, atomic).

Reads are cached by the file's (device, inode, size, mtime), so a caller that lists users
many times a second costs one `stat` each. Every write holds `lock` (one lock for every
writer: users, restores, rollbacks, restarts), stages the new bytes beside the file, has
`xray run -test` check them (exit 23 → 422 with Xray's reason, nothing written), keeps the
current file in the backups folder, and only then renames the new one into place. Readers
see the old file or the new one, never part of either.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from xrayd.errors import Conflict, DomainError, Unavailable, Unprocessable
from xrayd.xray import configfile, jsonc
from xrayd.xray.backups import Backup, BackupStore
from xrayd.xray.commands import XrayCommands
from xrayd.xray.document import Doc

log = logging.getLogger(__name__)

ROLLBACK_REASON = "rollback"
ROLLBACK_TRIES = 10  # backups tried, newest first, before giving up on a rollback


@dataclass(frozen=True)
class Snapshot:
    """One version of config.json: parsed, as bytes, and the key it was read under."""

    doc: Doc
    raw: bytes
    key: configfile.Key
    had_comments: bool


class ConfigChanged(Conflict):
    """config.json changed on disk (by hand) while a write was being checked."""

    ERROR = "config_changed"


def parse(raw: bytes, what: str) -> tuple[Doc, bool]:
    try:
        return jsonc.loads(raw.decode("utf-8"))
    except (jsonc.JsoncError, UnicodeDecodeError) as exc:
        raise Unprocessable(f"{what} is not valid JSON: {exc}", error="xray_config_unparsable") from None


class ConfigRepository:
    def __init__(self, path: Path, commands: XrayCommands, backups: BackupStore) -> None:
        self.path = path
        self.commands = commands
        self.backups = backups
        self.lock = asyncio.Lock()
        self._cache: Snapshot | None = None

    async def current(self) -> Snapshot:
        """The file as it is now (re-read only when its key changed)."""
        key = configfile.current_key(self.path)
        cached = self._cache
        if cached is not None and cached.key == key:
            return cached
        try:
            raw, key = await asyncio.to_thread(configfile.read, self.path)
        except OSError as exc:
            raise Unavailable(
                f"Cannot read Xray's config {self.path}: {exc.strerror}.", error="xray_config_unreadable"
            ) from None
        doc, had_comments = await asyncio.to_thread(parse, raw, str(self.path))
        snapshot = Snapshot(doc, raw, key, had_comments)
        self._cache = snapshot
        return snapshot

    async def write(self, base: Snapshot, doc: Doc, reason: str) -> Backup:
        """Replace `base` (what the caller read under the lock) by `doc`; return the backup."""
        data = await asyncio.to_thread(jsonc.dumps, doc)
        return await self._replace(base, data, reason, doc, had_comments=False)

    async def write_raw(self, base: Snapshot, raw: bytes, reason: str) -> Backup:
        """Replace `base` by exact bytes (a restored backup keeps its comments)."""
        doc, had_comments = parse(raw, "The backup")
        return await self._replace(base, raw, reason, doc, had_comments)

    async def _replace(
        self, base: Snapshot, data: bytes, reason: str, doc: Doc, had_comments: bool
    ) -> Backup:
        if not self.lock.locked():
            raise RuntimeError("config.json is written only under the repository lock")
        target = self.path.resolve()  # a symlinked config.json stays a symlink
        staged = await asyncio.to_thread(configfile.stage, target, data)
        try:
            await self.commands.test(staged.path)
            if configfile.current_key(target) != base.key:
                raise ConfigChanged(
                    "config.json changed on disk while this change was being checked; try again.",
                )
            backup = await asyncio.to_thread(self.backups.save, base.raw, reason)
            await asyncio.to_thread(configfile.commit, staged, target)
        except BaseException:
            configfile.discard(staged.path)
            raise
        self._cache = Snapshot(doc, data, staged.key, had_comments)
        return backup

    async def rollback(self) -> tuple[str, Backup] | None:
        """Put back the newest backup that Xray accepts and that differs from the current file
        (skipping configs kept because they failed). Returns (restored name, the backup of the
        file it replaced), or None when no backup qualifies. Caller holds the lock."""
        current = await self.current()
        candidates = [b for b in await asyncio.to_thread(self.backups.list) if b.reason != ROLLBACK_REASON]
        for backup in candidates[:ROLLBACK_TRIES]:
            try:
                raw = await asyncio.to_thread(self.backups.read, backup.name)
                if raw == current.raw:
                    continue
                saved = await self.write_raw(current, raw, ROLLBACK_REASON)
            except DomainError as exc:
                log.warning("rollback: backup %s is not usable: %s", backup.name, exc.message)
                continue
            return backup.name, saved
        return None
