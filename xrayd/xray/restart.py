"""Restarting Xray: the one way every module does it, with a rollback when Xray stays down.

A restart first lets the traffic ledger read Xray's counters (`prepare_xray_restart`), then
runs `systemctl restart UNIT` and watches `systemctl is-active` until the unit has been
active for `settle` seconds (Xray's unit is Type=simple: it reads `active` at once and may
fail a moment later on a bad config), or fails, or the timeout passes. When Xray is not
active, the newest backup that Xray accepts is put back, Xray is restarted once more, an
error event says what happened, and the caller gets 500 `xray_restart_failed`.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING

from xrayd import proc
from xrayd.errors import Internal
from xrayd.xray.repository import ConfigRepository

if TYPE_CHECKING:
    from xrayd.daemon import Daemon

WHY = {
    "manual": "an operator asked for it",
    "revoke": "to cut the open connections of a removed user",
    "api_unreachable": "Xray's API could not apply a change",
    "no_live_api": "config.json gives no way to apply changes live",
    "restore": "a backup was restored",
}
_DOWN = ("failed", "inactive", "deactivating")


class Restarter:
    def __init__(
        self,
        d: Daemon,
        repo: ConfigRepository,
        *,
        timeout: float = 15.0,
        settle: float = 1.0,
        poll: float = 0.2,
    ) -> None:
        self.d = d
        self.repo = repo
        self.systemctl: Path = d.config.systemctl
        self.unit = d.config.units.xray
        self.timeout = timeout
        self.settle = settle
        self.poll = poll

    async def restart_checked(self) -> None:
        """`xray.restart`: refuse a config Xray would not start with, then restart."""
        async with self.repo.lock:
            await self.repo.commands.test(self.repo.path)
            await self.restart("manual")

    async def restart(self, reason: str) -> None:
        """Restart Xray and make sure it runs; roll back when it does not. Hold the repo lock."""
        if not self.repo.lock.locked():
            raise RuntimeError("Xray is restarted only under the repository lock")
        failure = await self._restart_once()
        if failure is None:
            await self.d.event(
                "xray_restarted", f"Xray restarted: {WHY[reason]}.", service="xray", data={"reason": reason}
            )
            return
        rolled = await self.repo.rollback()
        if rolled is None:
            message = (
                f"Xray is not active after a restart ({failure}), and no backup that Xray accepts "
                "is left to roll back to."
            )
            await self.d.event(
                "xray_restart_failed",
                message,
                severity="error",
                service="xray",
                data={"reason": reason, "failure": failure},
            )
            raise Internal(message, error="xray_restart_failed", active=False)
        restored, saved = rolled
        again = await self._restart_once()
        state = "Xray is active again" if again is None else f"Xray is still not active ({again})"
        message = (
            f"Xray was not active after a restart ({failure}). config.json was rolled back to backup "
            f"{restored}; the config that failed is kept as backup {saved.name}. {state}."
        )
        await self.d.event(
            "config_rolled_back",
            message,
            severity="error",
            service="xray",
            data={
                "reason": reason,
                "failure": failure,
                "restored": restored,
                "kept": saved.name,
                "active": again is None,
            },
        )
        raise Internal(message, error="xray_restart_failed", rolled_back_to=restored, active=again is None)

    async def _restart_once(self) -> str | None:
        """One `systemctl restart`; None when Xray is then active, else why not."""
        await self.d.prepare_xray_restart()
        result = await proc.run([self.systemctl, "restart", self.unit], timeout=self.repo.commands.timeout)
        if not result.ok:
            return f"systemctl restart failed: {result.reason()}"
        return await self._wait_active()

    async def _wait_active(self) -> str | None:
        deadline = time.monotonic() + self.timeout
        active_since: float | None = None
        while True:
            state = await self.state()
            now = time.monotonic()
            if state == "active":
                active_since = now if active_since is None else active_since
                if now - active_since >= self.settle:
                    return None
            elif state in _DOWN:
                return f"the unit is {state}"
            else:
                active_since = None
            if now >= deadline:
                return f"the unit is {state}, not active, after {self.timeout:g} seconds"
            await asyncio.sleep(self.poll)

    async def state(self) -> str:
        """`systemctl is-active UNIT`: active, activating, failed, inactive, …"""
        result = await proc.run([self.systemctl, "is-active", self.unit], timeout=self.repo.commands.timeout)
        return result.stdout.strip().splitlines()[0] if result.stdout.strip() else "unknown"
