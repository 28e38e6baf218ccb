"""The rolling aggregates behind live.now, live.series and live.top.

Minutes are Unix minutes. Lines arrive as Tallies from the log tailer and traffic as deltas
from the stats poller; both land in the bucket of their minute. Buckets outside
[now - retention, now + FUTURE] are never made (a wrong clock or a hostile timestamp cannot
grow memory). `seal` closes the buckets that will get no more lines, ages the old ones and
drops the expired ones; the service calls it about every poll.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import repeat

import numpy as np

from xrayd.live.buckets import DETAIL_MINUTES, MAX_USERS, Minute, Open, Sealed
from xrayd.live.pairs import Pairs
from xrayd.live.scan import Tally

FUTURE = 5  # minutes ahead of the clock a line may be stamped and still count
TOP_DOMAINS_PER_USER = 5
IPS_PER_USER = 32


@dataclass(frozen=True)
class UserNow:
    """One user's figures over the live window."""

    email: str
    conns: int
    uplink: int
    downlink: int
    ips: list[str]
    top_domains: list[tuple[str, int]]
    last_seen: float | None


class Aggregates:
    def __init__(self, retention_minutes: int) -> None:
        self.retention = retention_minutes
        self._open: dict[Minute, Open] = {}
        self._sealed: dict[Minute, Sealed] = {}
        self._uid: dict[str, int] = {}
        self._emails: list[str] = []
        self.last_seen: dict[str, float] = {}  # email -> unix time of the latest line
        self._ips: dict[str, dict[str, Minute]] = {}  # email -> source IP -> last minute seen
        self.unparsed = 0  # lines not understood since start
        self.untracked = 0  # connections of emails beyond MAX_USERS
        self._fresh: set[Minute] = set()  # sealed, not aged yet
        self._pruned = 0  # the minute of the last pass over every bucket
        self._hosts: tuple[list[str], np.ndarray, int] = ([], np.zeros(0, dtype=object), 0)

    # --- adding ------------------------------------------------------------------------

    def _register(self, email: str) -> int | None:
        uid = self._uid.get(email)
        if uid is None and len(self._emails) < MAX_USERS:
            uid = self._uid[email] = len(self._emails)
            self._emails.append(email)
        return uid

    def _bucket(self, minute: Minute, now: Minute) -> Open | None:
        if not now - self.retention < minute <= now + FUTURE:
            return None
        bucket = self._open.get(minute)
        if bucket is None:
            sealed = self._sealed.pop(minute, None)
            bucket = self._open[minute] = Open() if sealed is None else sealed.reopen()
        return bucket

    def add_tally(self, tally: Tally, now: Minute) -> None:
        self.unparsed += tally.unparsed
        self._add_pairs(tally.pairs, now)
        for minute, n in tally.rejected.items():
            bucket = self._bucket(minute, now)
            if bucket is not None:
                bucket.add_rejected(n)
        for (minute, email, ip), _ in tally.ips.items():
            seen = self._ips.setdefault(email, {})
            if ip in seen or len(seen) < IPS_PER_USER:
                seen[ip] = max(minute, seen.get(ip, minute))
        for email, when in tally.last_seen.items():
            if when > self.last_seen.get(email, float("-inf")):
                self.last_seen[email] = when

    def _add_pairs(self, pairs: Pairs, now: Minute) -> None:
        """Each minute's rows to its bucket as one piece. Python works per minute and per
        email of the tally, never per row: a backfill has about as many rows as lines."""
        lo, hi = np.searchsorted(pairs.minute, [now - self.retention, now + FUTURE], side="right").tolist()
        if lo == hi:
            return
        uids = self._uids_of(pairs.emails, pairs.email[lo:hi])[pairs.email]
        tracked = uids >= 0
        everyone = bool(tracked.all())
        if not everyone:
            self.untracked += int(pairs.count[lo:hi][~tracked[lo:hi]].sum())
        hosts = self._host_array(pairs.hosts)
        for minute, rows in pairs.runs():
            bucket = self._bucket(minute, now)
            if bucket is not None:
                keep = rows if everyone else np.flatnonzero(tracked[rows]) + rows.start
                bucket.add_pairs(uids[keep], pairs.host[keep], pairs.count[keep], hosts)

    def _host_array(self, hosts: list[str]) -> np.ndarray:
        """A tally's host table as an object array. The scanner hands the same list with every
        tally, and only ever appends to it: that one is filled in as it grows, in an array with
        room to spare, so that the buckets get one table and merge pieces without renumbering
        (the slots past the names are None, and no host id points there)."""
        table, names, filled = self._hosts
        if table is not hosts:
            names, filled = np.array(hosts, dtype=object), len(hosts)
        elif len(hosts) > filled:
            if len(hosts) > names.size:
                names = np.concatenate([names[:filled], np.full(2 * len(hosts) - filled, None)])
            names[filled : len(hosts)] = hosts[filled:]
            filled = len(hosts)
        self._hosts = (hosts, names, filled)
        return names

    def _uids_of(self, emails: list[str], rows: np.ndarray) -> np.ndarray:
        """The uid of each of a tally's emails (-1 past MAX_USERS); the new emails that have
        rows among `rows` (indexes into `emails`) are registered."""
        uids = np.fromiter(map(self._uid.get, emails, repeat(-1)), np.int64, len(emails))
        new = np.flatnonzero(uids < 0)
        if new.size:
            present = np.zeros(len(emails), dtype=bool)
            present[rows] = True
            for i in new[present[new]].tolist():
                uid = self._register(emails[i])
                if uid is not None:
                    uids[i] = uid
        return uids

    def add_traffic(self, deltas: Mapping[str, tuple[int, int]], minute: Minute, when: float) -> None:
        """Traffic read from Xray's counters at `when` (unix time; `minute` is its minute)."""
        bucket = self._bucket(minute, minute)
        assert bucket is not None
        for email, (up, down) in deltas.items():
            if (up or down) and (uid := self._register(email)) is not None:
                bucket.add_traffic(uid, up, down)
                if when > self.last_seen.get(email, float("-inf")):
                    self.last_seen[email] = when

    def seal(self, through: Minute, now: Minute) -> None:
        """Seal open buckets before `through`; age those older than the detail window; drop
        expired buckets and IPs."""
        for minute in [m for m in self._open if m < through]:
            self._sealed[minute] = self._open.pop(minute).sealed()
            self._fresh.add(minute)
        for minute in sorted(m for m in self._fresh if m <= now - DETAIL_MINUTES):
            self._fresh.discard(minute)
            if minute in self._sealed:
                self._sealed[minute].age(self._sealed.get(minute - 1))
        if now == self._pruned:
            return  # the passes below over every bucket and IP: once a minute is enough
        self._pruned = now
        floor = now - self.retention
        for buckets in (self._open, self._sealed):
            for minute in [m for m in buckets if m <= floor]:
                del buckets[minute]
        for email in list(self._ips):
            seen = {ip: m for ip, m in self._ips[email].items() if m > now - DETAIL_MINUTES}
            if seen:
                self._ips[email] = seen
            else:
                del self._ips[email]

    # --- reading -----------------------------------------------------------------------

    def _buckets(self, start: Minute, end: Minute) -> Iterator[tuple[Minute, Sealed]]:
        """Every bucket with start <= minute < end, open ones as their sealed view."""
        for buckets in (self._sealed, self._open):
            if end - start < len(buckets):
                found = ((m, buckets[m]) for m in range(start, end) if m in buckets)
            else:
                found = ((m, b) for m, b in buckets.items() if start <= m < end)
            for minute, bucket in found:
                yield minute, bucket if isinstance(bucket, Sealed) else bucket.sealed()

    def rejected(self, start: Minute, end: Minute) -> int:
        """Connections Xray rejected over [start, end) (failed handshakes: probes, old keys)."""
        return sum(bucket.rejected for _, bucket in self._buckets(start, end))

    def now(self, start: Minute, end: Minute) -> list[UserNow]:
        """Everyone with connections or traffic in [start, end), busiest first."""
        conns: Counter[str] = Counter()
        up: Counter[str] = Counter()
        down: Counter[str] = Counter()
        domains: dict[str, Counter[str]] = {}
        for _, bucket in self._buckets(start, end):
            emails = [self._emails[uid] for uid in bucket.uids.tolist()]
            for email, n in zip(emails, bucket.conns.tolist(), strict=True):
                conns[email] += n
            if bucket.up is not None:
                for email, u, d in zip(emails, bucket.up.tolist(), bucket.down.tolist(), strict=True):
                    up[email] += u
                    down[email] += d
            for uid, host, n in zip(
                bucket.pair_uids.tolist(), bucket.pair_hosts, bucket.pair_counts.tolist(), strict=True
            ):
                domains.setdefault(self._emails[uid], Counter())[host] += n
        active = {e for e, n in conns.items() if n} | {e for e in up if up[e] or down[e]}
        rows = [
            UserNow(
                email=email,
                conns=conns[email],
                uplink=up[email],
                downlink=down[email],
                ips=[
                    ip
                    for ip, m in sorted(self._ips.get(email, {}).items(), key=lambda kv: -kv[1])
                    if m >= start
                ],
                top_domains=domains.get(email, Counter()).most_common(TOP_DOMAINS_PER_USER),
                last_seen=self.last_seen.get(email),
            )
            for email in active
        ]
        rows.sort(key=lambda r: (-(r.uplink + r.downlink), -r.conns, r.email))
        return rows

    def series(self, metric: str, start: Minute, end: Minute, step: int, email: str | None) -> list[int]:
        """Sum of `metric` per step of `step` minutes from start to end, zeros included."""
        values = [0] * ((end - start) // step)
        uid = self._uid.get(email) if email is not None else None
        if email is not None and uid is None:
            return values
        for minute, bucket in self._buckets(start, end):
            values[(minute - start) // step] += self._value(bucket, metric, uid)
        return values

    @staticmethod
    def _value(bucket: Sealed, metric: str, uid: int | None) -> int:
        if uid is not None:
            return bucket.value_of(uid, metric)
        return bucket.total_conns if metric == "conns" else bucket.total_traffic

    def top_users(self, metric: str, start: Minute, end: Minute) -> list[tuple[str, int]]:
        """Users by connections or traffic over [start, end), largest first, zeros left out."""
        totals = np.zeros(len(self._emails), dtype=np.float64)
        for _, bucket in self._buckets(start, end):
            weights = bucket.conns if metric == "conns" else bucket.traffic()
            totals += np.bincount(bucket.uids, weights=weights, minlength=totals.size)[: totals.size]
        ranked = [(self._emails[int(uid)], int(totals[uid])) for uid in np.flatnonzero(totals)]
        ranked.sort(key=lambda kv: (-kv[1], kv[0]))
        return ranked

    def top_domains(self, start: Minute, end: Minute, email: str | None) -> tuple[list[tuple[str, int]], int]:
        """Destinations by connections over [start, end) (of one user, or everyone), and the
        connections the per-bucket caps left unattributed."""
        counts: Counter[str] = Counter()
        overflow = 0
        uid = self._uid.get(email) if email is not None else None
        if email is not None and uid is None:
            return [], 0
        for _, bucket in self._buckets(start, end):
            if uid is None:
                counts.update(dict(zip(bucket.domain_hosts, bucket.domain_counts.tolist(), strict=True)))
                overflow += bucket.domain_overflow
            else:
                mine = bucket.pair_uids == uid
                for host, n in zip(bucket.pair_hosts[mine], bucket.pair_counts[mine].tolist(), strict=True):
                    counts[host] += n
                overflow += bucket.value_of(uid, "conns") - int(bucket.pair_counts[mine].sum(dtype=np.uint64))
        return counts.most_common(), overflow

    @property
    def emails(self) -> list[str]:
        return list(self._emails)
