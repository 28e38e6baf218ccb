"""Dashboards: sums over a window of daily usage files, from the parsed-file cache.

Sync and CPU-bound: callers run `build` in a worker thread. A window is the `days` dates
that end on `end` (inclusive); dates without a file count as zero and say so
(`collected: false`) in the series.
"""

from __future__ import annotations

import datetime as dt
import heapq
from collections.abc import Mapping
from operator import itemgetter
from typing import Any

from xrayd.usage import files
from xrayd.usage.cache import Day, UsageCache

TOP_DOMAINS = 20


def window(end: dt.date, days: int) -> list[dt.date]:
    """The `days` dates ending on `end`, oldest first."""
    return [end - dt.timedelta(days=n) for n in range(days - 1, -1, -1)]


_NEVER = 1 << 62  # the `first` of a user with no connection yet: later than any moment


def _moment(date: dt.date) -> int:
    """Seconds from year 1 to the start of `date`: a day's times become comparable ints."""
    return date.toordinal() * 86400


def _stamp(moment: int) -> str:
    days, seconds = divmod(moment, 86400)
    return (dt.datetime.fromordinal(days) + dt.timedelta(seconds=seconds)).isoformat()


class _User:
    """A user's sums over the window; first and last connection as `_moment` + seconds."""

    __slots__ = ("connections", "days", "downlink", "first", "last", "unique_ips", "uplink")

    def __init__(self) -> None:
        self.uplink = self.downlink = self.connections = self.unique_ips = self.days = 0
        self.first, self.last = _NEVER, -1

    def add(self, base: int, up: int, down: int, conns: int, ips: int, first: int, last: int) -> None:
        """Add one day's row; `base` is the day's `_moment`, times are seconds after midnight."""
        self.uplink += up
        self.downlink += down
        self.connections += conns
        self.days += 1
        if ips > self.unique_ips:
            self.unique_ips = ips
        if first != files.NO_TIME and base + first < self.first:
            self.first = base + first
        if last != files.NO_TIME and base + last > self.last:
            self.last = base + last

    def row(self, email: str, alias: str | None) -> dict[str, Any]:
        return {
            "email": email,
            "alias": alias,
            "uplink": self.uplink,
            "downlink": self.downlink,
            "traffic": self.uplink + self.downlink,
            "connections": self.connections,
            "unique_ips": self.unique_ips,
            "days_active": self.days,
            "first_seen": None if self.first == _NEVER else _stamp(self.first),
            "last_seen": None if self.last < 0 else _stamp(self.last),
        }


def _series_point(
    date: dt.date, up: int, down: int, conns: int, users: int, collected: bool
) -> dict[str, Any]:
    return {
        "date": date.isoformat(),
        "uplink": up,
        "downlink": down,
        "traffic": up + down,
        "connections": conns,
        "users": users,
        "collected": collected,
    }


def _top(counts: Mapping[int, int], name: Any, limit: int) -> list[dict[str, Any]]:
    """The `limit` largest counts, ties broken by name, so the order never depends on history."""
    best = heapq.nlargest(limit, counts.items(), key=itemgetter(1))
    if len(best) == limit:
        least = best[-1][1]
        best = [item for item in counts.items() if item[1] >= least]
    ranked = sorted(((name(k), n) for k, n in best), key=lambda item: (-item[1], item[0]))
    return [{"domain": domain, "connections": n} for domain, n in ranked[:limit]]


def _all_users(days: list[tuple[dt.date, Day | None]]) -> tuple[list[dict[str, Any]], dict[int, _User]]:
    series, users = [], {}
    for date, day in days:
        if day is None:
            series.append(_series_point(date, 0, 0, 0, 0, False))
            continue
        series.append(
            _series_point(
                date, sum(day.uplink), sum(day.downlink), sum(day.connections), len(day.users), True
            )
        )
        base = _moment(date)
        for uid, up, down, conns, ips, first, last in zip(
            day.users,
            day.uplink,
            day.downlink,
            day.connections,
            day.unique_ips,
            day.first_seen,
            day.last_seen,
            strict=True,
        ):
            acc = users.get(uid)
            if acc is None:
                acc = users[uid] = _User()
            acc.add(base, up, down, conns, ips, first, last)
    return series, users


def _all_domains(cache: UsageCache, days: list[tuple[dt.date, Day | None]]) -> list[dict[str, Any]]:
    counts: dict[int, int] = {}
    get = counts.get
    for _, day in days:
        if day is not None:
            for domain, n in zip(day.domains, day.domain_connections, strict=True):
                counts[domain] = get(domain, 0) + n
    return _top(counts, cache.domains.name, TOP_DOMAINS)


def _one_user(
    cache: UsageCache, days: list[tuple[dt.date, Day | None]], uid: int | None
) -> tuple[list[dict[str, Any]], dict[int, _User], list[dict[str, Any]]]:
    series, users, domains = [], {}, {}
    for date, day in days:
        index = day.row(uid) if day is not None and uid is not None else None
        if day is None or index is None or uid is None:
            series.append(_series_point(date, 0, 0, 0, 0, day is not None))
            continue
        values = (
            day.uplink[index],
            day.downlink[index],
            day.connections[index],
            day.unique_ips[index],
            day.first_seen[index],
            day.last_seen[index],
        )
        series.append(_series_point(date, *values[:3], 1, True))
        users.setdefault(uid, _User()).add(_moment(date), *values)
        for domain, n in cache.user_domains(date, uid).items():
            domains[domain] = domains.get(domain, 0) + n
    return series, users, _top(domains, str, TOP_DOMAINS)


def build(
    cache: UsageCache,
    end: dt.date,
    days: int,
    *,
    user: str | None = None,
    directory: Mapping[str, str | None] | None = None,
) -> dict[str, Any]:
    """The dashboard of the `days` dates ending on `end`, for everyone or for one `user`.

    `directory` maps the configured users' lowercased emails to their aliases: it names the
    rows, and configured users with no usage in the window get a row of zeros.
    """
    directory = directory or {}
    dates = window(end, days)
    loaded = [(date, cache.day(date)) for date in dates]
    if user is None:
        series, users = _all_users(loaded)
        top = _all_domains(cache, loaded)
        wanted = directory.keys()
    else:
        user = user.lower()
        series, users, top = _one_user(cache, loaded, cache.emails.id_of(user))
        wanted = directory.keys() & {user}
    table = [
        acc.row(cache.emails.name(uid), directory.get(cache.emails.name(uid))) for uid, acc in users.items()
    ]
    seen = {row["email"] for row in table}
    table += [_User().row(email, directory[email]) for email in sorted(wanted - seen)]
    table.sort(key=lambda row: (-row["traffic"], -row["connections"], row["email"]))
    uplink = sum(point["uplink"] for point in series)
    downlink = sum(point["downlink"] for point in series)
    return {
        "from": dates[0].isoformat(),
        "to": dates[-1].isoformat(),
        "days": days,
        "user": user,
        "collected_days": sum(point["collected"] for point in series),
        "totals": {
            "uplink": uplink,
            "downlink": downlink,
            "traffic": uplink + downlink,
            "connections": sum(point["connections"] for point in series),
            "users": len(users),
        },
        "series": series,
        "users": table,
        "top_domains": top,
    }
