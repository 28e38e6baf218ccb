"""Subprocesses root runs: a timeout stops the whole session; a privilege drop really drops."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import as_other_user

from xrayd import proc
from xrayd.errors import Timeout


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie nobody has reaped yet counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def gone_soon(pid: int) -> bool:
    """True once `pid` has exited: a signal is delivered when the process next runs, so give
    it a moment (a bound for a hung machine, not a speed requirement)."""
    for _ in range(1000):
        if not _alive(pid):
            return True
        time.sleep(0.01)
    return False


async def test_timeout_stops_grandchildren(tmp_path: Path) -> None:
    """A program that times out is stopped with everything it started, not only itself."""
    pid_file = tmp_path / "pid"
    script = f"sleep 300 & echo $! > {pid_file}; wait"
    with pytest.raises(Timeout) as caught:
        await proc.run(["/bin/sh", "-c", script], timeout=1)
    assert caught.value.error == "subprocess_timeout"
    assert gone_soon(int(pid_file.read_text()))


async def test_cwd_is_used(tmp_path: Path) -> None:
    """`cwd` is the program's working folder."""
    done = await proc.run(["/bin/pwd"], timeout=10, cwd=tmp_path)
    assert done.ok and done.stdout.strip() == str(tmp_path)


async def test_drop_to_runs_as_that_user_with_no_extra_groups() -> None:
    """As root, `drop_to` runs the program as that uid and gid with no supplementary groups."""
    other = as_other_user()
    if other is None:
        pytest.skip("needs root and a `nobody` user")
    uid, gid = other
    done = await proc.run(["/usr/bin/id", "-u"], timeout=10, drop_to=other)
    groups = await proc.run(["/usr/bin/id", "-G"], timeout=10, drop_to=other)
    assert done.stdout.split() == [str(uid)]
    assert groups.stdout.split() == [str(gid)]
