"""The daily usage file: `usage_dir/YYYY-MM-DD.csv`, one per server-local date.

One file a day, so a day is replaced in one atomic rename and a reader never sees half of
it. Eight columns, one header row, then three sections, each row telling its kind by which
of `email` and `domain` it has:

    email,domain,uplink,downlink,connections,unique_ips,first_seen,last_seen
    ,www.youtube.com,,,30,,,
    ,api.telegram.org,,,14,,,
    alice@example.org,,1048576,73400320,42,2,2026-01-20T08:15:02,2026-01-20T23:10:44
    bob@example.org,,5120,10240,2,1,2026-01-20T12:00:00,2026-01-20T12:30:00
    alice@example.org,www.youtube.com,,,30,,,
    alice@example.org,api.telegram.org,,,12,,,
    bob@example.org,api.telegram.org,,,2,,,

1. domain totals (no email): each domain's connections over all users, most first;
2. user rows (no domain), by email: traffic, connections, distinct source IPs, the first
   and the last connection of the day;
3. user and domain rows, by email, then most connections first.

The totals repeat what the last section sums to, so that a dashboard over a year reads
11,000 rows a day instead of 51,000 on a server of 1,000 users; only the collector writes
these files, so the two never disagree. Emails are lowercased (Xray compares them
case-insensitively). Times are server-local, to the second. The writer never puts a line
break inside a field, so every line is one row: the reader relies on it to find a user's
rows by byte offset.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

HEADER = ("email", "domain", "uplink", "downlink", "connections", "unique_ips", "first_seen", "last_seen")
HEADER_LINE = ",".join(HEADER).encode() + b"\n"
SUFFIX = ".csv"
_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})\.csv")
NO_TIME = -1  # first_seen/last_seen of a user with traffic but no connection that day


class FormatError(ValueError):
    """A usage file that is not in this format (a wrong header)."""


def path_for(usage_dir: Path, date: dt.date) -> Path:
    return usage_dir / f"{date.isoformat()}{SUFFIX}"


def date_of(name: str) -> dt.date | None:
    """The date a usage file's name stands for, or None for any other file."""
    match = _NAME.fullmatch(name)
    if match is None:
        return None
    try:
        return dt.date.fromisoformat(match[1])
    except ValueError:
        return None


def list_dates(usage_dir: Path) -> list[dt.date]:
    """The dates that have a usage file, newest first; other files are ignored."""
    try:
        entries = list(os.scandir(usage_dir))
    except FileNotFoundError:
        return []
    dates = {d for e in entries if (d := date_of(e.name)) is not None and e.is_file()}
    return sorted(dates, reverse=True)


# --- writing ---------------------------------------------------------------------------


@dataclass
class UserDay:
    """One user's day: traffic from the ledger, connections from the access log."""

    email: str
    uplink: int = 0
    downlink: int = 0
    connections: int = 0
    ips: set[str] = field(default_factory=set)
    first_seen: dt.datetime | None = None
    last_seen: dt.datetime | None = None
    domains: dict[str, int] = field(default_factory=dict)


