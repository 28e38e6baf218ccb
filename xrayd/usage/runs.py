"""One collector run, the same from cron (`xrayd collect`) and from xrayd (`collector.run`).

Under an flock in data_dir (a second run at the same time is refused, not queued): collect,
save the outcome in `data_dir/collector.json` for `collector.status`, and append the
`collector_run` event, in that order, all before returning, so a caller that goes away
(a closed connection, a stopping daemon) loses neither the files nor the record of them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xrayd import atomic
from xrayd.config import Config
from xrayd.errors import BadRequest, Conflict, DomainError
from xrayd.events import EventLog
from xrayd.live.ledger import Ledger
from xrayd.settings import Settings
from xrayd.usage import collector, logs

log = logging.getLogger(__name__)

STATE_FILE = "collector.json"
LOCK_FILE = "collector.lock"
EXIT_FAILED = 1
EVENT_DATES = 60  # dates listed in an event's data; the counts are always whole


@dataclass(frozen=True)
class Outcome:
    """A finished run, or a failed one with a sentence that says why."""

    ok: bool
    summary: dict[str, Any]
    error: str | None = None

    def event(self) -> dict[str, Any]:
        """The `collector_run` event's fields."""
        s = self.summary
        if self.ok:
            message = (
                f"Collector: {len(s['written'])} day(s) written, {len(s['unchanged'])} unchanged, "
                f"{len(s['missing'])} missing, {len(s['kept'])} kept."
            )
            severity = "warning" if s["missing"] or s["kept"] else "info"
            data = {
                **{f"{k}_count": len(s[k]) for k in ("written", "unchanged", "missing", "kept")},
                **{k: s[k][:EVENT_DATES] for k in ("written", "missing", "kept")},
                "lines": s["lines"],
                "connections": s["connections"],
                "user_days": s["user_days"],
            }
        else:
            message, severity, data = f"Collector failed: {self.error}", "error", {"error": self.error}
        return {
            "type": "collector_run",
            "message": message,
            "severity": severity,
            "service": "collector",
            "data": data,
        }


@contextlib.contextmanager
def run_lock(data_dir: Path) -> Iterator[None]:
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Conflict("The collector is already running.", error="collector_running") from None
        yield
    finally:
        os.close(fd)


def run(
    data_dir: Path,
    events: EventLog,
    *,
    access_log: Path,
    usage_dir: Path,
    include_today: bool = False,
    only: dt.date | None = None,
    progress: collector.Progress | None = None,
) -> Outcome:
    """One run, recorded. Raises Conflict when another run holds the lock and BadRequest for
    a date in the future (neither is a run); any other failure is a recorded Outcome(ok=False).

    Traffic comes from the ledger in `data_dir`, opened read-only: xrayd may be writing it,
    or may be down."""
    ledger = Ledger.in_data_dir(data_dir, readonly=True)
    with run_lock(data_dir), contextlib.closing(ledger):
        try:
            report = collector.collect(
                access_log=access_log,
                usage_dir=usage_dir,
                traffic=ledger.totals_for_day,
                today=dt.date.today(),
                include_today=include_today,
                only=only,
                progress=progress,
            )
        except BadRequest:
            raise
        except Exception as exc:
            log.exception("the collector failed")
            outcome = Outcome(False, {}, describe(exc))
        else:
            outcome = Outcome(True, report.summary())
        save_state(data_dir, outcome)
        events.append_sync(**outcome.event())
    return outcome


def describe(exc: Exception) -> str:
    """A failure as a sentence for the operator: which file and why, never a traceback."""
    if isinstance(exc, OSError) and exc.filename:
        return f"cannot use {exc.filename}: {exc.strerror or exc.__class__.__name__}."
    if isinstance(exc, logs.CorruptLog):
        return str(exc)
    return "an unexpected error; the details are in the log."


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def save_state(data_dir: Path, outcome: Outcome) -> None:
    """The last run, with its error (a sentence) when it failed; when it is, `last_run.ts`."""
    state = {
        "last_run": {"ts": _now(), "ok": outcome.ok, **outcome.summary},
        "last_error": outcome.error,
    }
    atomic.write_json(data_dir / STATE_FILE, state)


def load_state(data_dir: Path) -> dict[str, Any]:
    """The last run, and its error when it failed (null once a later run succeeds)."""
    try:
        state = json.loads((data_dir / STATE_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"last_run": None, "last_error": None}
    except (OSError, ValueError) as exc:
        log.warning("cannot read %s: %s", data_dir / STATE_FILE, exc)
        return {"last_run": None, "last_error": None}
    return {"last_run": state.get("last_run"), "last_error": state.get("last_error")}


def standalone(config: Config, *, include_today: bool, only: dt.date | None, quiet: bool) -> int:
    """`xrayd collect`: one run outside the daemon (cron), progress on stderr; the exit code
    is 0 when the run succeeded (missing days are a warning, printed even with `quiet`)."""
    settings = Settings(config.data_dir / "settings.json")
    try:
        settings.load()
    except ValueError as exc:
        print(f"xrayd collect: {exc}; using default event log settings", file=sys.stderr)
    events = EventLog(
        config.data_dir / "events.jsonl",
        max_bytes=settings.get("events", "max_file_mb") * 1024 * 1024,
        keep=settings.get("events", "keep_files"),
    )

    def progress(line: str) -> None:
        if not quiet:
            print(line, file=sys.stderr, flush=True)

    try:
        outcome = run(
            config.data_dir,
            events,
            access_log=config.access_log,
            usage_dir=config.usage_dir,
            include_today=include_today,
            only=only,
            progress=progress,
        )
    except DomainError as exc:
        print(f"xrayd collect: {exc.message}", file=sys.stderr)
        return EXIT_FAILED
    if not outcome.ok:
        print(f"xrayd collect: {outcome.error}", file=sys.stderr)
        return EXIT_FAILED
    event = outcome.event()
    if quiet and event["severity"] != "info":
        print(event["message"], file=sys.stderr)
    elif not quiet:
        print(event["message"])
    return 0
