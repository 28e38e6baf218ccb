"""The daily usage file: `usage_dir/YYYY-MM-DD.csv`, one per server-local date.

One file a day, so a day is replaced in one atomic rename and a reader never sees half of
it. One header row, then for each user (sorted by email) a user row followed by that user's
domain rows (most connections first):

    email,domain,uplink,downlink,connections,unique_ips,first_seen,last_seen
    alice@example.org,,1048576,73400320,42,2,2026-01-20T08:15:02,2026-01-20T23:10:44
    alice@example.org,www.youtube.com,,,30,,,
    alice@example.org,api.telegram.org,,,12,,,

A user row has an empty `domain`; a domain row has only `email`, `domain` and `connections`.
Emails are lowercased (Xray compares them case-insensitively). Times are server-local, to
the second. The writer never puts a line break inside a field, so every line is one row:
the reader relies on it to find a user's rows by byte offset.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import re
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
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    for email in sorted(users):
        u = users[email]
        if email != u.email.lower() or _has_break(email):
            raise ValueError(f"not a lowercased single-line email: {email!r}")
        writer.writerow(
            [
                email,
                "",
                u.uplink,
                u.downlink,
                u.connections,
                len(u.ips),
                _time(u.first_seen),
                _time(u.last_seen),
            ]
        )
        for domain, count in sorted(u.domains.items(), key=lambda item: (-item[1], item[0])):
            if not domain or _has_break(domain):
                raise ValueError(f"not a single-line domain: {domain!r}")
            writer.writerow([email, domain, "", "", count, "", "", ""])
    return out.getvalue().encode("utf-8")


def _has_break(value: str) -> bool:
    return "\n" in value or "\r" in value


# --- reading ---------------------------------------------------------------------------


@dataclass
class ParsedDay:
    """A file as read: user rows (in file order) with the byte offset of each user's block,
    and every domain's connections summed over all users. Names stay bytes here; the cache
    decodes each distinct one once."""

    emails: list[bytes] = field(default_factory=list)
    uplink: list[int] = field(default_factory=list)
    downlink: list[int] = field(default_factory=list)
    connections: list[int] = field(default_factory=list)
    unique_ips: list[int] = field(default_factory=list)
    first_seen: list[int] = field(default_factory=list)  # seconds after midnight, or NO_TIME
    last_seen: list[int] = field(default_factory=list)
    blocks: list[int] = field(default_factory=list)  # offset of each user's block, then the end
    domains: dict[bytes, int] = field(default_factory=dict)
    bad_rows: int = 0


def _fields(line: bytes) -> list[bytes]:
    if b'"' not in line:
        return line.split(b",")
    return [f.encode("utf-8") for f in next(csv.reader([line.decode("utf-8", "replace")]))]


def _seconds(stamp: bytes) -> int:
    """`YYYY-MM-DDTHH:MM:SS` → seconds after midnight; empty → NO_TIME."""
    if not stamp:
        return NO_TIME
    if len(stamp) != 19 or stamp[10:11] != b"T":
        raise ValueError(stamp)
    return int(stamp[11:13]) * 3600 + int(stamp[14:16]) * 60 + int(stamp[17:19])


def parse(data: bytes) -> ParsedDay:
    """Read a whole file. A malformed row is skipped and counted; a wrong header raises.

    The hot loop of a cold dashboard: one split per line, no csv module unless a line has
    quotes (an email or domain with a comma in it).
    """
    if not data.startswith(HEADER_LINE):
        raise FormatError("not a usage file: the header row differs")
    day = ParsedDay()
    domains = day.domains
    pos = len(HEADER_LINE)
    for line in data[pos:].split(b"\n"):
        start, pos = pos, pos + len(line) + 1
        if not line:
            continue
        try:
            email, domain, up, down, conns, ips, first, last = _fields(line)
            if domain:
                domains[domain] = domains.get(domain, 0) + int(conns)
                continue
            row = (int(up), int(down), int(conns), int(ips), _seconds(first), _seconds(last))
        except ValueError:
            day.bad_rows += 1
            continue
        day.emails.append(email)
        day.blocks.append(start)
        for column, value in zip(
            (day.uplink, day.downlink, day.connections, day.unique_ips, day.first_seen, day.last_seen),
            row,
            strict=True,
        ):
            column.append(value)
    day.blocks.append(min(pos, len(data)))
    return day


def domain_rows(block: bytes, email: bytes) -> Iterator[tuple[bytes, int]]:
    """(domain, connections) of `email` in one user's block of lines (as located by `parse`)."""
    for line in block.split(b"\n"):
        try:
            owner, domain, _, _, conns, *_ = _fields(line)
            if domain and owner == email:
                yield domain, int(conns)
        except ValueError:
            continue