def _time(moment: dt.datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%S")


def render(users: Mapping[str, UserDay]) -> bytes:
    """The file's bytes for a day: the same users give the same bytes, whatever their order."""
    for email, u in users.items():
        if email != u.email.lower() or _has_break(email):
            raise ValueError(f"not a lowercased single-line email: {email!r}")
        if any(not domain or _has_break(domain) for domain in u.domains):
            raise ValueError(f"a domain of {email!r} is empty or has a line break")
    totals: Counter[str] = Counter()
    for u in users.values():
        totals.update(u.domains)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(["", domain, "", "", n, "", "", ""] for domain, n in _by_count(totals))
    for email in sorted(users):
        u = users[email]
        times = (_time(u.first_seen), _time(u.last_seen))
        writer.writerow([email, "", u.uplink, u.downlink, u.connections, len(u.ips), *times])
    for email in sorted(users):
        writer.writerows(
            [email, domain, "", "", n, "", "", ""] for domain, n in _by_count(users[email].domains)
        )
    return out.getvalue().encode("utf-8")


def _by_count(counts: Mapping[str, int]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def _has_break(value: str) -> bool:
    return "\n" in value or "\r" in value


# --- reading ---------------------------------------------------------------------------


@dataclass
class ParsedDay:
    """A file as read: the domain totals, the user rows, and where each user's domain rows
    are in the file (`block_start`/`block_end`, equal when they have none). Names stay
    bytes here; the cache decodes each distinct one once."""

    domains: dict[bytes, int] = field(default_factory=dict)
    emails: list[bytes] = field(default_factory=list)
    uplink: list[int] = field(default_factory=list)
    downlink: list[int] = field(default_factory=list)
    connections: list[int] = field(default_factory=list)
    unique_ips: list[int] = field(default_factory=list)
    first_seen: list[int] = field(default_factory=list)  # seconds after midnight, or NO_TIME
    last_seen: list[int] = field(default_factory=list)
    block_start: list[int] = field(default_factory=list)
    block_end: list[int] = field(default_factory=list)
    bad_rows: int = 0


def _fields(line: bytes) -> list[bytes]:
    if b'"' not in line:
        return line.split(b",")
    return [f.encode("utf-8") for f in next(csv.reader([line.decode("utf-8", "replace")]))]


def _field(value: bytes) -> bytes:
    """A value as the writer wrote it (csv's minimal quoting), to search the file for it."""
    if b"," in value or b'"' in value or b"\r" in value or b"\n" in value:
        return b'"' + value.replace(b'"', b'""') + b'"'
    return value


def _seconds(stamp: bytes) -> int:
    """`YYYY-MM-DDTHH:MM:SS` → seconds after midnight; empty → NO_TIME."""
    if not stamp:
        return NO_TIME
    if len(stamp) != 19 or stamp[10:11] != b"T":
        raise ValueError(stamp)
    return int(stamp[11:13]) * 3600 + int(stamp[14:16]) * 60 + int(stamp[17:19])


_NOT_A_TOTAL = re.compile(rb"\n[^,]")  # the first line that has an email ends the totals
_TOTAL = re.compile(rb"^,([^,\n]+),,,(\d+),,,$", re.M)


def parse(data: bytes) -> ParsedDay:
    """Read the totals and the user rows; locate each user's domain rows without reading them.

    A malformed row is skipped and counted; a wrong header raises FormatError. This is the
    work of a cold dashboard, so the domain rows (four in five of the file) are never split:
    each user's block is found with one `find` for its email, in file order.
    """
    if not data.startswith(HEADER_LINE):
        raise FormatError("not a usage file: the header row differs")
    day = ParsedDay()
    first_user = _NOT_A_TOTAL.search(data, len(HEADER_LINE) - 1)
    users_at = first_user.start() + 1 if first_user else len(data)
    _read_totals(data[len(HEADER_LINE) : users_at], day)
    pos = users_at
    while pos < len(data):
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end
        try:
            email, domain, up, down, conns, ips, first, last = _fields(data[pos:end])
            if domain:
                break  # the first user-and-domain row
            row = (int(up), int(down), int(conns), int(ips), _seconds(first), _seconds(last))
            if min(row[:4]) < 0:
                raise ValueError("a negative count")
        except ValueError:
            day.bad_rows += end > pos
        else:
            day.emails.append(email)
            for column, value in zip(
                (day.uplink, day.downlink, day.connections, day.unique_ips, day.first_seen, day.last_seen),
                row,
                strict=True,
            ):
                column.append(value)
        pos = end + 1
    _locate_blocks(data, min(pos, len(data)), day)
    return day


def _read_totals(section: bytes, day: ParsedDay) -> None:
    """The domain totals: one regex pass when no name is quoted, else row by row."""
    lines = section.count(b"\n") + (bool(section) and not section.endswith(b"\n"))
    if b'"' not in section:
        pairs = _TOTAL.findall(section)
        totals = {domain: int(n) for domain, n in pairs}
        if len(totals) == len(pairs):  # each domain once, as the writer writes them
            day.domains = totals
            day.bad_rows += lines - len(pairs)
            return
    for line in section.split(b"\n"):
        try:
            _, domain, _, _, conns, *_ = _fields(line)
            day.domains[domain] = day.domains.get(domain, 0) + int(conns)
        except ValueError:
            day.bad_rows += line != b""


def _locate_blocks(data: bytes, pos: int, day: ParsedDay) -> None:
    """Where each user's domain rows begin and end. Blocks follow the user rows' order, so
    each search starts where the last block began and reads the file once in all."""
    starts = []
    for email in day.emails:
        found = data.find(b"\n" + _field(email) + b",", pos - 1)
        starts.append(found + 1 if found >= 0 else -1)
        if found >= 0:
            pos = found + 1
    end = len(data)
    ends = []
    for start in reversed(starts):
        ends.append(end if start >= 0 else 0)
        if start >= 0:
            end = start
    day.block_end = ends[::-1]
    day.block_start = [start if start >= 0 else 0 for start in starts]


def domain_rows(block: bytes, email: bytes) -> Iterator[tuple[bytes, int]]:
    """(domain, connections) of `email` in one user's block of lines (as located by `parse`)."""
    for line in block.split(b"\n"):
        try:
            owner, domain, _, _, conns, *_ = _fields(line)
            if domain and owner == email:
                yield domain, int(conns)
        except ValueError:
            continue
