"""Tests for xrayd.usage.cache: parsed files kept until the file on disk changes."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from xrayd import atomic
from xrayd.usage import files
from xrayd.usage.cache import UsageCache
from xrayd.usage.files import UserDay

DAY = dt.date(2026, 1, 20)


def write_day(usage_dir: Path, date: dt.date, **traffic: tuple[int, dict[str, int]]) -> Path:
    """A usage file where each `name=(uplink, domains)` is user name@x with that traffic."""
    users = {
        f"{name}@x": UserDay(f"{name}@x", uplink=up, connections=sum(doms.values()), domains=doms)
        for name, (up, doms) in traffic.items()
    }
    path = files.path_for(usage_dir, date)
    atomic.write_bytes(path, files.render(users))
    return path


def test_an_unchanged_file_is_parsed_once(tmp_path: Path) -> None:
    """Asking again for a day whose file has not changed returns the cached parse."""
    write_day(tmp_path, DAY, a=(10, {"x.example": 2}))
    cache = UsageCache(tmp_path)
    first = cache.day(DAY)
    assert first is not None and list(first.uplink) == [10]
    assert cache.day(DAY) is first
    assert cache.parses == 1


def test_a_rewritten_file_is_read_again(tmp_path: Path) -> None:
    """The collector replacing a file (new inode, mtime, size) makes the cache read it again."""
    write_day(tmp_path, DAY, a=(10, {"x.example": 2}))
    cache = UsageCache(tmp_path)
    assert list(cache.day(DAY).uplink) == [10]  # type: ignore[union-attr]
    write_day(tmp_path, DAY, a=(10, {"x.example": 2}), b=(99, {"y.example": 5}))
    day = cache.day(DAY)
    assert day is not None and list(day.uplink) == [10, 99]
    assert cache.parses == 2
    assert cache.day(DAY) is day


def test_a_same_size_edit_in_place_is_noticed_by_its_mtime(tmp_path: Path) -> None:
    """An edit that keeps size and inode still changes mtime, and that is enough."""
    path = write_day(tmp_path, DAY, a=(10, {}))
    cache = UsageCache(tmp_path)
    assert list(cache.day(DAY).uplink) == [10]  # type: ignore[union-attr]
    st = os.stat(path)
    data = path.read_bytes().replace(b",10,", b",20,")
    with open(path, "r+b") as f:
        f.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert list(cache.day(DAY).uplink) == [20]  # type: ignore[union-attr]


def test_other_days_are_not_read_again_when_one_changes(tmp_path: Path) -> None:
    """Only the rewritten file is parsed again; the others stay cached."""
    for n in range(5):
        write_day(tmp_path, DAY + dt.timedelta(days=n), a=(n, {}))
    cache = UsageCache(tmp_path)
    for n in range(5):
        cache.day(DAY + dt.timedelta(days=n))
    write_day(tmp_path, DAY + dt.timedelta(days=2), a=(77, {}))
    values = [list(cache.day(DAY + dt.timedelta(days=n)).uplink) for n in range(5)]  # type: ignore[union-attr]
    assert values == [[0], [1], [77], [3], [4]]
    assert cache.parses == 6


def test_a_removed_file_is_forgotten(tmp_path: Path) -> None:
    """A day whose file is gone has no data, whatever was cached."""
    path = write_day(tmp_path, DAY, a=(10, {}))
    cache = UsageCache(tmp_path)
    assert cache.day(DAY) is not None
    path.unlink()
    assert cache.day(DAY) is None


def test_a_file_in_another_format_counts_as_no_data(tmp_path: Path) -> None:
    """A file with the right name but another header is not misread as usage."""
    files.path_for(tmp_path, DAY).write_text("date,bytes\n2026-01-20,5\n")
    assert UsageCache(tmp_path).day(DAY) is None


def test_user_domains_reads_only_that_users_rows(tmp_path: Path) -> None:
    """A user's domains come from their own block of rows, not their neighbours'."""
    write_day(
        tmp_path,
        DAY,
        a=(1, {"a1.example": 3, "shared.example": 1}),
        b=(2, {"b1.example": 7, "shared.example": 2}),
        c=(3, {"c1.example": 1}),
    )
    cache = UsageCache(tmp_path)
    day = cache.day(DAY)
    assert day is not None
    b = cache.emails.id_of("b@x")
    assert b is not None
    assert cache.user_domains(DAY, b) == {"b1.example": 7, "shared.example": 2}
    totals = {cache.domains.name(d): n for d, n in zip(day.domains, day.domain_connections, strict=True)}
    assert totals == {"a1.example": 3, "shared.example": 3, "b1.example": 7, "c1.example": 1}


def test_user_domains_follow_a_rewrite(tmp_path: Path) -> None:
    """After the file is replaced, a user's domains are read from the new file's offsets."""
    write_day(tmp_path, DAY, a=(1, {"old.example": 1}), b=(2, {"b.example": 1}))
    cache = UsageCache(tmp_path)
    cache.day(DAY)
    write_day(
        tmp_path, DAY, a=(1, {"a-much-longer-name.example": 4, "new.example": 2}), b=(2, {"b.example": 9})
    )
    b = cache.emails.id_of("b@x")
    assert b is not None
    assert cache.user_domains(DAY, b) == {"b.example": 9}


def test_the_oldest_entries_are_dropped_past_max_days(tmp_path: Path) -> None:
    """The cache holds at most max_days parsed files, dropping the least recently used."""
    for n in range(3):
        write_day(tmp_path, DAY + dt.timedelta(days=n), a=(n, {}))
    cache = UsageCache(tmp_path, max_days=2)
    for n in range(3):
        cache.day(DAY + dt.timedelta(days=n))
    assert cache.parses == 3
    cache.day(DAY + dt.timedelta(days=2))
    assert cache.parses == 3
    cache.day(DAY)
    assert cache.parses == 4
