"""The traffic ledger: durable per-user, per-day traffic and connection counts.

Xray's counters are read with reset, so once a poll has read them the ledger is the only
place those bytes exist: losing a write loses traffic. The ledger is one SQLite database in
`data_dir` (stdlib, no new dependency) because it gives exactly what this needs:

- Appended and fsynced each poll: WAL mode with `synchronous=FULL`, so each poll's
  transaction is appended to the write-ahead log and fsynced before `add` returns.
- Compacted per day: rows are keyed by (server-local day, email) and each poll adds into
  its day's row, so the file grows with days times users, never with polls.
- Exactly once: a poll's deltas and the marks that say how far they reach (the log tailer's
  offset) commit in one transaction, so a crash can neither count a line twice nor skip it.
- Readable from another process while xrayd writes (the cron collector): WAL readers never
  block the writer and see only committed polls. `Ledger(path, readonly=True)` never writes.

Only xrayd writes. Calls block (fsync): xrayd runs them in a worker thread.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from datetime import date
from pathlib import Path
from typing import Any, NamedTuple

FILE = "ledger.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
    day TEXT NOT NULL,              -- server-local date, YYYY-MM-DD
    email TEXT NOT NULL,            -- as Xray names the user's counters
    uplink INTEGER NOT NULL,        -- bytes
    downlink INTEGER NOT NULL,      -- bytes
    conns INTEGER NOT NULL,         -- accepted connections seen in access.log
    last_seen REAL,                 -- unix time of the user's last connection or traffic
    PRIMARY KEY (day, email)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS minutes (
    minute INTEGER NOT NULL,        -- Unix minute of the poll that read the traffic
    email TEXT NOT NULL,
    uplink INTEGER NOT NULL,
    downlink INTEGER NOT NULL,
    PRIMARY KEY (minute, email)
) WITHOUT ROWID;                    -- kept for the live retention only: rebuilds live series
CREATE TABLE IF NOT EXISTS marks (
    name TEXT PRIMARY KEY,          -- how far a source has been counted, e.g. the log tailer
    value TEXT NOT NULL             -- JSON
);
"""
_ADD = """
INSERT INTO usage (day, email, uplink, downlink, conns, last_seen) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (day, email) DO UPDATE SET
    uplink = uplink + excluded.uplink,
    downlink = downlink + excluded.downlink,
    conns = conns + excluded.conns,
    last_seen = max(coalesce(last_seen, excluded.last_seen), coalesce(excluded.last_seen, last_seen))
"""


class Usage(NamedTuple):
    """What the ledger knows about one user over a day or over all time."""

    uplink: int = 0
    downlink: int = 0
    conns: int = 0
    last_seen: float | None = None  # unix time


class Row(NamedTuple):
    """One delta to add: traffic and connections of `email` on server-local `day`."""

    day: date
    email: str
    uplink: int = 0
    downlink: int = 0
    conns: int = 0
    last_seen: float | None = None


class Ledger:
    """The ledger file at `path`. Thread-safe; one writer process (xrayd), any readers."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self.readonly = readonly
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        if not readonly:
            self._db = self._open()

    @classmethod
    def in_data_dir(cls, data_dir: Path, *, readonly: bool = False) -> Ledger:
        """The ledger of the daemon whose `data_dir` this is."""
        return cls(data_dir / FILE, readonly=readonly)

    def _open(self) -> sqlite3.Connection:
        if self.readonly:
            db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
        else:
            self.path.touch(mode=0o600, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)
        db.execute("PRAGMA busy_timeout=10000")
        return db

    def _conn(self) -> sqlite3.Connection | None:
        """The connection; a reader opens it once the writer has created the file."""
        if self._db is None and self.path.exists():
            self._db = self._open()
        return self._db

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # --- writing (xrayd only) ----------------------------------------------------------

    def add(
        self,
        rows: Iterable[Row],
        marks: Mapping[str, Any] | None = None,
        minutes: Iterable[tuple[int, str, int, int]] = (),
        forget_before: int | None = None,
    ) -> None:
        """Add `rows` and per-minute traffic `minutes` (minute, email, uplink, downlink), set
        `marks`, and drop minutes before `forget_before`: all or nothing, durable when this
        returns."""
        per_minute = [m for m in minutes if m[2] or m[3]]
        if self.readonly:
            raise PermissionError("this ledger was opened read-only")
        params = [
            (r.day.isoformat(), r.email, r.uplink, r.downlink, r.conns, r.last_seen)
            for r in rows
            if r.uplink or r.downlink or r.conns or r.last_seen is not None
        ]
        if not params and not marks and not per_minute and forget_before is None:
            return
        with self._lock:
            db = self._db
            assert db is not None, "the ledger is closed"
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(_ADD, params)
                db.executemany(
                    "INSERT OR REPLACE INTO marks (name, value) VALUES (?, ?)",
                    [(name, json.dumps(value)) for name, value in (marks or {}).items()],
                )
                db.executemany(
                    "INSERT INTO minutes (minute, email, uplink, downlink) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (minute, email) DO UPDATE SET uplink = uplink + excluded.uplink, "
                    "downlink = downlink + excluded.downlink",
                    per_minute,
                )
                if forget_before is not None:
                    db.execute("DELETE FROM minutes WHERE minute < ?", (forget_before,))
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # --- reading (any process) ---------------------------------------------------------

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            db = self._conn()
            return [] if db is None else db.execute(sql, args).fetchall()

    def mark(self, name: str) -> Any:
        """The value last set for `name` with `add`, or None."""
        rows = self._query("SELECT value FROM marks WHERE name = ?", (name,))
        return json.loads(rows[0][0]) if rows else None

    def traffic_minutes(self, since: int) -> list[tuple[int, str, int, int]]:
        """(minute, email, uplink, downlink) of every poll since Unix minute `since`."""
        return [
            (m, e, u, d)
            for m, e, u, d in self._query(
                "SELECT minute, email, uplink, downlink FROM minutes WHERE minute >= ? ORDER BY minute",
                (since,),
            )
        ]

    def days(self) -> list[date]:
        """Every server-local date with something counted, oldest first."""
        return [date.fromisoformat(d) for (d,) in self._query("SELECT DISTINCT day FROM usage ORDER BY day")]

    def usage_for_day(self, day: date) -> dict[str, Usage]:
        rows = self._query(
            "SELECT email, uplink, downlink, conns, last_seen FROM usage WHERE day = ?", (day.isoformat(),)
        )
        return {email: Usage(*rest) for email, *rest in rows}

    def usage_all_time(self) -> dict[str, Usage]:
        rows = self._query(
            "SELECT email, sum(uplink), sum(downlink), sum(conns), max(last_seen) FROM usage GROUP BY email"
        )
        return {email: Usage(*rest) for email, *rest in rows}

    def totals_for_day(self, day: date) -> dict[str, tuple[int, int]]:
        """{email: (uplink, downlink)} in bytes for one server-local date."""
        return {email: (u.uplink, u.downlink) for email, u in self.usage_for_day(day).items()}

    def totals_all_time(self) -> dict[str, tuple[int, int]]:
        """{email: (uplink, downlink)} in bytes over every day the ledger holds."""
        return {email: (u.uplink, u.downlink) for email, u in self.usage_all_time().items()}
