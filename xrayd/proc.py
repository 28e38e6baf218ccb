"""Run a program root trusts: an argv list, a timeout, its output read, killed and reaped.

The program path always comes from the daemon config; arguments are built by xrayd after
validation. No shell is ever involved. Each program runs in a session of its own, so a
timeout stops everything it started, not just the program itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass

from xrayd.errors import Timeout

log = logging.getLogger(__name__)

MAX_OUTPUT = 8 * 1024 * 1024


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def reason(self) -> str:
        """The last meaningful line of output: what a person needs to see of a failure."""
        for stream in (self.stderr, self.stdout):
            lines = [ln.strip() for ln in stream.splitlines() if ln.strip()]
            if lines:
                return lines[-1][:1000]
        return f"exit code {self.returncode}"


async def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    timeout: float,
    stdin: bytes | None = None,
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    drop_to: tuple[int, int] | None = None,
) -> Completed:
    """Run `argv`; on timeout send SIGTERM, then SIGKILL after 2 s, reap, and raise Timeout.

    `drop_to` (uid, gid) runs the program as that user with no supplementary groups; a
    program that cannot be started raises OSError."""
    args = tuple(os.fspath(a) for a in argv)
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=cwd,
        start_new_session=True,
        user=drop_to[0] if drop_to else None,
        group=drop_to[1] if drop_to else None,
        extra_groups=[] if drop_to else None,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except (TimeoutError, asyncio.CancelledError) as exc:
        await _stop(proc)
        if isinstance(exc, asyncio.CancelledError):
            raise
        log.warning("%s timed out after %.0fs", args[0], timeout)
        raise Timeout(
            f"{os.path.basename(args[0])} did not finish within {timeout:g} seconds.",
            error="subprocess_timeout",
        ) from None
    return Completed(
        args,
        proc.returncode if proc.returncode is not None else -1,
        out[:MAX_OUTPUT].decode("utf-8", "replace"),
        err[:MAX_OUTPUT].decode("utf-8", "replace"),
    )


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM the program's whole session (its pid is the group id), SIGKILL it after 2 s."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    await proc.wait()
