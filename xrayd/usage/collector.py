"""The collector: build the usage file of each finished server-local day not yet collected.

Inputs: access.log with its rotated siblings (connections, source IPs, domains) and the
traffic ledger (bytes per user per day). Output: `usage_dir/YYYY-MM-DD.csv` (xrayd.usage.files),
written atomically; the same inputs give the same bytes, and a file that would not change is
left alone.

Which days:
- A day is collected when its file exists and was written after the day ended. A file
  written during its day (a run with `include_today`) is partial and is collected again.
- Without a `date`, the days from the day after the newest collected one (or from the first
  day in the log, whichever is earlier) up to yesterday (today with `include_today`),
  skipping the collected ones.
- A day before the log's first line has no log any more: it is reported as `missing`, and
  no file is invented for it. A day the log begins in is collected from what is left, unless
  its existing file counted lines older than the log's first line (rotation has removed
  them since): that file is `kept`, never replaced by a smaller count.

Days are processed a few at a time, each batch in one pass over the log files that overlap
it, so memory stays bounded on a long backlog. `xrayd.usage.runs` wraps a call in the run
lock and records it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xrayd import atomic
from xrayd.errors import BadRequest
from xrayd.live.parser import parse_line
from xrayd.usage import files, logs

Traffic = Callable[[dt.date], Mapping[str, tuple[int, int]]]  # date → {email: (uplink, downlink)}
Progress = Callable[[str], None]

BATCH_DAYS = 7
FILE_MODE = 0o600  # who visited what is private: root reads it, the gateway asks xrayd


def day_start(date: dt.date) -> dt.datetime:
    return dt.datetime.combine(date, dt.time())


@dataclass
class Report:
    """What one run did; `summary()` is what the event, the state file and the RPC show."""

    written: list[dt.date] = field(default_factory=list)
    unchanged: list[dt.date] = field(default_factory=list)
    missing: list[dt.date] = field(default_factory=list)
    kept: list[dt.date] = field(default_factory=list)
    log_begins: dt.datetime | None = None
    files_read: list[str] = field(default_factory=list)
    lines: int = 0
    unparsed: int = 0
    connections: int = 0
    user_days: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "written": [d.isoformat() for d in self.written],
            "unchanged": [d.isoformat() for d in self.unchanged],
            "missing": [d.isoformat() for d in self.missing],
            "kept": [d.isoformat() for d in self.kept],
            "log_begins": None if self.log_begins is None else self.log_begins.isoformat(),
            "files_read": self.files_read,
            "lines": self.lines,
            "unparsed_lines": self.unparsed,
            "connections": self.connections,
            "user_days": self.user_days,
        }


# --- which days ------------------------------------------------------------------------


def is_complete(path: Path, date: dt.date) -> bool:
    """Whether a day's file was written after the day ended (else a partial `include_today`)."""
    return os.stat(path).st_mtime >= day_start(date + dt.timedelta(days=1)).timestamp()


def _collected(usage_dir: Path) -> dict[dt.date, bool]:
    """Dates with a file → whether it is complete."""
    out = {}
    for date in files.list_dates(usage_dir):
        with contextlib.suppress(FileNotFoundError):
            out[date] = is_complete(files.path_for(usage_dir, date), date)
    return out


def plan(
    *,
    today: dt.date,
    include_today: bool,
    only: dt.date | None,
    collected: Mapping[dt.date, bool],
    log_begins: dt.datetime | None,
    earliest_in_file: Callable[[dt.date], dt.datetime | None],
    report: Report,
) -> list[dt.date]:
    """The days to build now; fills `report.missing` and `report.kept` with the others."""
    if only is not None:
        if only > today:
            raise BadRequest(f"{only.isoformat()} has not happened yet.", error="date_in_future")
        candidates = [only]
    else:
        last = today if include_today else today - dt.timedelta(days=1)
        complete = [d for d, done in collected.items() if done]
        starts = [max(complete) + dt.timedelta(days=1)] if complete else []
        if log_begins is not None:
            starts.append(log_begins.date())
        due = {d for d, done in collected.items() if not done and d <= last}
        day = min(starts, default=last + dt.timedelta(days=1))
        while day <= last:
            if not collected.get(day, False):
                due.add(day)
            day += dt.timedelta(days=1)
        candidates = sorted(due)
    todo = []
    for day in candidates:
        if log_begins is None or day < log_begins.date():
            report.missing.append(day)
        elif day == log_begins.date() and day in collected and _lost(earliest_in_file(day), log_begins):
            report.kept.append(day)
        else:
            todo.append(day)
    return todo


def _lost(earliest: dt.datetime | None, log_begins: dt.datetime) -> bool:
    """Whether a file counted lines from before the log's first line (rotated away since).
    Files keep whole seconds, so the comparison is in whole seconds."""
    return earliest is not None and earliest < log_begins.replace(microsecond=0)


