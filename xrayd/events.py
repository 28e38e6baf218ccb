"""The events log: `events.jsonl` in the data folder, one JSON object a line, every module appends.

Why it looks like this:

- Durable and never torn. Each batch of lines goes out in one `write()` to a file opened with
  O_APPEND, then `fsync`, all under an exclusive `flock` on `events.jsonl.lock`. The cron
  collector (another process) appends with `append_sync` under the same lock, so two writers
  never interleave and never race a rotation. A line is stamped (`ts`) under the lock, so the
  file is in time order across processes.
- Cheap under bursts. `append` queues its event and one flusher task writes everything queued
  so far in one write+fsync (group commit); `append` returns once its line is on disk. The
  blocking I/O runs in a worker thread, never on the event loop.
- Bounded. The file is rotated by size (`events.jsonl` → `.1` → … `.keep`); `keep` comes from
  operator settings and may change at run time. Messages and `data` are capped.
- Read newest-first without loading it. `list` and `stats` read backwards in blocks from the
  end of the current file, then the rotated ones, and stop at the first event older than the
  window. They open the files and note their sizes under a shared lock, so they never see a
  half-done write or rotation; a corrupt line is skipped and counted, never fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import math
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from xrayd.atomic import fsync_dir
from xrayd.errors import InvalidParams

log = logging.getLogger(__name__)

MiB = 1024 * 1024
SEVERITIES = ("info", "warning", "error")
MAX_MESSAGE = 1000  # characters; longer messages are cut
MAX_DATA = 16 * 1024  # bytes of serialized `data`; more is replaced by a short marker
MAX_LIMIT = 10_000
MAX_HOURS = 8760.0
MAX_KEEP = 1000
BLOCK = 64 * 1024  # read size when reading backwards
MAX_LINE = 1 * MiB  # a longer "line" is garbage; the reader skips it without holding it
# Lines are in time order, but a wall clock may step back a little: keep reading this far
# past the window's start before concluding that everything older is out of it.
CLOCK_SLACK = timedelta(minutes=1)

_NAME = re.compile(r"[a-z0-9_.-]{1,64}")

Event = dict[str, Any]
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def format_ts(moment: datetime) -> str:
    """ISO 8601 UTC with milliseconds: `2026-12-04T19:57:58.123Z`."""
    moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def make_event(
    type: str, message: str, *, severity: str = "info", service: str = "xrayd", data: Any = None
) -> Event:
    """A checked event without its `ts` (stamped when written).

    Raises ValueError on a bad severity, type, service, message or data: these come from our
    own code, so a bad one is a bug, not a client's mistake.
    """
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, not {severity!r}.")
    for name, value in (("type", type), ("service", service)):
        if not isinstance(value, str) or not _NAME.fullmatch(value):
            raise ValueError(f"{name} must match [a-z0-9_.-]{{1,64}}, not {value!r}.")
    if not isinstance(message, str):
        raise ValueError(f"message must be a string, not {message.__class__.__name__}.")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"data must be a JSON object (dict), not {data.__class__.__name__}.")
    try:
        text = json.dumps(data, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"data is not JSON-serialisable: {exc}") from None
    size = len(text.encode("utf-8"))
    # Round-trip: the event we return is exactly what a reader will get back.
    data = {"truncated": True, "bytes": size} if size > MAX_DATA else json.loads(text)
    return {
        "ts": None,
        "type": type,
        "severity": severity,
        "service": service,
        "message": message[:MAX_MESSAGE],
        "data": data,
    }


class EventLog:
    """`events.jsonl` and its rotated files: append (async or sync), list, stats."""

    def __init__(
        self, path: Path, *, max_bytes: int = 10 * MiB, keep: int = 5, clock: Clock = utcnow
    ) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise ValueError("max_bytes must be a positive whole number.")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.keep = keep
        self._clock = clock
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._pending: list[tuple[Event, asyncio.Future[Event]]] = []
        self._flusher: asyncio.Task[None] | None = None

    @property
    def keep(self) -> int:
        """How many rotated files are kept (and read); operators may change it at run time."""
        return self._keep

    @keep.setter
    def keep(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_KEEP:
            raise ValueError(f"keep must be a whole number from 0 to {MAX_KEEP}.")
        self._keep = value

    # --- writing -------------------------------------------------------------------------

    async def append(
        self,
        type: str,
        message: str,
        *,
        severity: str = "info",
        service: str = "xrayd",
        data: Any = None,
    ) -> Event:
        """Append one event; return it (with its `ts`) once its line is fsync'd.

        Concurrent calls share one write+fsync. Cancelling a call does not unwrite its event.
        """
        event = make_event(type, message, severity=severity, service=service, data=data)
        done: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._pending.append((event, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="events-flush")
        return await done

    async def aclose(self) -> None:
        """Wait until everything queued is written."""
        if self._flusher is not None:
            await self._flusher

    async def _flush(self) -> None:
        """Write what is queued, one batch per write+fsync, until the queue is empty."""
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await asyncio.to_thread(self._write, [event for event, _ in batch])
            except Exception as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
            except BaseException:  # cancelled: nobody will write the rest, so say so
                for _, done in batch + self._pending:
                    done.cancel()
                self._pending = []
                raise
            else:
                for event, done in batch:
                    if not done.done():
                        done.set_result(event)

    def append_sync(
        self,
        type: str,
        message: str,
        *,
        severity: str = "info",
        service: str = "xrayd",
        data: Any = None,
    ) -> Event:
        """`append` for code outside the event loop (the cron collector); blocks until durable."""
        event = make_event(type, message, severity=severity, service=service, data=data)
        self._write([event])
        return event

    @contextlib.contextmanager
    def _locked(self, how: int) -> Iterator[None]:
        # A fresh open file description each time, so the lock excludes threads as well as
        # processes; closing it releases the lock.
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, how)
            yield
        finally:
            os.close(fd)

    def _write(self, events: list[Event]) -> None:
        """Stamp, serialise and append `events`, rotating when the file would grow too big."""
        with self._locked(fcntl.LOCK_EX):
            for event in events:
                event["ts"] = format_ts(self._clock())
            lines = [(json.dumps(event, ensure_ascii=False) + "\n").encode("utf-8") for event in events]
            while lines:
                created = not self.path.exists()
                fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
                try:
                    size = os.fstat(fd).st_size
                    count = _fitting(lines, self.max_bytes - size, fresh=size == 0)
                    if count:
                        # A writer that died mid-line left no newline; end that line first.
                        torn = size > 0 and os.pread(fd, 1, size - 1) != b"\n"
                        _write_all(fd, b"\n" * torn + b"".join(lines[:count]))
                        os.fsync(fd)
                finally:
                    os.close(fd)
                if created:
                    fsync_dir(self.path.parent)
                if count:
                    lines = lines[count:]
                else:
                    self._rotate()

    def _rotated(self, n: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{n}")

    def _rotate(self) -> None:
        """`events.jsonl` → `.1` → `.2` …, dropping what would go past `keep`. Lock held."""
        keep = self.keep
        prefix = self.path.name + "."
        for old in self.path.parent.glob(prefix + "*"):
            suffix = old.name[len(prefix) :]
            if suffix.isdigit() and int(suffix) >= keep:
                old.unlink()
        for n in range(keep - 1, 0, -1):
            with contextlib.suppress(FileNotFoundError):
                os.replace(self._rotated(n), self._rotated(n + 1))
        if keep:
            os.replace(self.path, self._rotated(1))
        else:
            self.path.unlink()
        fsync_dir(self.path.parent)

    # --- reading -------------------------------------------------------------------------

    def list(
        self,
        *,
        limit: int = 100,
        hours: float = 24,
        type: str | None = None,
        severity: str | None = None,
        service: str | None = None,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """Events of the last `hours` before `now`, newest first, filtered.

        `total` counts every match within `hours`; `events` is the first `limit` of them.
        An empty filter (None or "") matches everything. Sync: callers run it in a thread.
        """
        limit = _check_limit(limit)
        since, until = self._window(hours, now)
        wanted = {
            "type": _check_name("type", type),
            "severity": _check_severity(severity),
            "service": _check_name("service", service),
        }
        wanted = {key: value for key, value in wanted.items() if value}
        events: list[Event] = []
        total = 0
        with contextlib.closing(self._scan(since, until)) as scan:
            for event in scan:
                if all(event[key] == value for key, value in wanted.items()):
                    total += 1
                    if len(events) < limit:
                        events.append(event)
        return {"events": events, "total": total}

    def stats(self, *, hours: float = 24, now: datetime | None = None) -> dict[str, Any]:
        """Counts by type, severity and service of the events of the last `hours`."""
        since, until = self._window(hours, now)
        by_type: Counter[str] = Counter()
        by_severity: Counter[str] = Counter(dict.fromkeys(SEVERITIES, 0))
        by_service: Counter[str] = Counter()
        with contextlib.closing(self._scan(since, until)) as scan:
            for event in scan:
                by_type[event["type"]] += 1
                by_severity[event["severity"]] += 1
                by_service[event["service"]] += 1
        return {
            "by_type": dict(by_type.most_common()),
            "by_severity": dict(by_severity),
            "by_service": dict(by_service.most_common()),
            "total": by_type.total(),
        }

    def _window(self, hours: float, now: datetime | None) -> tuple[datetime, datetime]:
        until = now if now is not None else self._clock()
        return until - timedelta(hours=_check_hours(hours)), until

    def _scan(self, since: datetime, until: datetime) -> Iterator[Event]:
        """Valid events with `since <= ts <= until`, newest first; stops past the window."""
        files = self._open_for_reading()
        corrupt = 0
        try:
            for fd, size in files:
                for line in _lines_backwards(fd, size):
                    parsed = _parse(line) if line is not None else None
                    if parsed is None:
                        corrupt += 1
                        continue
                    event, ts = parsed
                    if ts < since - CLOCK_SLACK:
                        return
                    if since <= ts <= until:
                        yield event
        finally:
            for fd, _ in files:
                os.close(fd)
            if corrupt:
                log.warning("skipped %d corrupt line(s) reading %s", corrupt, self.path)

    def _open_for_reading(self) -> list[tuple[int, int]]:
        """Open the current and rotated files, newest first, each with its size right now.

        Under the shared lock no write or rotation is half done, so each (fd, size) holds only
        whole lines; the open fds keep reading the same files whatever rotates afterwards.
        """
        files: list[tuple[int, int]] = []
        with self._locked(fcntl.LOCK_SH):
            for path in [self.path, *(self._rotated(n) for n in range(1, self.keep + 1))]:
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    continue
                files.append((fd, os.fstat(fd).st_size))
        return files


def _fitting(lines: list[bytes], room: int, *, fresh: bool) -> int:
    """How many of `lines` fit in `room` bytes (at least one in a fresh file)."""
    count = used = 0
    for line in lines:
        if used + len(line) > room and (count or not fresh):
            break
        used += len(line)
        count += 1
    return count


def _write_all(fd: int, data: bytes) -> None:
    # One write() for the whole batch; the loop only matters if the kernel writes short.
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _lines_backwards(fd: int, size: int) -> Iterator[bytes | None]:
    """The lines of the first `size` bytes of `fd`, last first, reading `BLOCK`s backwards.

    A piece longer than `MAX_LINE` without a newline comes out as None (corrupt) and is never
    held whole. The final piece is yielded even without its newline; parsing judges it.
    """
    pos, tail, oversized = size, b"", False
    while pos > 0:
        start = max(0, pos - BLOCK)
        chunk = os.pread(fd, pos - start, start)
        pos = start
        *later, last = chunk.split(b"\n")
        if later:
            first = later.pop(0)
            pieces = [*later, last + tail] if not oversized else later
            if oversized:
                yield None
            for line in reversed(pieces):
                if line:
                    yield line
            tail, oversized = first, False
        elif not oversized:
            tail = last + tail
        if len(tail) > MAX_LINE:
            tail, oversized = b"", True
    if oversized:
        yield None
    elif tail:
        yield tail


def _parse(line: bytes) -> tuple[Event, datetime] | None:
    """The event on `line` and its time, or None if the line is not a whole, valid event."""
    try:
        event = json.loads(line.decode("utf-8"))
        if not isinstance(event, dict):
            return None
        fields = ("ts", "type", "severity", "service", "message")
        if not all(isinstance(event.get(key), str) for key in fields):
            return None
        if not isinstance(event.get("data"), dict):
            return None
        ts = datetime.fromisoformat(event["ts"])
    except ValueError:  # bad JSON, bad UTF-8 or a bad date
        return None
    if ts.tzinfo is None:
        return None
    return event, ts


def _check_limit(limit: Any) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidParams("limit", f"limit must be a whole number from 1 to {MAX_LIMIT}.")
    return limit


def _check_hours(hours: Any) -> float:
    if (
        isinstance(hours, bool)
        or not isinstance(hours, int | float)
        or not math.isfinite(hours)
        or not 1 <= hours <= MAX_HOURS
    ):
        raise InvalidParams("hours", f"hours must be a number from 1 to {MAX_HOURS:g}.")
    return float(hours)


def _check_name(param: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise InvalidParams(param, f"{param} must be 1 to 64 characters of a-z, 0-9, '_', '.' or '-'.")
    return value


def _check_severity(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if value not in SEVERITIES:
        raise InvalidParams("severity", f"severity must be one of: {', '.join(SEVERITIES)}.")
    return value
