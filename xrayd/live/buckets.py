"""Per-minute buckets of connections and traffic over the retention, bounded in memory.

A busy minute has about as many distinct (user, destination) pairs as lines, so buckets never
touch a pair in Python: an open bucket keeps the pieces it is handed, numpy columns of (user id,
host id, count) over a host table, and merges them with numpy when read, sealed, or past
`MERGE_ROWS`. Sealed, a bucket is arrays: per user, connections and traffic in the narrowest
unsigned type that holds them (about 7-11 bytes a user-minute), and the (user, destination)
pairs and destinations with their connection counts. So memory grows with buckets x active
keys, never with lines, and a 24-hour top is a few vectorised sums.

Bounds: an open bucket keeps at most `OPEN_PAIRS` distinct pairs (the busiest, at each merge)
and `OPEN_DOMAINS` destinations of the pairs it let go (the busiest too); what does not fit is
still counted per user, and as `domain_overflow`. A sealed bucket keeps every pair while it is
within `DETAIL_MINUTES` (live.now reads them); older buckets keep the top `OLD_PAIRS` pairs and
`OLD_DOMAINS` destinations, the rest counted as overflow, and merge uplink and downlink into one
traffic figure (only live.now, over at most an hour, tells them apart).
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import repeat
from typing import NamedTuple

import numpy as np

from xrayd.live.pairs import exact_sums as _sums

Minute = int

DETAIL_MINUTES = 60  # the longest live.now window (settings allow 3600 s)
OPEN_PAIRS = 50_000
OPEN_DOMAINS = 20_000
MERGE_ROWS = 100_000  # rows an open bucket holds in unmerged pieces before it merges them
MERGE_PIECES = 64  # ... and pieces (each may hold its tally's host table)
OLD_PAIRS = 512
OLD_DOMAINS = 128
MAX_USERS = 65_535  # distinct emails tracked (Xray configs hold far fewer)

_NONE = np.zeros(0, dtype=np.int64)
_NO_HOSTS = np.zeros(0, dtype=object)


class Piece(NamedTuple):
    """Connections per (user id, host id), one row per pair; host ids index `hosts`."""

    uids: np.ndarray  # int64
    hids: np.ndarray  # int64
    counts: np.ndarray  # int64
    hosts: np.ndarray  # object array of str


_WIDTHS = ((0xFF, np.uint8), (0xFFFF, np.uint16), (0xFFFF_FFFF, np.uint32))


def narrow(values: Iterable[int] | np.ndarray) -> np.ndarray:
    """The values as the narrowest unsigned numpy array that holds them."""
    data = values if isinstance(values, np.ndarray) else np.fromiter(values, dtype=np.uint64)
    top = int(data.max()) if data.size else 0
    for limit, dtype in _WIDTHS:
        if top <= limit:
            return data.astype(dtype)
    return data.astype(np.uint64)


def _ids(names: np.ndarray, index: dict[str, int]) -> np.ndarray:
    """Each name's id in `index`, adding the names it does not hold yet, by C-level maps.
    The names are distinct, as in every host table."""
    start = len(index)
    found = np.fromiter(map(index.get, names.tolist(), repeat(-1)), np.int64, names.size)
    new = np.flatnonzero(found < 0)
    if new.size:
        found[new] = np.arange(start, start + new.size)
        index.update(zip(names[new].tolist(), found[new].tolist(), strict=True))
        if len(index) != start + new.size:
            raise ValueError("a host table repeats a name")
    return found


def _long(size: int, rows: int) -> bool:
    """Is a table of `size` names long beside `rows` rows that use it (a scanner's table may
    hold thousands of names a minute never uses)? Then its ids are sorted, not marked."""
    return size > 8 * rows + 1024


def _distinct(ids: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct ids, each row's index among them), for ids below `size`."""
    if _long(size, ids.size):
        return np.unique(ids, return_inverse=True)
    seen = np.zeros(size, dtype=bool)
    seen[ids] = True
    return np.flatnonzero(seen), (np.cumsum(seen) - 1)[ids]


