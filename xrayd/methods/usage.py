"""usage.*: the dates with usage files, and dashboards over them (xrayd.usage.dashboard)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from xrayd import validate
from xrayd.errors import DomainError, NotFound
from xrayd.usage import dashboard, files
from xrayd.usage.cache import UsageCache

if TYPE_CHECKING:
    from xrayd.daemon import Daemon

log = logging.getLogger(__name__)

MAX_DAYS = 3660


async def _directory(d: Daemon) -> dict[str, str | None]:
    """Configured users (lowercased email → alias) from users.list, or none if it is not there.

    A dashboard still answers when the users module fails: its rows just have no aliases.
    """
    users_list = d.methods.get("users.list")
    if users_list is None:
        return {}
    try:
        result = await users_list()
    except DomainError as exc:
        log.warning("usage dashboard without aliases: users.list failed: %s", exc.message)
        return {}
    return {
        u["email"].lower(): u.get("alias")
        for u in result.get("users", [])
        if isinstance(u, dict) and isinstance(u.get("email"), str)
    }


async def _presence(d: Daemon, directory: dict[str, str | None]) -> dict[str, int | None]:
    """How many configured users are online now and how many are not; null when unknown."""
    live_now = d.methods.get("live.now")
    if live_now is None or not directory:
        return {"online": None, "offline": None}
    try:
        result = await live_now()
    except DomainError as exc:
        log.warning("usage dashboard without presence: live.now failed: %s", exc.message)
        return {"online": None, "offline": None}
    online = {
        u["email"].lower()
        for u in result.get("users", [])
        if isinstance(u, dict) and isinstance(u.get("email"), str) and u.get("online", True)
    } & directory.keys()
    return {"online": len(online), "offline": len(directory) - len(online)}


def register(d: Daemon) -> None:
    cache = UsageCache(d.config.usage_dir)

    async def dashboard_of(end: dt.date, days: int, user: str | None = None) -> dict[str, Any]:
        directory = await _directory(d)
        result = await asyncio.to_thread(dashboard.build, cache, end, days, user=user, directory=directory)
        result.update(await _presence(d, directory))
        return result

    async def dates() -> dict[str, Any]:
        found = await asyncio.to_thread(files.list_dates, d.config.usage_dir)
        return {"dates": [date.isoformat() for date in found]}

    async def dashboard_(days: int = 7, user: str | None = None) -> dict[str, Any]:
        """The last `days` collected dates: the window ends on the newest file (today if none)."""
        validate.integer("days", days, lo=1, hi=MAX_DAYS)
        if user == "":
            user = None
        if user is not None:
            validate.text("user", user, max_len=320)
        found = await asyncio.to_thread(files.list_dates, d.config.usage_dir)
        end = found[0] if found else dt.date.today()
        return await dashboard_of(end, days, user)

    async def dashboard_for_date(date: str, mode: str = "daily", window_days: int = 7) -> dict[str, Any]:
        day = validate.date("date", date)
        validate.choice("mode", mode, ("daily", "cumulative"))
        validate.integer("window_days", window_days, lo=1, hi=MAX_DAYS)
        if not await asyncio.to_thread(files.path_for(d.config.usage_dir, day).is_file):
            raise NotFound(f"There is no usage data for {day.isoformat()}.", error="usage_date_not_found")
        result = await dashboard_of(day, 1 if mode == "daily" else window_days)
        result.update(date=day.isoformat(), mode=mode, window_days=window_days)
        return result

    d.register("usage.dates", dates)
    d.register("usage.dashboard", dashboard_)
    d.register("usage.dashboard_for_date", dashboard_for_date)
