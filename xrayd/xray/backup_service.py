"""backups.*: list, preview, create, restore and delete config backups.

A restore is a config write like any other (under the repository lock, checked by
`xray run -test`, the current file backed up first, atomic), then a restart with rollback
when asked for. Every mutation records an event.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from xrayd import validate
from xrayd.errors import BadRequest
from xrayd.xray import backups, document
from xrayd.xray.backups import BackupStore
from xrayd.xray.repository import ConfigRepository, parse
from xrayd.xray.restart import Restarter

if TYPE_CHECKING:
    from xrayd.daemon import Daemon


class BackupService:
    def __init__(self, d: Daemon, repo: ConfigRepository, store: BackupStore, restarter: Restarter) -> None:
        self.d = d
        self.repo = repo
        self.store = store
        self.restarter = restarter

    async def list(self) -> dict[str, Any]:
        return {"backups": [b.to_json() for b in await asyncio.to_thread(self.store.list)]}

    async def preview(self, name: Any) -> dict[str, Any]:
        name = backups.check_name(name)
        raw = await asyncio.to_thread(self.store.read, name)
        doc, had_comments = await asyncio.to_thread(parse, raw, f"Backup {name}")
        current = await self.repo.current()
        preview = {
            **document.summary(doc),
            "has_comments": had_comments,
            "diff_vs_current": document.diff(current.doc, doc),
        }
        return {"preview": preview}

    async def create(self, reason: Any = "manual") -> dict[str, Any]:
        reason = backups.check_reason(reason)
        async with self.repo.lock:
            current = await self.repo.current()
            backup = await asyncio.to_thread(self.store.save, current.raw, reason)
        await self.d.event(
            "backup_created",
            f"Backup {backup.name} of config.json created.",
            service="backups",
            data={"name": backup.name},
        )
        return {"ok": True, "backup": backup.to_json()}

    async def restore(self, name: Any, confirm: Any = False, restart_xray: Any = True) -> dict[str, Any]:
        name = backups.check_name(name)
        if validate.boolean("confirm", confirm) is not True:
            raise BadRequest("Restoring replaces config.json: send confirm=true.", error="confirm_required")
        restart = validate.boolean("restart_xray", restart_xray)
        async with self.repo.lock:
            raw = await asyncio.to_thread(self.store.read, name)
            current = await self.repo.current()
            saved = await self.repo.write_raw(current, raw, "before_restore")
            await self.d.event(
                "backup_restored",
                f"config.json restored from backup {name}; the file it replaced is backup {saved.name}"
                + (
                    "; restarting Xray."
                    if restart
                    else "; Xray keeps running its old config until restarted."
                ),
                service="backups",
                data={"name": name, "previous": saved.name, "restart": restart},
            )
            if restart:
                await self.restarter.restart("restore")
        return {"ok": True, "restored": True, "name": name, "previous": saved.name, "restarted": restart}

    async def delete(self, name: Any) -> dict[str, Any]:
        name = backups.check_name(name)
        await asyncio.to_thread(self.store.delete, name)
        await self.d.event(
            "backup_deleted", f"Backup {name} deleted.", service="backups", data={"name": name}
        )
        return {"ok": True, "message": "backup_deleted"}
