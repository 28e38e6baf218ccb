"""events.*: read the events log (every module writes it through `Daemon.event`)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from xrayd import validate

if TYPE_CHECKING:
    from xrayd.daemon import Daemon


def register(d: Daemon) -> None:
    async def list_(
        limit: int = 100,
        hours: float = 24,
        type: str | None = None,
        severity: str | None = None,
        service: str | None = None,
    ) -> dict[str, Any]:
        for name, value in (("type", type), ("severity", severity), ("service", service)):
            if value is not None:
                validate.text(name, value, max_len=64)
        return await asyncio.to_thread(
            d.events.list, limit=limit, hours=hours, type=type, severity=severity, service=service
        )

    async def stats(hours: float = 24) -> dict[str, Any]:
        return {"stats": await asyncio.to_thread(d.events.stats, hours=hours)}

    d.register("events.list", list_)
    d.register("events.stats", stats)
