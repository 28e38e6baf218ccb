"""Connections per (minute, email, destination) as numpy columns: what a scan hands the buckets.

A log of a busy server has almost as many distinct (minute, email, destination) keys as lines,
so a Python object per key would cost more than the scan itself. `Pairs` keeps them as four
int64 columns over two name tables, one row per key, sorted by minute, and everything that
merges or sums them is vectorised. `as_dict` is the plain view, for tests and small tallies.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np

Minute = int
_EMPTY = np.zeros(0, dtype=np.int64)


def exact_sums(groups: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    """Exact integer sums of `values` per group: bincount's float64 while that is exact (below
    2**53), else uint64 by numpy's slower unbuffered add."""
    if values.size and int(values.max()) * values.size >= 2**53:
        out = np.zeros(size, dtype=np.uint64)
        np.add.at(out, groups, values.astype(np.uint64))
        return out
    return np.bincount(groups, weights=values, minlength=size)


def _unify(tables: Iterable[list[str]]) -> tuple[list[str], list[np.ndarray]]:
    """One table of the names in several, and each table's index into it."""
    index: dict[str, int] = {}
    remaps = []
    for table in tables:
        ids = (index.setdefault(name, len(index)) for name in table)
        remaps.append(np.fromiter(ids, np.int64, len(table)))
    return list(index), remaps


@dataclass
class Pairs:
    minute: np.ndarray = field(default_factory=lambda: _EMPTY)
    email: np.ndarray = field(default_factory=lambda: _EMPTY)  # index into `emails`
    host: np.ndarray = field(default_factory=lambda: _EMPTY)  # index into `hosts`
    count: np.ndarray = field(default_factory=lambda: _EMPTY)
    emails: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)

    @classmethod
    def build(
        cls, minute: np.ndarray, email: np.ndarray, host: np.ndarray, count: np.ndarray,
        emails: list[str], hosts: list[str],
    ) -> Pairs:  # fmt: skip
        """Rows summed per (minute, email, host) and sorted by minute; unused names dropped."""
        if minute.size == 0:
            return cls()
        used_e, email = np.unique(email, return_inverse=True)
        used_h, host = np.unique(host, return_inverse=True)
        minutes, minute_i = np.unique(minute, return_inverse=True)
        key = (minute_i.astype(np.int64) * used_e.size + email) * used_h.size + host
        keys, rows = np.unique(key, return_inverse=True)
        sums = exact_sums(rows, count, keys.size)
        keys, hosts_n = np.divmod(keys, used_h.size)
        minute_k, email_k = np.divmod(keys, used_e.size)
        return cls(
            minute=minutes[minute_k].astype(np.int64),
            email=email_k.astype(np.int64),
            host=hosts_n.astype(np.int64),
            count=sums.astype(np.int64),
            emails=[emails[i] for i in used_e.tolist()],
            hosts=[hosts[i] for i in used_h.tolist()],
        )

    @classmethod
    def of_lines(
        cls, minute_index: np.ndarray, minutes: np.ndarray, email: np.ndarray, host: np.ndarray,
        emails: list[str], hosts: list[str],
    ) -> Pairs:  # fmt: skip
        """One connection per line: `minute_index` into the sorted `minutes`, `email` and `host`
        into their tables (which the Pairs shares, not copies: they only ever grow)."""
        if not minute_index.size:
            return cls()
        size = len(emails) * len(hosts)
        keys, counts = np.unique((minute_index * len(emails) + email) * len(hosts) + host, return_counts=True)
        minute_k, pair = np.divmod(keys, size)
        email_k, host_k = np.divmod(pair, len(hosts))
        return cls(minutes[minute_k], email_k, host_k, counts.astype(np.int64), emails, hosts)

    @classmethod
    def from_counter(cls, counts: Mapping[tuple[Minute, str, str], int]) -> Pairs:
        """From {(minute, email, host): n} (the reference path and tests)."""
        emails: dict[str, int] = {}
        hosts: dict[str, int] = {}
        rows = [
            (minute, emails.setdefault(email, len(emails)), hosts.setdefault(host, len(hosts)), n)
            for (minute, email, host), n in counts.items()
            if n
        ]
        if not rows:
            return cls()
        columns = np.array(rows, dtype=np.int64).T
        return cls.build(*columns, list(emails), list(hosts))

    @classmethod
    def concat(cls, parts: Iterable[Pairs]) -> Pairs:
        parts = [p for p in parts if p.minute.size]
        if len(parts) <= 1:
            return parts[0] if parts else cls()
        emails, email_maps = _unify(p.emails for p in parts)
        hosts, host_maps = _unify(p.hosts for p in parts)
        return cls.build(
            np.concatenate([p.minute for p in parts]),
            np.concatenate([m[p.email] for p, m in zip(parts, email_maps, strict=True)]),
            np.concatenate([m[p.host] for p, m in zip(parts, host_maps, strict=True)]),
            np.concatenate([p.count for p in parts]),
            emails,
            hosts,
        )

    def __len__(self) -> int:
        return int(self.minute.size)

    def runs(self) -> Iterable[tuple[Minute, slice]]:
        """(minute, the slice of its rows), in time order."""
        if not self.minute.size:
            return
        cuts = np.flatnonzero(np.diff(self.minute)) + 1
        bounds = [0, *cuts.tolist(), self.minute.size]
        for lo, hi in pairwise(bounds):
            yield int(self.minute[lo]), slice(lo, hi)

    def latest(self) -> Minute | None:
        return int(self.minute[-1]) if self.minute.size else None

    def as_dict(self) -> dict[Minute, Counter[tuple[str, str]]]:
        out: dict[Minute, Counter[tuple[str, str]]] = {}
        for minute, e, h, n in zip(
            self.minute.tolist(), self.email.tolist(), self.host.tolist(), self.count.tolist(), strict=True
        ):
            out.setdefault(minute, Counter())[self.emails[e], self.hosts[h]] += n
        return out
