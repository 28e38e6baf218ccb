"""Follow Xray's access.log across rotations, a chunk of whole lines at a time.

Synchronous and owned by one task at a time (the live service runs it in a worker thread).
Nothing is buffered between calls: the offset only moves past lines that were returned, and
a partial last line is read again next time, so what `Position` says was handed out is
exactly what was counted. A position is (device, inode, offset) plus the bytes just before
the offset, which tell a file that was truncated and grew again, or a new file that got the
old inode number, from the file we were reading.

Rotation:
- rename + create: the old inode is read to its end first; we move to the new file once it
  has data, or once the old one has been quiet for `ROTATE_GRACE` seconds (Xray keeps writing
  to the renamed file until `xray api restartlogger` or a restart reopens it).
- copytruncate: the file shrinks (or its bytes before our offset change). The rest of what we
  had not read is in the copy logrotate made: a sibling file whose bytes before our offset
  match ours is read from our offset to its end, then the truncated file from its start.
- a log that does not exist yet is waited for; a position whose file is gone is looked for
  among the log's rotated siblings (a restart across a rotation), else dropped.

`start_offset` finds where the retention window begins by binary search on line timestamps,
so a multi-GB log is never read from its start.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

CHUNK = 1 << 20  # bytes read at once
FINGERPRINT = 64  # bytes before the offset kept to recognise the file
ROTATE_GRACE = 5.0  # seconds the renamed file must be quiet before we leave it
MAX_LINE_SKIP = 8192  # a "line" longer than this without a newline is skipped as garbage

_STAMP = re.compile(rb"(\d{4})/(\d\d)/(\d\d) (\d\d):(\d\d):(\d\d)")


@dataclass(frozen=True)
class Position:
    """How far a log file has been handed out."""

    dev: int
    ino: int
    offset: int
    tail: bytes = b""  # the FINGERPRINT bytes before `offset`

    def to_json(self) -> dict[str, Any]:
        return {"dev": self.dev, "ino": self.ino, "offset": self.offset, "tail": self.tail.hex()}

    @classmethod
    def from_json(cls, value: Any) -> Position | None:
        try:
            return cls(
                int(value["dev"]), int(value["ino"]), int(value["offset"]), bytes.fromhex(value["tail"])
            )
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True)
class Chunk:
    """Whole lines read, and the position after them."""

    data: bytes
    position: Position
    skipped: int = 0  # over-long lines dropped without a newline in sight


class Follower:
    """Reads `path` from a position on, across rotations."""

    def __init__(
        self, path: Path, position: Position | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.path = path
        self.position = position
        self._fd: int | None = None
        self._clock = clock
        self._quiet_since: float | None = None
        self._skipping = False  # inside a line too long to be one

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def start_at(self, offset: int) -> bool:
        """Go on from `offset` (a line start) of the log itself; False while it does not exist."""
        self.close()
        fd = _open(self.path)
        if fd is None:
            return False
        st = os.fstat(fd)
        start = max(0, offset - FINGERPRINT)
        self._fd = fd
        self.position = Position(st.st_dev, st.st_ino, offset, os.pread(fd, offset - start, start))
        return True

    def read(self, limit: int = CHUNK) -> Chunk | None:
        """The next whole lines (about `limit` bytes), or None when nothing moved. A chunk may
        hold no lines when only the rest of an over-long line was skipped."""
        if self._fd is None and not self._open():
            return None
        assert self._fd is not None
        if not self._recognised(self._fd):  # copytruncate, maybe already grown again
            self._leave_truncated()
            if self._fd is None:
                return None
        chunk = self._read_from(limit)
        if chunk is not None:
            self._quiet_since = None
            return chunk
        if self._rotated_away():
            self.close()
            self.position = None
            self._skipping = False
            return self.read(limit) if self._open() else None
        return None

    # --- opening -----------------------------------------------------------------------

    def _open(self) -> bool:
        """Open the file the position names (maybe a rotated sibling), else the log itself."""
        if self.position is not None:
            for candidate in self._candidates():
                fd = self._ours(candidate)
                if fd is not None:
                    self._fd = fd
                    return True
        fd = _open(self.path)
        if fd is None:
            return False
        st = os.fstat(fd)
        self._fd = fd
        self.position = Position(st.st_dev, st.st_ino, 0)
        return True

    def _ours(self, path: Path) -> int | None:
        """An open fd on `path` if it is the file our position names, with our bytes in it."""
        assert self.position is not None
        fd = _open(path)
        if fd is None:
            return None
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) == (self.position.dev, self.position.ino) and self._recognised(fd):
            return fd
        os.close(fd)
        return None

    def _candidates(self) -> list[Path]:
        """The log, then its rotated siblings (`access.log.1`, `access.log-20260301`, …)."""
        siblings: list[Path] = []
        with contextlib.suppress(OSError):
            siblings = sorted(
                p for p in self.path.parent.iterdir() if p.name.startswith(self.path.name) and p != self.path
            )
        return [self.path, *siblings]

    def _recognised(self, fd: int) -> bool:
        """Whether `fd` still holds, just before our offset, the bytes we read there."""
        assert self.position is not None
        tail, offset = self.position.tail, self.position.offset
        return os.fstat(fd).st_size >= offset and os.pread(fd, len(tail), offset - len(tail)) == tail

    # --- reading -----------------------------------------------------------------------

    def _read_from(self, limit: int) -> Chunk | None:
        assert self._fd is not None and self.position is not None
        data = os.pread(self._fd, limit, self.position.offset)
        if not data:
            return None
        if self._skipping:
            newline = data.find(b"\n")
            if newline < 0:
                return self._advance(data, b"", 0)
            self._skipping = False
            return self._advance(data[: newline + 1], b"", 1)
        end = data.rfind(b"\n") + 1
        if end == 0:
            if len(data) < MAX_LINE_SKIP:
                return None  # a line still being written
            self._skipping = True
            return self._advance(data, b"", 0)
        return self._advance(data[:end], data[:end], 0)

    def _advance(self, consumed: bytes, lines: bytes, skipped: int) -> Chunk:
        assert self.position is not None
        tail = (self.position.tail + consumed[-FINGERPRINT:])[-FINGERPRINT:]
        self.position = replace(self.position, offset=self.position.offset + len(consumed), tail=tail)
        return Chunk(lines, self.position, skipped)

    def _leave_truncated(self) -> None:
        """The file was truncated under us: go on in logrotate's copy if there is one (then on
        to the log as after a rename), else from the start of the log."""
        self.close()
        self._skipping = False
        for sibling in self._candidates()[1:]:
            fd = _open(sibling)
            if fd is not None and self._recognised(fd):
                st = os.fstat(fd)
                self._fd = fd
                self.position = replace(self.position, dev=st.st_dev, ino=st.st_ino)  # type: ignore[arg-type]
                return
            if fd is not None:
                os.close(fd)
        self._open_fresh()

    def _open_fresh(self) -> None:
        fd = _open(self.path)
        if fd is None:
            self.position = None
            return
        st = os.fstat(fd)
        self._fd = fd
        self.position = Position(st.st_dev, st.st_ino, 0)

    def _rotated_away(self) -> bool:
        """rename + create: the path names another file now, and we are done with ours."""
        assert self._fd is not None
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        mine = os.fstat(self._fd)
        if (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino):
            return False
        now = self._clock()
        if self._quiet_since is None:
            self._quiet_since = now
        return st.st_size > 0 or now - self._quiet_since >= ROTATE_GRACE


def _open(path: Path) -> int | None:
    try:
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None


def line_time(data: bytes) -> datetime | None:
    """The timestamp a line starts with, if any."""
    m = _STAMP.match(data)
    if m is None:
        return None
    try:
        return datetime(*(int(g) for g in m.groups()))  # type: ignore[arg-type]
    except ValueError:
        return None


def start_offset(path: Path, since: datetime, *, probe: int = 4096) -> int:
    """Offset of the first line stamped at or after `since` (file size if none), found by
    binary search over line starts: O(log size) reads. Lines are in time order, as Xray
    writes them; an unstamped stretch is stepped over."""
    fd = _open(path)
    if fd is None:
        return 0
    try:
        size = os.fstat(fd).st_size

        def first_stamp_after(offset: int) -> tuple[int, datetime | None]:
            """(start of the first stamped line at or after the line start following
            `offset`, its time)."""
            pos = offset
            if pos > 0:
                before = os.pread(fd, 1, pos - 1)
                if before != b"\n":
                    block = os.pread(fd, probe, pos)
                    newline = block.find(b"\n")
                    while newline < 0 and block:
                        pos += len(block)
                        block = os.pread(fd, probe, pos)
                        newline = block.find(b"\n")
                    if newline < 0:
                        return size, None
                    pos += newline + 1
            while pos < size:
                block = os.pread(fd, probe, pos)
                stamp = line_time(block)
                if stamp is not None:
                    return pos, stamp
                newline = block.find(b"\n")
                if newline < 0:
                    return size, None
                pos += newline + 1
            return size, None

        lo, hi = 0, size  # the smallest offset whose next stamped line is >= since
        while lo < hi:
            mid = (lo + hi) // 2
            _, stamp = first_stamp_after(mid)
            if stamp is None or stamp >= since:
                hi = mid
            else:
                lo = mid + 1
        return first_stamp_after(lo)[0]
    finally:
        os.close(fd)
