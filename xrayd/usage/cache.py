"""Parsed usage files kept in memory, keyed by the file's identity: (path, mtime, size, inode).

A dashboard over a year reads 365 files; reading them again for every request would make it
as slow as parsing 18 million CSV rows. So each file is parsed once into compact arrays and
kept until its identity changes: a new or rewritten file (the collector replaces files by
rename, so the inode and mtime change) is read again, nothing else is.

What is kept per day is what dashboards sum: each user's row, and each domain's connections
over all users (the file's totals section). A user's own domains (50 rows a day each, for
thousands of users) are not kept: the cache remembers where each user's rows are in the
file, and `user_domains` reads just that byte range, after checking the file is still the
one parsed.

Emails and domains are stored as small ints (`Names`), so a year of a large server costs
tens of MB, not gigabytes. Methods are safe to call from several worker threads.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from array import array
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from xrayd.usage import files

log = logging.getLogger(__name__)

Key = tuple[int, int, int]  # (mtime_ns, size, inode)
DEFAULT_MAX_DAYS = 1100  # three years of files; older entries are dropped first


def _key(st: os.stat_result) -> Key:
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _compact(values: Iterable[int]) -> array[int]:
    """Counts in 4 bytes each, or 8 when one does not fit: a year of files in tens of MB."""
    values = list(values)
    try:
        return array("I", values)
    except OverflowError:
        return array("Q", values)


class Names:
    """Each distinct email or domain once, numbered in order of first sight. Kept as the
    file's UTF-8 bytes, so numbering a parsed file's 10,000 names is one C-level lookup each."""

    def __init__(self) -> None:
        self._ids: dict[bytes, int] = {}
        self._names: list[bytes] = []
        self._lock = threading.Lock()

    def ids(self, raw: Iterable[bytes]) -> array[int]:
        """The ids of names, adding the new ones."""
        raw = list(raw)
        found = list(map(self._ids.get, raw))
        if None in found:
            with self._lock:
                for i, number in enumerate(found):
                    if number is None:
                        number = self._ids.get(raw[i])
                        if number is None:
                            number = self._ids[raw[i]] = len(self._names)
                            self._names.append(raw[i])
                        found[i] = number
        return array("I", found)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self._names)

    def id_of(self, name: str) -> int | None:
        return self._ids.get(name.encode("utf-8"))

    def name(self, number: int) -> str:
        return self._names[number].decode("utf-8", "replace")

    def raw(self, number: int) -> bytes:
        return self._names[number]


@dataclass(frozen=True, slots=True)
class Day:
    """One parsed usage file. Per-user arrays are parallel and in file order (by email)."""

    date: dt.date
    key: Key
    users: array[int]
    uplink: array[int]
    downlink: array[int]
    connections: array[int]
    unique_ips: array[int]
    first_seen: array[int]  # seconds after midnight, or files.NO_TIME
    last_seen: array[int]
    block_start: array[int]  # where each user's domain rows are in the file
    block_end: array[int]
    domains: array[int]  # domain ids, with each one's connections over all users beside it
    domain_connections: array[int]

    def row(self, user: int) -> int | None:
        """Index of a user's row, or None when they are not in this day."""
        try:
            return self.users.index(user)
        except ValueError:
            return None


class UsageCache:
    """The parsed files of one usage folder."""

    def __init__(self, usage_dir: Path, *, max_days: int = DEFAULT_MAX_DAYS) -> None:
        self.usage_dir = usage_dir
        self.max_days = max_days
        self.emails = Names()
        self.domains = Names()
        self._days: OrderedDict[dt.date, Day] = OrderedDict()
        self._lock = threading.Lock()
        self.parses = 0  # how many files were read and parsed: tests and benchmarks watch it

    def day(self, date: dt.date) -> Day | None:
        """The parsed file of `date`, read again only if it changed; None when there is none."""
        path = files.path_for(self.usage_dir, date)
        try:
            key = _key(os.stat(path))
        except FileNotFoundError:
            self._forget(date)
            return None
        with self._lock:
            cached = self._days.get(date)
            if cached is not None and cached.key == key:
                self._days.move_to_end(date)
                return cached
        return self._load(date, path)

    def _forget(self, date: dt.date) -> None:
        with self._lock:
            self._days.pop(date, None)

    def _load(self, date: dt.date, path: Path) -> Day | None:
        try:
            with open(path, "rb") as f:
                key = _key(os.fstat(f.fileno()))
                data = f.read()
        except FileNotFoundError:
            self._forget(date)
            return None
        try:
            parsed = files.parse(data)
        except files.FormatError as exc:
            log.warning("%s: %s; the date is treated as having no data", path, exc)
            self._forget(date)
            return None
        if parsed.bad_rows:
            log.warning("%s: skipped %d malformed row(s)", path, parsed.bad_rows)
        day = Day(
            date=date,
            key=key,
            users=self.emails.ids(parsed.emails),
            uplink=array("Q", parsed.uplink),
            downlink=array("Q", parsed.downlink),
            connections=_compact(parsed.connections),
            unique_ips=_compact(parsed.unique_ips),
            first_seen=array("i", parsed.first_seen),
            last_seen=array("i", parsed.last_seen),
            block_start=_compact(parsed.block_start),
            block_end=_compact(parsed.block_end),
            domains=self.domains.ids(parsed.domains),
            domain_connections=_compact(parsed.domains.values()),
        )
        with self._lock:
            self.parses += 1
            self._days[date] = day
            self._days.move_to_end(date)
            while len(self._days) > self.max_days:
                self._days.popitem(last=False)
        return day

    def user_domains(self, date: dt.date, user: int) -> dict[str, int]:
        """A user's connections per domain on `date`, read from their rows in the file."""
        path = files.path_for(self.usage_dir, date)
        for _ in range(3):  # the file may be replaced between the stat and the read; retry
            day = self.day(date)
            index = day.row(user) if day is not None else None
            if day is None or index is None:
                return {}
            start, end = day.block_start[index], day.block_end[index]
            if start == end:
                return {}
            try:
                with open(path, "rb") as f:
                    if _key(os.fstat(f.fileno())) != day.key:
                        continue
                    block = os.pread(f.fileno(), end - start, start)
            except FileNotFoundError:
                return {}
            email = self.emails.raw(user)
            return {domain.decode("utf-8", "replace"): n for domain, n in files.domain_rows(block, email)}
        return {}
