"""The live service: tails access.log, polls Xray's counters, keeps the ledger and the buckets.

Two background tasks and one lock:
- the tailer reads whole-line chunks (in a worker thread, with the scan), adds them to the
  buckets at once, and to the ledger's pending connections once they are past the durable
  position; it wakes on watchfiles events for the log's folder, and polls every second as
  well, for file systems that give no events (or when watching fails);
- the poller, every `stats_poll_seconds`, reads Xray's counters with reset, adds the deltas
  to the buckets, and commits everything pending to the ledger in one transaction, with the
  tailer's position. It also runs right before every restart of Xray, and at shutdown.
While Xray's API is down `stats_ok` is false and the rest goes on; the deltas of a commit
that failed stay pending for the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from itertools import repeat
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from watchfiles import awatch

from xrayd.errors import DomainError
from xrayd.live import stats
from xrayd.live.aggregates import Aggregates
from xrayd.live.buckets import DETAIL_MINUTES
from xrayd.live.ledger import Ledger, Row, Usage
from xrayd.live.scan import Scanner, Tally
from xrayd.live.tailer import Chunk, Follower, Position, start_offset

if TYPE_CHECKING:
    from xrayd.daemon import Daemon

log = logging.getLogger(__name__)

TAIL_MARK = "tail"
POLL_FALLBACK = 1.0  # seconds between looks at the log when no file event comes
# The tailer and the watcher start this long after the lifespan, so that their first steps
# (watchfiles sets up inotify and imports anyio on the event loop) do not run while the
# daemon is between opening its socket and setting its mode and signal handlers.
START_DELAY = 0.2


def local_day(minute: int) -> date:
    return datetime.fromtimestamp(minute * 60).date()


class LiveService:
    def __init__(self, d: Daemon) -> None:
        self.d = d
        self.ledger: Ledger | None = None
        self.aggregates = Aggregates(d.settings.get("live", "retention_hours") * 60)
        self.stats_ok = True
        self._scanner = Scanner()
        self._lock = asyncio.Lock()  # one commit at a time
        self._pending: dict[tuple[date, str], list[float]] = {}  # (day, email) -> [up, down, conns, last]
        self._pending_minutes: list[tuple[int, str, int, int]] = []  # traffic per poll minute
        self._position: Position | None = None  # durable: how far conns are pending or committed
        self._log_minute = 0  # the latest minute read from the log (now, when caught up)
        self._changed = asyncio.Event()

    @property
    def clock(self) -> float:
        return time.time()

    def now_minute(self) -> int:
        return int(self.clock // 60)

    def retention_changed(self, hours: int) -> None:
        self.aggregates.retention = hours * 60

    # --- lifecycle ---------------------------------------------------------------------

    async def lifespan(self) -> AsyncIterator[None]:
        self.ledger = await asyncio.to_thread(Ledger.in_data_dir, self.d.config.data_dir)
        self._position = Position.from_json(await asyncio.to_thread(self.ledger.mark, TAIL_MARK))
        await self._restore_traffic()
        tasks = [
            asyncio.create_task(self._tail(), name="live-tail"),
            asyncio.create_task(self._watch(), name="live-watch"),
            asyncio.create_task(self._poll_forever(), name="live-poll"),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                try:
                    await task
                except asyncio.CancelledError:
                    pass
                except Exception:
                    log.exception("live task %s failed", task.get_name())
            try:
                await self.poll_once()  # what Xray counted and what we read, before we go
            except Exception:
                log.exception("the last live poll failed")
            await asyncio.to_thread(self.ledger.close)

    async def _restore_traffic(self) -> None:
        """Put the traffic of the retention window back into the buckets (after a restart)."""
        assert self.ledger is not None
        now = self.now_minute()
        rows = await asyncio.to_thread(self.ledger.traffic_minutes, now - self.aggregates.retention + 1)
        by_minute: dict[int, dict[str, tuple[int, int]]] = {}
        for minute, email, up, down in rows:
            by_minute.setdefault(minute, {})[email] = (up, down)
        for minute, deltas in by_minute.items():
            self.aggregates.add_traffic(deltas, minute, minute * 60.0)
        self.aggregates.seal(now - 1, now)

    # --- the log -----------------------------------------------------------------------

    async def _watch(self) -> None:
        """Set `_changed` on every file event in the log's folder; give up quietly when
        watching is not possible (the tailer polls anyway)."""
        folder = self.d.config.access_log.parent
        logging.getLogger("watchfiles").setLevel(logging.WARNING)  # not a line per append
        await asyncio.sleep(START_DELAY)
        while True:
            try:
                async for _ in awatch(folder, debounce=50, step=10, recursive=False, watch_filter=None):
                    self._changed.set()
            except Exception as exc:  # no inotify, a folder that is not there yet, ...
                log.debug("watching %s failed (%s); polling only", folder, exc)
            await asyncio.sleep(POLL_FALLBACK * 5)

    async def _tail(self) -> None:
        await asyncio.sleep(START_DELAY)
        path = self.d.config.access_log
        since = datetime.fromtimestamp(self.clock) - timedelta(minutes=self.aggregates.retention)
        window_start = await asyncio.to_thread(start_offset, path, since)
        durable = Follower(path, self._position)
        if self._position is None:
            # First start: count from the window's start, in the buckets and the ledger alike.
            await asyncio.to_thread(durable.start_at, window_start)
        else:
            await self._replay(path, window_start)
        while True:
            self._changed.clear()
            try:
                chunk = await asyncio.to_thread(durable.read)
                if chunk is not None:
                    tally = await asyncio.to_thread(self._scan, chunk)
                    self._add(tally, chunk.skipped)
                    self._keep(tally)
                    self._position = chunk.position
                    continue
            except Exception:  # an I/O error, a bug: the position did not move, so try again
                log.exception("reading %s failed", path)
            self._log_minute = self.now_minute()
            self.aggregates.seal(self._log_minute - 1, self.now_minute())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), POLL_FALLBACK)

    async def _replay(self, path: Path, offset: int) -> None:
        """After a restart: the part of the window before the durable position goes to the
        buckets only (the ledger has it already)."""
        position = self._position
        assert position is not None
        replay = Follower(path)
        started = await asyncio.to_thread(replay.start_at, offset)
        if (
            not started
            or replay.position is None
            or (replay.position.dev, replay.position.ino) != (position.dev, position.ino)
        ):
            replay.close()
            return
        while replay.position.offset < position.offset:
            chunk = await asyncio.to_thread(
                replay.read, min(1 << 20, position.offset - replay.position.offset)
            )
            if chunk is None:
                break
            self._add(await asyncio.to_thread(self._scan, chunk), chunk.skipped)
        replay.close()

    def _scan(self, chunk: Chunk) -> Tally:
        return self._scanner.scan(chunk.data, self.now_minute() - DETAIL_MINUTES)

    def _add(self, tally: Tally, skipped: int) -> None:
        now = self.now_minute()
        self.aggregates.add_tally(tally, now)
        self.aggregates.unparsed += skipped
        latest = tally.pairs.latest()
        if latest is not None:
            self._log_minute = latest
        self.aggregates.seal(min(now, self._log_minute) - 1, now)

    def _keep(self, tally: Tally) -> None:
        """Connections past the durable position wait in `_pending` for the next commit.
        The rows are summed per (local day, email) with numpy: Python works per minute and per
        (day, email), not per row (a backfill has about as many rows as lines)."""
        pairs = tally.pairs
        if not len(pairs):
            return
        runs = list(pairs.runs())
        index: dict[date, int] = {}
        day_of_run = [index.setdefault(local_day(minute), len(index)) for minute, _ in runs]
        sizes = [rows.stop - rows.start for _, rows in runs]
        n_emails = len(pairs.emails)
        key = np.repeat(np.array(day_of_run, dtype=np.int64), sizes) * n_emails + pairs.email
        order = np.argsort(key, kind="stable")  # grouped per (day, email), in minute order
        key = key[order]
        first = np.flatnonzero(np.diff(key, prepend=-1))
        conns = np.add.reduceat(pairs.count[order], first)
        minutes = pairs.minute[order] * 60.0
        lo, hi = minutes[first], minutes[np.append(first[1:], key.size) - 1]
        day, email = np.divmod(key[first], n_emails)
        seen = np.fromiter(map(tally.last_seen.get, pairs.emails, repeat(np.nan)), np.float64, n_emails)
        exact = seen[email]  # the email's latest line, if recent: it belongs to one day only
        last = np.where((exact >= lo) & (exact < hi + 60), exact, hi)  # else the day's last minute
        days = np.array(list(index), dtype=object)[day].tolist()
        emails = np.array(pairs.emails, dtype=object)[email].tolist()
        pending = self._pending
        for k, n, late in zip(zip(days, emails, strict=True), conns.tolist(), last.tolist(), strict=True):
            row = pending.get(k)
            if row is None:
                pending[k] = [0, 0, n, late]
            else:
                row[2] += n
                if late > row[3]:
                    row[3] = late

    # --- the counters ------------------------------------------------------------------

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.d.config.stats_poll_seconds)
            try:
                await self.poll_once()
            except Exception:
                log.exception("live poll failed")

    async def poll_once(self) -> None:
        """Read Xray's counters (with reset) and commit everything pending to the ledger."""
        async with self._lock:
            now = self.clock
            try:
                deltas = await stats.read_and_reset(self.d.config)
            except DomainError as exc:
                await self._stats_state(False, exc.message)
                deltas = {}
            else:
                await self._stats_state(True, "")
            minute = int(now // 60)
            self.aggregates.add_traffic(deltas, minute, now)
            day = local_day(minute)
            for email, (up, down) in deltas.items():
                if up or down:
                    self._pending_minutes.append((minute, email, up, down))
                    row = self._pending.setdefault((day, email), [0, 0, 0, now])
                    row[0] += up
                    row[1] += down
                    row[3] = max(row[3], now)
            await self._commit()
            self.aggregates.seal(min(minute, self._log_minute) - 1, minute)

    async def _commit(self) -> None:
        assert self.ledger is not None
        pending, position, minutes = self._pending, self._position, self._pending_minutes
        rows = [
            Row(day, email, int(u), int(dn), int(c), last)
            for (day, email), (u, dn, c, last) in pending.items()
        ]
        marks = {TAIL_MARK: position.to_json()} if position is not None else {}
        self._pending, self._pending_minutes = {}, []
        forget = self.now_minute() - self.aggregates.retention
        try:
            await asyncio.to_thread(self.ledger.add, rows, marks, minutes, forget)
        except Exception:
            self._pending_minutes = minutes + self._pending_minutes
            for (day, email), row in pending.items():  # keep them for the next commit
                again = self._pending.setdefault((day, email), [0, 0, 0, row[3]])
                for i in range(3):
                    again[i] += row[i]
                again[3] = max(again[3], row[3])
            raise

    async def _stats_state(self, ok: bool, why: str) -> None:
        if ok == self.stats_ok:
            return
        self.stats_ok = ok
        if ok:
            await self.d.event("stats_recovered", "Xray's stats API answers again", service="live")
        else:
            await self.d.event(
                "stats_unavailable",
                f"Traffic counters cannot be read: {why}",
                severity="warning",
                service="live",
            )

    # --- all time ----------------------------------------------------------------------

    async def usage_all_time(self) -> dict[str, Usage]:
        """The ledger's totals plus what is pending for its next commit."""
        assert self.ledger is not None
        totals = dict(await asyncio.to_thread(self.ledger.usage_all_time))
        for (_, email), (up, down, conns, last) in self._pending.items():
            u = totals.get(email, Usage())
            seen = max(x for x in (u.last_seen, last) if x is not None)
            totals[email] = Usage(u.uplink + int(up), u.downlink + int(down), u.conns + int(conns), seen)
        return totals
