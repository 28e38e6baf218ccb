"""Dashboards: sums over a window of daily usage files, from the parsed-file cache.

Sync and CPU-bound: callers run `build` in a worker thread. A window is the `days` dates
that end on `end` (inclusive); dates without a file count as zero and say so
(`collected: false`) in the series.
"""

from __future__ import annotations

import datetime as dt
import heapq
from collections.abc import Callable, Iterable, Mapping
from operator import itemgetter
from typing import Any

from xrayd.usage import files
from xrayd.usage.cache import Day, UsageCache

TOP_DOMAINS = 20


def window(end: dt.date, days: int) -> list[dt.date]:
    """The `days` dates ending on `end`, oldest first."""
    return [end - dt.timedelta(days=n) for n in range(days - 1, -1, -1)]


_NEVER = 1 << 62  # the `first` of a user with no connection yet: later than any moment
Row = tuple[int, int, int, int, int, int, int]  # uid, uplink, downlink, connections, ips, first, last


def _moment(date: dt.date) -> int:
    """Seconds from year 1 to the start of `date`: a day's times become comparable ints."""
    return date.toordinal() * 86400


def _stamp(moment: int) -> str:
    days, seconds = divmod(moment, 86400)
    return (dt.datetime.fromordinal(days) + dt.timedelta(seconds=seconds)).isoformat()


class _Users:
    """Per-user sums over the window, in lists indexed by email id: the warm path's hot loop
    is a few list updates per user and day, no object or dict per user."""

    def __init__(self, size: int) -> None:
        self.uplink, self.downlink, self.connections = [0] * size, [0] * size, [0] * size
        self.unique_ips, self.days = [0] * size, [0] * size
        self.first, self.last = [_NEVER] * size, [-1] * size

    def add(self, date: dt.date, rows: Iterable[Row]) -> None:
        """Add one day's rows; over several days `unique_ips` keeps the highest daily figure."""
        base = _moment(date)
        uplink, downlink, connections, ips_, days = (
            self.uplink,
            self.downlink,
            self.connections,
            self.unique_ips,
            self.days,
        )
        first_, last_ = self.first, self.last
        for uid, up, down, conns, ips, first, last in rows:
            uplink[uid] += up
            downlink[uid] += down
            connections[uid] += conns
            days[uid] += 1
            if ips > ips_[uid]:
                ips_[uid] = ips
            if first != files.NO_TIME and base + first < first_[uid]:
                first_[uid] = base + first
            if last != files.NO_TIME and base + last > last_[uid]:
                last_[uid] = base + last

    def seen(self) -> list[int]:
        return [uid for uid, n in enumerate(self.days) if n]

    def row(self, uid: int, email: str, alias: str | None) -> dict[str, Any]:
        up, down = self.uplink[uid], self.downlink[uid]
        return {
            "email": email,
            "alias": alias,
            "uplink": up,
            "downlink": down,
            "traffic": up + down,
            "connections": self.connections[uid],
            "unique_ips": self.unique_ips[uid],
            "days_active": self.days[uid],
            "first_seen": None if self.first[uid] == _NEVER else _stamp(self.first[uid]),
            "last_seen": None if self.last[uid] < 0 else _stamp(self.last[uid]),
        }


def _zero_row(email: str, alias: str | None) -> dict[str, Any]:
    return _Users(1).row(0, email, alias)


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


def _top(counts: Iterable[tuple[Any, int]], name: Callable[[Any], str], limit: int) -> list[dict[str, Any]]:
    """The `limit` largest counts, ties broken by name, so the order never depends on history."""
    counts = [item for item in counts if item[1]]
    best = heapq.nlargest(limit, counts, key=itemgetter(1))
    if len(best) == limit:
        least = best[-1][1]
        best = [item for item in counts if item[1] >= least]
    ranked = sorted(((name(k), n) for k, n in best), key=lambda item: (-item[1], item[0]))
    return [{"domain": domain, "connections": n} for domain, n in ranked[:limit]]


def _all_users(
    cache: UsageCache, days: list[tuple[dt.date, Day | None]]
) -> tuple[list[dict[str, Any]], _Users, list[dict[str, Any]]]:
    series, users, domains = [], _Users(len(cache.emails)), [0] * len(cache.domains)
    for date, day in days:
        if day is None:
            series.append(_series_point(date, 0, 0, 0, 0, False))
            continue
        series.append(
            _series_point(
                date, sum(day.uplink), sum(day.downlink), sum(day.connections), len(day.users), True
            )
        )
        users.add(
            date,
            zip(
                day.users,
                day.uplink,
                day.downlink,
                day.connections,
                day.unique_ips,
                day.first_seen,
                day.last_seen,
                strict=True,
            ),
        )
        for domain, n in zip(day.domains, day.domain_connections, strict=True):
            domains[domain] += n
    return series, users, _top(enumerate(domains), cache.domains.name, TOP_DOMAINS)


def _one_user(
    cache: UsageCache, days: list[tuple[dt.date, Day | None]], uid: int | None
) -> tuple[list[dict[str, Any]], _Users, list[dict[str, Any]]]:
    series, users, domains = [], _Users(len(cache.emails)), {}
    for date, day in days:
        index = day.row(uid) if day is not None and uid is not None else None
        if day is None or index is None or uid is None:
            series.append(_series_point(date, 0, 0, 0, 0, day is not None))
            continue
        row = (
            uid,
            day.uplink[index],
            day.downlink[index],
            day.connections[index],
            day.unique_ips[index],
            day.first_seen[index],
            day.last_seen[index],
        )
        series.append(_series_point(date, *row[1:4], 1, True))
        users.add(date, [row])
        for domain, n in cache.user_domains(date, uid).items():
            domains[domain] = domains.get(domain, 0) + n
    return series, users, _top(domains.items(), str, TOP_DOMAINS)


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
        series, users, top = _all_users(cache, loaded)
        wanted = directory.keys()
    else:
        user = user.lower()
        series, users, top = _one_user(cache, loaded, cache.emails.id_of(user))
        wanted = directory.keys() & {user}
    seen = users.seen()
    emails = [cache.emails.name(uid) for uid in seen]
    table = [users.row(uid, email, directory.get(email)) for uid, email in zip(seen, emails, strict=True)]
    table += [_zero_row(email, directory[email]) for email in sorted(wanted - set(emails))]
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
            "users": len(seen),
        },
        "series": series,
        "users": table,
        "top_domains": top,
    }