def earliest_line(usage_dir: Path, date: dt.date) -> dt.datetime | None:
    """The earliest `first_seen` in a day's file: the oldest log line it counted."""
    try:
        parsed = files.parse(files.path_for(usage_dir, date).read_bytes())
    except (FileNotFoundError, files.FormatError):
        return None
    seconds = [s for s in parsed.first_seen if s != files.NO_TIME]
    return day_start(date) + dt.timedelta(seconds=min(seconds)) if seconds else None


# --- counting --------------------------------------------------------------------------


def _clean(value: str | None) -> str | None:
    """A name fit for the file (lowercased, one line), or None to drop it."""
    if not value or "\n" in value or "\r" in value:
        return None
    return value.lower()


def count_batch(
    log_files: list[logs.LogFile], days: list[dt.date], report: Report, progress: Progress
) -> dict[dt.date, dict[str, files.UserDay]]:
    """Per day and user: connections, source IPs, domains, first and last line, from the log."""
    usage: dict[dt.date, dict[str, files.UserDay]] = {day: {} for day in days}
    start, end = day_start(days[0]), day_start(days[-1] + dt.timedelta(days=1))
    for log_file in logs.overlapping(log_files, start, end):
        progress(f"reading {log_file.path.name}")
        report.files_read.append(log_file.path.name)
        for line in logs.lines(log_file.path):
            report.lines += 1
            record = parse_line(line)
            if record is None:
                report.unparsed += 1
                continue
            users = usage.get(record.ts.date())
            if users is None or not record.accepted:
                continue
            email, host = _clean(record.email), _clean(record.host)
            if email is None or host is None:
                continue
            user = users.get(email)
            if user is None:
                user = users[email] = files.UserDay(email, first_seen=record.ts, last_seen=record.ts)
            user.connections += 1
            user.ips.add(record.src_ip)
            user.domains[host] = user.domains.get(host, 0) + 1
            if record.ts < user.first_seen:  # type: ignore[operator]
                user.first_seen = record.ts
            if record.ts > user.last_seen:  # type: ignore[operator]
                user.last_seen = record.ts
    return usage


def _add_traffic(users: dict[str, files.UserDay], traffic: Mapping[str, tuple[int, int]]) -> None:
    for raw, (up, down) in traffic.items():
        email = _clean(raw)
        if email is None or not (up or down):
            continue
        user = users.get(email)
        if user is None:
            user = users[email] = files.UserDay(email)
        user.uplink += up
        user.downlink += down


def _write(path: Path, date: dt.date, data: bytes) -> bool:
    """Replace `path` with `data` unless it holds exactly that and is complete."""
    with contextlib.suppress(FileNotFoundError):
        if path.read_bytes() == data and is_complete(path, date):
            return False
    atomic.write_bytes(path, data, mode=FILE_MODE)
    return True


def collect(
    *,
    access_log: Path,
    usage_dir: Path,
    traffic: Traffic,
    today: dt.date,
    include_today: bool = False,
    only: dt.date | None = None,
    progress: Progress | None = None,
) -> Report:
    """Build the usage files due now (see the module docstring); return what was done."""
    say = progress or (lambda _: None)
    report = Report()
    log_files = logs.in_order(access_log)
    report.log_begins = log_files[0].first if log_files else None
    todo = plan(
        today=today,
        include_today=include_today,
        only=only,
        collected=_collected(usage_dir),
        log_begins=report.log_begins,
        earliest_in_file=lambda day: earliest_line(usage_dir, day),
        report=report,
    )
    for day in report.missing:
        say(f"{day.isoformat()}: no access log covers this day any more; not written")
    for day in report.kept:
        say(f"{day.isoformat()}: the log now begins inside this day; the existing file is kept")
    usage_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
    for batch in _batches(todo):
        counted = count_batch(log_files, batch, report, say)
        for day in batch:
            users = counted[day]
            _add_traffic(users, traffic(day))
            changed = _write(files.path_for(usage_dir, day), day, files.render(users))
            (report.written if changed else report.unchanged).append(day)
            conns = sum(u.connections for u in users.values())
            report.connections += conns
            report.user_days += len(users)
            state = "written" if changed else "unchanged"
            say(f"{day.isoformat()}: {state}, {len(users)} users, {conns} connections")
    return report


def _batches(days: list[dt.date]) -> Iterator[list[dt.date]]:
    """Runs of at most BATCH_DAYS days, each within BATCH_DAYS of its first day."""
    batch: list[dt.date] = []
    for day in days:
        if batch and (day - batch[0]).days >= BATCH_DAYS:
            yield batch
            batch = []
        batch.append(day)
    if batch:
        yield batch
