"""access.log and its rotated siblings, ordered by the time of their first line.

logrotate leaves `access.log.1`, `access.log.2.gz`, … (or `access.log-20260120[.gz]` with
`dateext`). Names are only used to find the files; their order comes from the timestamp of
each file's first line, so any naming scheme sorts right. While logrotate compresses a file,
`access.log.2` and a partial `access.log.2.gz` exist side by side: the plain one is read and
the other ignored, so nothing is counted twice.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import itertools
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from xrayd.live.parser import parse_line

_ROTATED = re.compile(r"\.(\d{1,4})(\.gz)?|-(\d{8})(\.gz)?")
FIRST_LINES = 1000  # lines looked at for a file's first timestamp before giving up on it


class CorruptLog(Exception):
    """A compressed log that ends early or does not decompress: its days cannot be trusted."""


@dataclass(frozen=True)
class LogFile:
    path: Path
    first: dt.datetime  # the timestamp of its first access line (server-local)


def lines(path: Path) -> Iterator[bytes]:
    """The lines of a plain or gzip'd log; a corrupt `.gz` raises CorruptLog naming it."""
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            yield from f
    except (EOFError, gzip.BadGzipFile, zlib.error):
        raise CorruptLog(f"{path.name} is truncated or corrupt.") from None


def siblings(access_log: Path) -> list[Path]:
    """The log and its rotated files that exist (a plain file wins over its `.gz` twin)."""
    found = [access_log] if access_log.is_file() else []
    prefix = access_log.name
    names = set()
    try:
        candidates = list(access_log.parent.iterdir())
    except FileNotFoundError:
        return found
    for path in candidates:
        if path.name.startswith(prefix) and _ROTATED.fullmatch(path.name[len(prefix) :]) and path.is_file():
            names.add(path.name)
    for name in sorted(names):
        if name.endswith(".gz") and name.removesuffix(".gz") in names:
            continue
        found.append(access_log.parent / name)
    return found


def first_timestamp(path: Path) -> dt.datetime | None:
    """The timestamp of the first access line among a file's first lines; None if none."""
    with contextlib.closing(lines(path)) as f:
        for line in itertools.islice(f, FIRST_LINES):
            record = parse_line(line)
            if record is not None:
                return record.ts
    return None


def in_order(access_log: Path) -> list[LogFile]:
    """Every log file with access lines in it, oldest first."""
    files = [LogFile(path, first) for path in siblings(access_log) if (first := first_timestamp(path))]
    return sorted(files, key=lambda f: f.first)


def overlapping(files: list[LogFile], start: dt.datetime, end: dt.datetime) -> Iterator[LogFile]:
    """The files (of `in_order`) that may hold lines from `start` up to `end`: each file runs
    from its first line to the first line of the next."""
    for i, f in enumerate(files):
        until = files[i + 1].first if i + 1 < len(files) else None
        if f.first < end and (until is None or until >= start):
            yield f
