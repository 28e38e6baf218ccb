"""xray.*: Xray's config and REALITY parameters, and restarts. Also wires users.* and backups.*,
which share this module's XrayStack (one config repository, one lock for every write)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from xrayd import validate
from xrayd.methods import backups, users
from xrayd.xray import document, reality
from xrayd.xray.stack import XrayStack

if TYPE_CHECKING:
    from xrayd.daemon import Daemon


def register(d: Daemon) -> None:
    stack = XrayStack(d)
    d.lifespan(stack.lifespan)

    async def config(reveal: bool = False) -> dict[str, Any]:
        """config.json as parsed; REALITY private keys masked unless reveal=true."""
        snapshot = await stack.repo.current()
        shown = snapshot.doc if validate.boolean("reveal", reveal) else document.masked(snapshot.doc)
        return {"config": shown, "masked": not reveal, "had_comments": snapshot.had_comments}

    async def reality_() -> dict[str, Any]:
        _, managed = await stack.users.managed()
        return reality.params(managed, d.settings.get("ui", "public_host"))

    async def restart() -> dict[str, Any]:
        """Check the file on disk, restart Xray, roll back when it does not come up."""
        await stack.restarter.restart_checked()
        return {"ok": True, "message": "restarted"}

    d.register("xray.config", config)
    d.register("xray.reality", reality_)
    d.register("xray.restart", restart)
    users.register(d, stack)
    backups.register(d, stack)
