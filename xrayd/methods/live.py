"""live.* and users.stats: who is online, series and tops over the live buckets, all-time usage."""

from __future__ import annotations

import datetime as dt
import logging
import math
from typing import TYPE_CHECKING, Any

from xrayd import validate
from xrayd.errors import DomainError, InvalidParams
from xrayd.live.service import LiveService

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from xrayd.daemon import Daemon

METRICS = ("traffic", "conns")
SCOPES = ("global", "user")
RANKS = ("users", "domains")
MAX_POINTS = 10_080


def iso(unix: float) -> str:
    """ISO 8601 UTC, seconds: `2026-03-01T12:00:00Z`."""
    return dt.datetime.fromtimestamp(unix, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def register(d: Daemon) -> None:
    live = LiveService(d)
    d.lifespan(live.lifespan)
    d.before_xray_restart(live.poll_once)
    d.settings.on_change(lambda values: live.retention_changed(values["live"]["retention_hours"]))

    async def aliases() -> dict[str, str | None]:
        """Aliases by lowercased email; none when the users module cannot say (no managed
        inbound, say): the live view goes on without names rather than failing."""
        users_list = d.methods.get("users.list")
        if users_list is None:
            return {}
        try:
            listed = await users_list()
        except DomainError as exc:
            log.warning("live view without aliases: users.list failed: %s", exc.message)
            return {}
        return {
            str(u["email"]).lower(): u.get("alias") or None
            for u in listed.get("users", [])
            if isinstance(u, dict) and u.get("email")
        }

    def checked_scope(scope: Any, user: Any) -> str | None:
        validate.choice("scope", scope, SCOPES)
        if scope == "global":
            return None
        if user is None:
            raise InvalidParams("user", "user is required when scope is user.")
        return validate.text("user", user, max_len=256)

    def checked_period(period: Any) -> int:
        retention = d.settings.get("live", "retention_hours") * 3600
        validate.integer("period", period, lo=60, hi=7 * 86400)
        if period > retention:
            raise InvalidParams(
                "period", f"period must not be longer than the live retention ({retention} s)."
            )
        return math.ceil(period / 60)

    async def now() -> dict[str, Any]:
        window = d.settings.get("live", "window_seconds")
        end = live.now_minute() + 1
        start = end - math.ceil(window / 60)
        rows = live.aggregates.now(start, end)
        names = await aliases()
        users = [
            {
                "email": r.email,
                "alias": names.get(r.email.lower()),
                "conns": r.conns,
                "ips": r.ips,
                "last_seen": iso(r.last_seen) if r.last_seen is not None else None,
                "top_domains": [{"domain": host, "conns": n} for host, n in r.top_domains],
                "uplink": r.uplink,
                "downlink": r.downlink,
            }
            for r in rows
        ]
        return {
            "users": users,
            "total": {
                "conns": sum(r.conns for r in rows),
                "users_online": len(rows),
                "uplink": sum(r.uplink for r in rows),
                "downlink": sum(r.downlink for r in rows),
                "unparsed": live.aggregates.unparsed,
                "untracked": live.aggregates.untracked,  # conns of emails past the tracking cap
                "rejected": live.aggregates.rejected(start, end),  # in the window
            },
            "window_seconds": window,
            "stats_ok": live.stats_ok,
            "timestamp": iso(live.clock),
        }

    async def series(
        metric: str = "traffic",
        period: int = 3600,
        granularity: int = 60,
        scope: str = "global",
        user: str | None = None,
    ) -> dict[str, Any]:
        validate.choice("metric", metric, METRICS)
        minutes = checked_period(period)
        validate.integer("granularity", granularity, lo=60, hi=86400)
        if granularity % 60:
            raise InvalidParams(
                "granularity", "granularity must be a whole number of minutes (a multiple of 60)."
            )
        email = checked_scope(scope, user)
        step = granularity // 60
        points = min(MAX_POINTS, math.ceil(minutes / step))
        end = (live.now_minute() // step + 1) * step
        start = end - points * step
        values = live.aggregates.series(metric, start, end, step, email)
        return {"series": [{"time": iso((start + i * step) * 60), "value": v} for i, v in enumerate(values)]}

    async def top(
        metric: str = "traffic",
        period: int = 3600,
        scope: str = "global",
        user: str | None = None,
        by: str = "users",
        limit: int = 10,
    ) -> dict[str, Any]:
        validate.choice("metric", metric, METRICS)
        minutes = checked_period(period)
        email = checked_scope(scope, user)
        validate.choice("by", by, RANKS)
        validate.integer("limit", limit, lo=1, hi=1000)
        end = live.now_minute() + 1
        start = end - minutes
        if by == "domains":
            ranked, overflow = live.aggregates.top_domains(start, end, email)
            return {"top": [{"domain": h, "value": n} for h, n in ranked[:limit]], "overflow": overflow}
        ranked_users = live.aggregates.top_users(metric, start, end)
        if email is not None:
            ranked_users = [(e, v) for e, v in ranked_users if e == email]
        return {"top": [{"user": e, "value": v} for e, v in ranked_users[:limit]]}

    async def users_stats() -> dict[str, Any]:
        usage = await live.usage_all_time()
        window = d.settings.get("live", "window_seconds")
        end = live.now_minute() + 1
        online = {r.email for r in live.aggregates.now(end - math.ceil(window / 60), end)}
        emails = set(usage) | online | set(await aliases())
        out = {}
        for email in sorted(emails):
            u = usage.get(email)
            last = live.aggregates.last_seen.get(email)
            if u is not None and u.last_seen is not None:
                last = max(last or 0.0, u.last_seen)
            up, down = (u.uplink, u.downlink) if u else (0, 0)
            out[email] = {
                "traffic": {"uplink": up, "downlink": down, "total": up + down},
                "conns": u.conns if u else 0,
                "isOnline": email in online,
                "last_seen": iso(last) if last is not None else None,
            }
        return {"stats": out}

    d.register("live.now", now)
    d.register("live.series", series)
    d.register("live.top", top)
    d.register("users.stats", users_stats)
