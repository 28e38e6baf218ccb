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
from operator import itemgetter

import numpy as np

from xrayd.live.buckets import DETAIL_MINUTES, MAX_USERS, Minute, Open, Sealed
from xrayd.live.scan import Tally

_email = itemgetter(0)
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
            bucket = self._open[minute] = Open() if sealed is None else sealed.reopen(self._emails)
        return bucket

    def add_tally(self, tally: Tally, now: Minute) -> None:
        self.unparsed += tally.unparsed
        for minute, pairs in tally.conns.items():  # TODO array-native
            bucket = self._bucket(minute, now)
            if bucket is not None:
                bucket.add_pairs(pairs)
                for email in set(map(_email, pairs)) - self._uid.keys():
                    if self._register(email) is None:
                        self.untracked += sum(n for (e, _), n in pairs.items() if e == email)
        for minute, n in tally.rejected.items():
            bucket = self._bucket(minute, now)
            if bucket is not None:
                bucket.rejected += n
        for (minute, email, ip), _ in tally.ips.items():
            seen = self._ips.setdefault(email, {})
            if ip in seen or len(seen) < IPS_PER_USER:
                seen[ip] = max(minute, seen.get(ip, minute))
        for email, when in tally.last_seen.items():
            if when > self.last_seen.get(email, float("-inf")):
                self.last_seen[email] = when

    def add_traffic(self, deltas: Mapping[str, tuple[int, int]], minute: Minute, when: float) -> None:
        """Traffic read from Xray's counters at `when` (unix time; `minute` is its minute)."""
        bucket = self._bucket(minute, minute)
        assert bucket is not None
        for email, (up, down) in deltas.items():
            if (up or down) and self._register(email) is not None:
                bucket.add_traffic(email, up, down)
                if when > self.last_seen.get(email, float("-inf")):
                    self.last_seen[email] = when

    def seal(self, through: Minute, now: Minute) -> None:
        """Seal open buckets before `through`; age those older than the detail window; drop
        expired buckets and IPs."""
        for minute in [m for m in self._open if m < through]:
            self._sealed[minute] = Sealed(self._open.pop(minute), self._uid)
            self._fresh.add(minute)
        for minute in [m for m in self._fresh if m <= now - DETAIL_MINUTES]:
            self._fresh.discard(minute)
            if minute in self._sealed:
                self._sealed[minute].age()
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

    def _buckets(self, start: Minute, end: Minute) -> Iterator[tuple[Minute, Open | Sealed]]:
        """Every bucket with start <= minute < end."""
        for buckets in (self._sealed, self._open):
            if end - start < len(buckets):
                for minute in range(start, end):
                    if minute in buckets:
                        yield minute, buckets[minute]
            else:
                for minute, bucket in buckets.items():
                    if start <= minute < end:
                        yield minute, bucket

    def now(self, start: Minute, end: Minute) -> list[UserNow]:
        """Everyone with connections or traffic in [start, end), busiest first."""
        conns: Counter[str] = Counter()
        up: Counter[str] = Counter()
        down: Counter[str] = Counter()
        domains: dict[str, Counter[str]] = {}
        for _, bucket in self._buckets(start, end):
            if isinstance(bucket, Open):
                for (email, host), n in bucket.pairs.items():
                    conns[email] += n
                    domains.setdefault(email, Counter())[host] += n
                conns.update(bucket.spill_users)
                for email, (u, d) in bucket.traffic.items():
                    up[email] += u
                    down[email] += d
                continue
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
            values[(minute - start) // step] += self._value(bucket, metric, email, uid)
        return values

    def _value(self, bucket: Open | Sealed, metric: str, email: str | None, uid: int | None) -> int:
        if isinstance(bucket, Sealed):
            if uid is not None:
                return bucket.value_of(uid, metric)
            return bucket.total_conns if metric == "conns" else bucket.total_traffic
        if metric == "conns":
            pairs = bucket.pairs.items()
            if email is None:
                return sum(n for _, n in pairs) + sum(bucket.spill_users.values())
            return sum(n for (e, _), n in pairs if e == email) + bucket.spill_users.get(email, 0)
        if email is None:
            return sum(u + d for u, d in bucket.traffic.values())
        return sum(bucket.traffic.get(email, (0, 0)))

    def top_users(self, metric: str, start: Minute, end: Minute) -> list[tuple[str, int]]:
        """Users by connections or traffic over [start, end), largest first, zeros left out."""
        totals = np.zeros(len(self._emails), dtype=np.float64)
        extra: Counter[str] = Counter()
        for _, bucket in self._buckets(start, end):
            if isinstance(bucket, Sealed):
                weights = bucket.conns if metric == "conns" else bucket.traffic()
                totals += np.bincount(bucket.uids, weights=weights, minlength=totals.size)[: totals.size]
            else:
                for email in {e for e, _ in bucket.pairs} | set(bucket.spill_users) | set(bucket.traffic):
                    extra[email] += self._value(bucket, metric, email, None)
        for email, n in extra.items():
            if (uid := self._uid.get(email)) is not None:
                totals[uid] += n
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
            if isinstance(bucket, Open):
                for (e, host), n in bucket.pairs.items():
                    if email is None or e == email:
                        counts[host] += n
                if email is None:
                    counts.update(bucket.domains_spilled)
                    overflow += bucket.domain_overflow
                else:
                    overflow += bucket.spill_users.get(email, 0)
            elif email is None:
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
