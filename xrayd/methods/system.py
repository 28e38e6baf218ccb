"""system.*: the daemon's own health."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from xrayd import __version__

if TYPE_CHECKING:
    from xrayd.daemon import Daemon


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def register(d: Daemon) -> None:
    async def ping() -> dict[str, Any]:
        return {"ok": True, "message": "pong", "ts": now_iso(), "version": __version__}

    d.register("system.ping", ping)