def _by_name(parts: Iterable[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """(names, counts) summed per name over several (names, counts): a dict of the names, so
    for short lists (spilled destinations)."""
    index: dict[str, int] = {}
    parts = list(parts)
    ids = np.concatenate([_NONE, *(_ids(names, index) for names, _ in parts)])
    counts = np.concatenate([_NONE, *(c.astype(np.int64) for _, c in parts)])
    return np.array(list(index), dtype=object), _sums(ids, counts, len(index)).astype(np.int64)


def _busiest(counts: np.ndarray, cap: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows kept, rows let go): the `cap` largest counts (ties: the earlier row), in row order."""
    order = np.argsort(-counts.astype(np.int64), kind="stable")
    return np.sort(order[:cap]), order[cap:]


def _by_id(ids: np.ndarray, values: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct ids, the sum of `values` of each), for ids below `size`."""
    if _long(size, ids.size):
        used, rows = np.unique(ids, return_inverse=True)
        return used, _sums(rows, values, used.size)
    sums = _sums(ids, values, size)
    used = np.flatnonzero(sums > 0)
    return used, sums[used]


def _merge(pieces: list[Piece]) -> Piece:
    """One piece of several, summed per (user, host). Pieces over one host table (a scanner's,
    shared by its tallies) keep it; else the tables are unified, Python touching only each
    piece's distinct hosts."""
    hosts = pieces[0].hosts
    if all(p.hosts is hosts for p in pieces):
        hids = np.concatenate([p.hids for p in pieces])
    else:
        index: dict[str, int] = {}
        remapped = []
        for p in pieces:
            used, rows = _distinct(p.hids, p.hosts.size)
            remapped.append(_ids(p.hosts[used], index)[rows])
        hosts, hids = np.array(list(index), dtype=object), np.concatenate(remapped)
    size = hosts.size
    keys, rows = np.unique(np.concatenate([p.uids for p in pieces]) * size + hids, return_inverse=True)
    counts = _sums(rows, np.concatenate([p.counts for p in pieces]), keys.size).astype(np.int64)
    uids, hids = np.divmod(keys, size)
    return Piece(uids, hids, counts, hosts)


class Open:
    """A bucket still being filled: the pieces it was handed, merged (summed per pair, caps
    applied) when read, when sealed, and when they grow past MERGE_ROWS or MERGE_PIECES."""

    def __init__(self) -> None:
        self._pieces: list[Piece] = []
        self._rows = 0
        self.spill_uids = _NONE  # connections of the pairs let go, per user (sorted, unique)
        self.spill_conns = _NONE
        self.spill_hosts = _NO_HOSTS  # ... and per destination, at most OPEN_DOMAINS of them
        self.spill_host_conns = _NONE
        self.domain_overflow = 0  # connections of destinations let go beyond that
        self.traffic: dict[int, list[int]] = {}  # uid -> [uplink, downlink]
        self.rejected = 0
        self._view: Sealed | None = None

    @property
    def held(self) -> tuple[int, int]:
        """(pieces, pair rows) held, merged or not: what MERGE_PIECES and MERGE_ROWS bound."""
        return len(self._pieces), self._rows

    def add_pairs(self, uids: np.ndarray, hids: np.ndarray, counts: np.ndarray, hosts: np.ndarray) -> None:
        """Connections per (uid, host id), rows unique per pair; `hosts` names the host ids,
        each name once."""
        if not uids.size:
            return
        self._view = None
        # Copies: a slice would keep its whole tally alive as long as the bucket is open.
        self._pieces.append(Piece(uids.copy(), hids.copy(), counts.copy(), hosts))
        self._rows += uids.size
        if self._rows > MERGE_ROWS or len(self._pieces) > MERGE_PIECES:
            self._merge()

    def add_traffic(self, uid: int, up: int, down: int) -> None:
        self._view = None
        row = self.traffic.setdefault(uid, [0, 0])
        row[0] += up
        row[1] += down

    def add_rejected(self, n: int) -> None:
        self._view = None
        self.rejected += n

    def sealed(self) -> Sealed:
        """This bucket as arrays, what readers and sealing use (kept until the next add)."""
        if self._view is None:
            self._view = Sealed(self)
        return self._view

    def pairs(self) -> Piece:
        """The pairs, once merged (a fresh bucket's single piece is as good as merged)."""
        if len(self._pieces) > 1 or self._rows > OPEN_PAIRS:
            self._merge()
        return self._pieces[0] if self._pieces else Piece(_NONE, _NONE, _NONE, _NO_HOSTS)

    def _merge(self) -> None:
        p = _merge(self._pieces)
        if p.uids.size > OPEN_PAIRS:
            keep, drop = _busiest(p.counts, OPEN_PAIRS)
            self._spill(p.uids[drop], p.hids[drop], p.counts[drop], p.hosts)
            p = Piece(p.uids[keep], p.hids[keep], p.counts[keep], p.hosts)
        self._pieces = [p]
        self._rows = p.uids.size

    def _spill(self, uids: np.ndarray, hids: np.ndarray, counts: np.ndarray, hosts: np.ndarray) -> None:
        """Count pairs let go per user, and per destination up to OPEN_DOMAINS of them."""
        self.spill_uids, rows = np.unique(np.concatenate([self.spill_uids, uids]), return_inverse=True)
        conns = np.concatenate([self.spill_conns, counts])
        self.spill_conns = _sums(rows, conns, self.spill_uids.size).astype(np.int64)
        used, by_host = _by_id(hids, counts, hosts.size)
        names, n = _by_name([(self.spill_hosts, self.spill_host_conns), (hosts[used], by_host)])
        if names.size > OPEN_DOMAINS:
            keep, drop = _busiest(n, OPEN_DOMAINS)
            self.domain_overflow += int(n[drop].sum())
            names, n = names[keep], n[keep]
        self.spill_hosts, self.spill_host_conns = names, n


class Sealed:
    """A finished bucket as arrays. The per-user rows are sorted by user id."""

    __slots__ = (
        "conns",
        "domain_counts",
        "domain_hosts",
        "domain_overflow",
        "down",
        "pair_counts",
        "pair_hosts",
        "pair_uids",
        "rejected",
        "total_conns",
        "total_traffic",
        "uids",
        "up",
    )

    def __init__(self, bucket: Open) -> None:
        uids, hids, counts, hosts = bucket.pairs()
        self.pair_uids = narrow(uids)
        self.pair_hosts = hosts[hids]
        self.pair_counts = narrow(counts)

        traffic = bucket.traffic
        t_uids = np.fromiter(traffic, np.int64, len(traffic))
        size = 1 + max(int(a.max()) if a.size else -1 for a in (uids, bucket.spill_uids, t_uids))
        if bucket.spill_uids.size:
            conns = _sums(
                np.concatenate([uids, bucket.spill_uids]), np.concatenate([counts, bucket.spill_conns]), size
            )
        else:
            conns = _sums(uids, counts, size)
        if traffic:
            up, down = np.zeros(size, np.uint64), np.zeros(size, np.uint64)
            up[t_uids] = np.fromiter((t[0] for t in traffic.values()), np.uint64, t_uids.size)
            down[t_uids] = np.fromiter((t[1] for t in traffic.values()), np.uint64, t_uids.size)
            rows = np.flatnonzero((conns > 0) | (up > 0) | (down > 0))
            self.up: np.ndarray | None = narrow(up[rows])
            self.down = narrow(down[rows])  # traffic (up + down) once aged
        else:
            rows = np.flatnonzero(conns > 0)
            self.up, self.down = np.zeros(rows.size, np.uint8), np.zeros(rows.size, np.uint8)
        self.uids = narrow(rows)
        self.conns = narrow(conns[rows])

        used, by_host = _by_id(hids, counts, hosts.size)
        self.domain_hosts, self.domain_counts = hosts[used], by_host
        if bucket.spill_hosts.size:
            self.domain_hosts, self.domain_counts = _by_name(
                [(self.domain_hosts, self.domain_counts), (bucket.spill_hosts, bucket.spill_host_conns)]
            )
        self.domain_counts = narrow(self.domain_counts)
        self.domain_overflow = bucket.domain_overflow
        self.rejected = bucket.rejected
        self.total_conns = int(self.conns.sum(dtype=np.uint64))
        self.total_traffic = int(self.up.sum(dtype=np.uint64)) + int(self.down.sum(dtype=np.uint64))

    def traffic(self) -> np.ndarray:
        """Uplink + downlink per row."""
        if self.up is None:
            return self.down
        return self.up.astype(np.uint64) + self.down

    def age(self, before: Sealed | None = None) -> None:
        """Keep only what queries over old minutes read: one traffic figure, the top pairs and
        destinations (the rest counted as overflow; ties go to the first met). The users are
        shared with the minute `before` when they are the same ones, as they mostly are."""
        if self.up is None:
            return
        self.down = narrow(self.traffic())
        self.up = None
        if before is not None and np.array_equal(before.uids, self.uids):
            self.uids = before.uids  # never written after sealing
        if self.pair_counts.size > OLD_PAIRS:
            keep, _ = _busiest(self.pair_counts, OLD_PAIRS)
            self.pair_uids, self.pair_hosts, self.pair_counts = (
                self.pair_uids[keep],
                self.pair_hosts[keep],
                self.pair_counts[keep],
            )
        if self.domain_counts.size > OLD_DOMAINS:
            keep, _ = _busiest(self.domain_counts, OLD_DOMAINS)
            self.domain_overflow += int(self.domain_counts.sum(dtype=np.uint64)) - int(
                self.domain_counts[keep].sum(dtype=np.uint64)
            )
            self.domain_hosts, self.domain_counts = self.domain_hosts[keep], self.domain_counts[keep]

    def reopen(self) -> Open:
        """Back to an open bucket of one piece, to take a late line (rare: Xray writes in time
        order). What the pairs do not hold goes back to the spill counts."""
        bucket = Open()
        bucket.rejected = self.rejected
        bucket.domain_overflow = self.domain_overflow
        uids = self.pair_uids.astype(np.int64)
        counts = self.pair_counts.astype(np.int64)
        n = uids.size
        hosts, ids = np.unique(np.concatenate([self.pair_hosts, self.domain_hosts]), return_inverse=True)
        hids = ids[:n]
        extra = _sums(ids[n:], self.domain_counts, hosts.size).astype(np.int64)
        extra -= _sums(hids, counts, hosts.size).astype(np.int64)
        # An aged bucket may keep a pair of a destination it counts only in the overflow.
        bucket.domain_overflow += int(extra[extra < 0].sum())
        spilled = np.flatnonzero(extra > 0)
        bucket.spill_hosts, bucket.spill_host_conns = hosts[spilled], extra[spilled]

        size = int(self.uids[-1]) + 1 if self.uids.size else 0
        spill = np.zeros(size, np.int64)
        spill[self.uids] = self.conns
        spill -= _sums(uids, counts, size).astype(np.int64)
        bucket.spill_uids = np.flatnonzero(spill)
        bucket.spill_conns = spill[bucket.spill_uids]

        up = self.up if self.up is not None else np.zeros(self.uids.size, np.uint8)
        for uid, u, d in zip(self.uids.tolist(), up.tolist(), self.down.tolist(), strict=True):
            if u or d:
                bucket.traffic[uid] = [u, d]
        bucket.add_pairs(uids, hids, counts, hosts)
        return bucket

    def value_of(self, uid: int, metric: str) -> int:
        """One user's connections or traffic in this minute."""
        i = int(np.searchsorted(self.uids, uid))
        if i >= self.uids.size or int(self.uids[i]) != uid:
            return 0
        return int(self.conns[i]) if metric == "conns" else int(self.traffic()[i])
