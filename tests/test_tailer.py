"""Tests for xrayd.live.tailer: real files, real renames and truncations, real offsets."""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timedelta
from pathlib import Path

from xrayd.live.tailer import MAX_LINE_SKIP, ROTATE_GRACE, Follower, Position, start_offset


def line(n: int) -> bytes:
    return b"2026/03/01 12:00:%02d.000000 from 1.2.3.4:5 accepted tcp:h%d.com:443 email: u\n" % (n % 60, n)


def append(path: Path, *data: bytes) -> None:
    with path.open("ab") as f:
        f.write(b"".join(data))


def drain(follower: Follower, limit: int = 1 << 20) -> bytes:
    """Everything the follower hands out until it has nothing new."""
    out = b""
    while (chunk := follower.read(limit)) is not None:
        out += chunk.data
    return out


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_partial_lines_wait_for_their_newline(tmp_path: Path) -> None:
    """A line without its newline yet is not handed out until the rest arrives."""
    log = tmp_path / "access.log"
    append(log, line(1), line(2)[:20])
    f = Follower(log)
    assert drain(f) == line(1)
    append(log, line(2)[20:], line(3))
    assert drain(f) == line(2) + line(3)
    assert f.position is not None and f.position.offset == log.stat().st_size


def test_small_reads_split_only_at_newlines(tmp_path: Path) -> None:
    """However small the read size, chunks hold whole lines and nothing is lost or repeated."""
    log = tmp_path / "access.log"
    append(log, *(line(n) for n in range(50)))
    f = Follower(log)
    chunks = []
    while (chunk := f.read(300)) is not None:
        assert chunk.data.endswith(b"\n")
        chunks.append(chunk.data)
    assert b"".join(chunks) == b"".join(line(n) for n in range(50)) and len(chunks) > 10


def test_a_log_that_appears_later(tmp_path: Path) -> None:
    """A missing log is waited for, then read from its start."""
    log = tmp_path / "access.log"
    f = Follower(log)
    assert f.read() is None
    append(log, line(1))
    assert drain(f) == line(1)


def test_rename_rotation_loses_and_repeats_nothing(tmp_path: Path) -> None:
    """Lines written to the renamed file after rotation are read before the new file's."""
    log = tmp_path / "access.log"
    append(log, line(1))
    f = Follower(log)
    assert drain(f) == line(1)
    append(log, line(2))
    log.rename(tmp_path / "access.log.1")
    append(tmp_path / "access.log.1", line(3))  # Xray still writes to its open file
    append(log, line(4))  # ...until it reopens the log
    assert drain(f) == line(2) + line(3) + line(4)
    append(log, line(5))
    assert drain(f) == line(5)


def test_rename_rotation_waits_while_the_new_file_is_empty(tmp_path: Path) -> None:
    """With an empty new log, the renamed file is followed until it has been quiet a while."""
    log, clock = tmp_path / "access.log", Clock()
    append(log, line(1))
    f = Follower(log, clock=clock)
    drain(f)
    log.rename(tmp_path / "access.log.1")
    log.touch()
    assert f.read() is None
    append(tmp_path / "access.log.1", line(2))
    assert drain(f) == line(2)
    clock.now += ROTATE_GRACE
    assert f.read() is None  # moved to the empty log
    append(log, line(3))
    assert drain(f) == line(3)


def test_copytruncate_reads_the_rest_from_the_copy(tmp_path: Path) -> None:
    """Lines written between our last read and the truncation are read from logrotate's copy."""
    log = tmp_path / "access.log"
    append(log, line(1))
    f = Follower(log)
    drain(f)
    append(log, line(2), line(3))
    shutil.copyfile(log, tmp_path / "access.log.1")
    with log.open("r+b") as handle:
        handle.truncate(0)
    append(log, line(4))
    assert drain(f) == line(2) + line(3) + line(4)


def test_truncated_and_grown_past_the_offset_is_noticed(tmp_path: Path) -> None:
    """A truncated file that grew past our offset again is read from its start, not the middle."""
    log = tmp_path / "access.log"
    append(log, line(1))
    f = Follower(log)
    drain(f)
    with log.open("r+b") as handle:
        handle.truncate(0)
    append(log, line(7), line(8), line(9))
    assert drain(f) == line(7) + line(8) + line(9)


def test_a_restart_resumes_at_the_saved_position(tmp_path: Path) -> None:
    """A new follower from a saved position reads only what came after it."""
    log = tmp_path / "access.log"
    append(log, line(1), line(2))
    first = Follower(log)
    drain(first)
    saved = Position.from_json(first.position.to_json())  # type: ignore[union-attr]
    first.close()
    append(log, line(3))
    assert drain(Follower(log, saved)) == line(3)


def test_a_restart_across_a_rename_finishes_the_old_file(tmp_path: Path) -> None:
    """A position in a file rotated away while we were down is found among the siblings."""
    log = tmp_path / "access.log"
    append(log, line(1))
    first = Follower(log)
    drain(first)
    saved, _ = first.position, first.close()
    append(log, line(2))
    log.rename(tmp_path / "access.log.1")
    append(log, line(3))
    assert drain(Follower(log, saved)) == line(2) + line(3)


def test_a_reused_inode_is_not_taken_for_ours(tmp_path: Path) -> None:
    """A file with our inode number but other bytes is read from its start."""
    log = tmp_path / "access.log"
    append(log, line(1), line(2))
    st = os.stat(log)
    stranger = Position(st.st_dev, st.st_ino, len(line(1)), tail=b"not what we read\n")
    assert drain(Follower(log, stranger)) == line(1) + line(2)


def test_an_endless_line_is_skipped_and_counted(tmp_path: Path) -> None:
    """A line longer than any real one is dropped (counted once) and reading goes on after it."""
    log = tmp_path / "access.log"
    append(log, line(1), b"x" * (3 * MAX_LINE_SKIP))
    f = Follower(log)
    chunks = []
    while (chunk := f.read(MAX_LINE_SKIP)) is not None:
        chunks.append(chunk)
    assert b"".join(c.data for c in chunks) == line(1)
    append(log, b"y" * 10 + b"\n", line(2))
    more = []
    while (chunk := f.read(MAX_LINE_SKIP)) is not None:
        more.append(chunk)
    assert b"".join(c.data for c in more) == line(2)
    assert sum(c.skipped for c in chunks + more) == 1


def test_start_offset_finds_the_window_by_binary_search(tmp_path: Path) -> None:
    """The first line at or after a time is found without reading the file from its start."""
    log = tmp_path / "access.log"
    t0 = datetime(2026, 3, 1)
    lines = [
        (t0 + timedelta(seconds=n)).strftime("%Y/%m/%d %H:%M:%S").encode() + b" from 1.2.3.4:5 accepted x\n"
        for n in range(0, 20000, 3)
    ]
    lines.insert(100, b"garbage without a time\n")
    append(log, *lines)
    data = log.read_bytes()
    for seconds in (0, 1, 299, 300, 5000, 19998, 30000):
        since = t0 + timedelta(seconds=seconds)
        offset = start_offset(log, since)
        expected = next(
            (
                data.index(ln)
                for ln in lines
                if ln[:19] != b"garbage without a t"
                and ln[:19] >= since.strftime("%Y/%m/%d %H:%M:%S").encode()
            ),
            len(data),
        )
        assert offset == expected, seconds
    assert start_offset(tmp_path / "missing.log", t0) == 0
