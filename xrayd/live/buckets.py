"""Per-minute buckets of connections and traffic over the retention, bounded in memory.

A bucket is open (plain dicts, cheap to add to) while its minute may still get lines, then
sealed into numpy arrays: per user, connections and traffic in the narrowest unsigned type
that holds them (about 7-11 bytes a user-minute), and the (user, destination) pairs and
destinations with their connection counts. So memory grows with buckets x active keys,
never with lines, and a 24-hour top is a few vectorised sums.

Bounds: an open bucket keeps at most `OPEN_PAIRS` distinct (user, destination) pairs and
`OPEN_DOMAINS` destinations; what does not fit is still counted per user, and as
`domain_overflow`. A sealed bucket keeps every pair while it is within `DETAIL_MINUTES`
(live.now reads them); older buckets keep the top `OLD_PAIRS` pairs and `OLD_DOMAINS`
destinations, the rest counted as overflow, and merge uplink and downlink into one traffic
figure (only live.now, over at most an hour, tells them apart).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter

import numpy as np

Minute = int
Pair = tuple[str, str]  # (email, destination host)

DETAIL_MINUTES = 60  # the longest live.now window (settings allow 3600 s)
OPEN_PAIRS = 50_000
OPEN_DOMAINS = 20_000
OLD_PAIRS = 512
OLD_DOMAINS = 128
MAX_USERS = 65_535  # distinct emails tracked (Xray configs hold far fewer)


_email = itemgetter(0)
_host = itemgetter(1)


def _ids(values: Iterable[int], count: int) -> np.ndarray:
    return np.fromiter(values, dtype=np.int64, count=count)


def _sums(groups: np.ndarray, values: np.ndarray, size: int) -> list[int]:
    """Exact integer sums of `values` per group (bincount's float64 is exact below 2**53,
    above it we add in Python)."""
    if values.size and int(values.max()) * values.size >= 2**53:
        out = [0] * size
        for g, v in zip(groups.tolist(), values.tolist(), strict=True):
            out[g] += v
        return out
    return np.bincount(groups, weights=values, minlength=size).astype(np.uint64).tolist()


def narrow(values: Iterable[int] | np.ndarray) -> np.ndarray:
    """The values as the narrowest unsigned numpy array that holds them."""
    data = (
        values.astype(np.uint64) if isinstance(values, np.ndarray) else np.fromiter(values, dtype=np.uint64)
    )
    top = int(data.max()) if data.size else 0
    for dtype in (np.uint8, np.uint16, np.uint32):
        if top <= np.iinfo(dtype).max:
            return data.astype(dtype)
    return data


@dataclass
class Open:
    """A bucket still being filled."""

    pairs: Counter[Pair] = field(default_factory=Counter)
    spill_users: Counter[str] = field(default_factory=Counter)  # conns of pairs that did not fit
    domains_spilled: Counter[str] = field(default_factory=Counter)
    domain_overflow: int = 0
    traffic: dict[str, list[int]] = field(default_factory=dict)  # email -> [uplink, downlink]
    rejected: int = 0

    def add_pairs(self, pairs: Mapping[Pair, int]) -> None:
        mine = self.pairs
        if not mine and len(pairs) <= OPEN_PAIRS:
            mine.update(pairs)  # a fresh bucket: one C-level copy
            return
        if len(mine) + len(pairs) <= OPEN_PAIRS:
            get = mine.get
            for pair, n in pairs.items():
                mine[pair] = get(pair, 0) + n
            return
        for pair, n in pairs.items():
            if pair in mine or len(mine) < OPEN_PAIRS:
                mine[pair] += n
            else:
                self.spill_users[pair[0]] += n
                if pair[1] in self.domains_spilled or len(self.domains_spilled) < OPEN_DOMAINS:
                    self.domains_spilled[pair[1]] += n
                else:
                    self.domain_overflow += n

    def add_traffic(self, email: str, up: int, down: int) -> None:
        row = self.traffic.setdefault(email, [0, 0])
        row[0] += up
        row[1] += down


class Sealed:
    """A finished bucket as arrays. Rows are sorted by user id."""

    __slots__ = (
        "conns",
        "domain_counts",
        "domain_hosts",
        "domain_overflow",
        "down",
        "pair_counts",
        "pair_hosts",
        "pair_overflow",
        "pair_uids",
        "rejected",
        "total_conns",
        "total_traffic",
        "uids",
        "up",
    )

    def __init__(self, bucket: Open, uid_of: Mapping[str, int]) -> None:
        keys = list(bucket.pairs)
        uids = _ids(map(uid_of.get, map(_email, keys), repeat(-1)), len(keys))
        counts = np.fromiter(bucket.pairs.values(), dtype=np.uint64, count=len(keys))
        tracked = uids >= 0
        self.pair_uids = narrow(uids[tracked])
        self.pair_hosts = np.array(list(map(_host, keys)), dtype=object)[tracked]
        self.pair_counts = narrow(counts[tracked])
        self.pair_overflow = sum(bucket.spill_users.values())

        spill = list(bucket.spill_users.items())
        traffic = list(bucket.traffic.items())
        row_uids = np.concatenate(
            [
                uids[tracked],
                _ids(map(uid_of.get, map(_email, spill), repeat(-1)), len(spill)),
                _ids(map(uid_of.get, map(_email, traffic), repeat(-1)), len(traffic)),
            ]
        )
        zeros = np.zeros(len(spill) + len(traffic), dtype=np.uint64)
        conns = np.concatenate(
            [counts[tracked], np.fromiter((n for _, n in spill), np.uint64, len(spill)), zeros[len(spill) :]]
        )
        up = np.concatenate(
            [
                np.zeros(int(tracked.sum()) + len(spill), np.uint64),
                np.fromiter((t[1][0] for t in traffic), np.uint64, len(traffic)),
            ]
        )
        down = np.concatenate(
            [
                np.zeros(int(tracked.sum()) + len(spill), np.uint64),
                np.fromiter((t[1][1] for t in traffic), np.uint64, len(traffic)),
            ]
        )
        keep = row_uids >= 0
        self.uids, rows = np.unique(row_uids[keep], return_inverse=True)
        self.uids = narrow(self.uids)
        self.conns = narrow(_sums(rows, conns[keep], self.uids.size))
        self.up: np.ndarray | None = narrow(_sums(rows, up[keep], self.uids.size))
        self.down = narrow(_sums(rows, down[keep], self.uids.size))  # traffic (up + down) once aged

        domains = dict(bucket.domains_spilled)
        get = domains.get
        for (_, host), n in bucket.pairs.items():
            domains[host] = get(host, 0) + n
        self.domain_hosts = np.array(list(domains), dtype=object)
        self.domain_counts = narrow(domains.values())
        self.domain_overflow = bucket.domain_overflow
        self.rejected = bucket.rejected
        self.total_conns = int(self.conns.sum(dtype=np.uint64))
        self.total_traffic = int(self.up.sum(dtype=np.uint64)) + int(self.down.sum(dtype=np.uint64))

    def traffic(self) -> np.ndarray:
        """Uplink + downlink per row."""
        if self.up is None:
            return self.down
        return self.up.astype(np.uint64) + self.down

    def age(self) -> None:
        """Keep only what queries over old minutes read: one traffic figure, the top pairs and
        destinations (the rest counted as overflow)."""
        if self.up is None:
            return
        self.down = narrow(self.traffic().tolist())
        self.up = None
        if self.pair_counts.size > OLD_PAIRS:
            keep = np.argsort(self.pair_counts, kind="stable")[::-1][:OLD_PAIRS]
            self.pair_overflow += int(self.pair_counts.sum(dtype=np.uint64)) - int(
                self.pair_counts[keep].sum(dtype=np.uint64)
            )
            self.pair_uids, self.pair_hosts, self.pair_counts = (
                self.pair_uids[keep],
                self.pair_hosts[keep],
                self.pair_counts[keep],
            )
        if self.domain_counts.size > OLD_DOMAINS:
            keep = np.argsort(self.domain_counts, kind="stable")[::-1][:OLD_DOMAINS]
            self.domain_overflow += int(self.domain_counts.sum(dtype=np.uint64)) - int(
                self.domain_counts[keep].sum(dtype=np.uint64)
            )
            self.domain_hosts, self.domain_counts = self.domain_hosts[keep], self.domain_counts[keep]

    def reopen(self, email_of: list[str]) -> Open:
        """Back to an open bucket, to take a late line (rare: Xray writes in time order)."""
        bucket = Open(rejected=self.rejected, domain_overflow=self.domain_overflow)
        paired: Counter[int] = Counter()
        by_host: Counter[str] = Counter()
        for uid, host, n in zip(
            self.pair_uids.tolist(), self.pair_hosts, self.pair_counts.tolist(), strict=True
        ):
            bucket.pairs[email_of[uid], host] += n
            paired[uid] += n
            by_host[host] += n
        for host, n in zip(self.domain_hosts, self.domain_counts.tolist(), strict=True):
            if n > by_host[host]:
                bucket.domains_spilled[host] = n - by_host[host]
        up = self.up.tolist() if self.up is not None else [0] * self.uids.size
        for uid, conns, u, d in zip(
            self.uids.tolist(), self.conns.tolist(), up, self.down.tolist(), strict=True
        ):
            if conns > paired[uid]:
                bucket.spill_users[email_of[uid]] += conns - paired[uid]
            if u or d:
                bucket.traffic[email_of[uid]] = [u, d]
        return bucket

    def value_of(self, uid: int, metric: str) -> int:
        """One user's connections or traffic in this minute."""
        i = int(np.searchsorted(self.uids, uid))
        if i >= self.uids.size or int(self.uids[i]) != uid:
            return 0
        return int(self.conns[i]) if metric == "conns" else int(self.traffic()[i])
