"""Shared fixtures: a sandbox folder, a real xrayd on a real Unix socket, a real gateway."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from client.aio import XraydClient
from gateway.app import create_app
from xrayd.daemon import Daemon
from xrayd.sandbox import builder

# Real Xray configs and access-log lines from public sources (fixtures/README.md says where each
# came from), kept in the repo so that a clean checkout tests itself.
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A temp folder with a short path: a Unix socket path must fit in 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="xr-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def sandbox(short_tmp: Path) -> builder.Sandbox:
    return builder.build(short_tmp / "sb", gateway_port=builder.free_port())


async def start_daemon(daemon: Daemon) -> asyncio.Task[None]:
    ready = asyncio.Event()
    task = asyncio.create_task(daemon.run(ready=ready.set))
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        task.result()  # raises what stopped the start
    return task


@pytest.fixture
async def daemon(sandbox: builder.Sandbox) -> AsyncIterator[Daemon]:
    """xrayd running in this test's event loop, serving its real socket."""
    d = Daemon(sandbox.config, shutdown_grace=5)
    task = await start_daemon(d)
    yield d
    d.request_stop()
    await task


@pytest.fixture
async def rpc(daemon: Daemon) -> AsyncIterator[XraydClient]:
    async with XraydClient(str(daemon.config.socket)) as client:
        yield client


@pytest.fixture
async def api(daemon: Daemon, sandbox: builder.Sandbox, aiohttp_client):  # type: ignore[no-untyped-def]
    """A real aiohttp gateway in front of the daemon, with the auth header preset."""
    client = await aiohttp_client(create_app(str(sandbox.config.socket), sandbox.token))
    client.session.headers["Authorization"] = f"Bearer {sandbox.token}"
    return client


def spawn_daemon(config_file: Path, socket: Path, *, timeout: float = 20.0) -> subprocess.Popen[bytes]:
    """xrayd as a real child process; returns once its socket accepts. Its log goes to a
    file beside the config (a pipe nobody reads would fill up and stall the daemon)."""
    log_file = config_file.with_name("xrayd-test.log")
    with log_file.open("ab") as log:  # the child keeps its own copy of the fd
        proc = subprocess.Popen(
            [sys.executable, "-m", "xrayd", "serve", "--config", str(config_file)],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    deadline = time.monotonic() + timeout
    while not _accepts(socket):
        if proc.poll() is not None:
            raise RuntimeError(f"xrayd exited at start: {log_file.read_text()[-4000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("xrayd did not create its socket in time")
        time.sleep(0.02)
    return proc


def _accepts(path: Path) -> bool:
    import socket as so

    with so.socket(so.AF_UNIX) as s:
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True


def stop_process(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stderr is not None:
        proc.stderr.close()
    return proc.returncode


@pytest.fixture
def daemon_process(sandbox: builder.Sandbox) -> Iterator[subprocess.Popen[bytes]]:
    proc = spawn_daemon(sandbox.config_file, sandbox.config.socket)
    yield proc
    stop_process(proc)


def as_other_user() -> tuple[int, int] | None:
    """(uid, gid) of `nobody`, for tests that run as root and need another user; else None."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid
