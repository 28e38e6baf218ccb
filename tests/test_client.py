"""The client: async and sync calls, typed errors, reconnection, and the xrayctl CLI."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest
from conftest import start_daemon

from client import DaemonUnavailable, RpcError, SyncXraydClient, XraydClient
from client.cli import parse_params, render_table
from xrayd.daemon import Daemon
from xrayd.sandbox.builder import Sandbox


async def test_async_call_and_typed_error(rpc: XraydClient) -> None:
    """A result comes back as a value; an error as RpcError with code, error and message."""
    assert (await rpc.call("system.ping"))["message"] == "pong"
    with pytest.raises(RpcError) as err:
        await rpc.call("events.list", {"limit": 0})
    assert (err.value.code, err.value.error) == (-32602, "invalid_params")
    assert "limit" in err.value.message


async def test_async_pipelines_on_one_connection(rpc: XraydClient) -> None:
    """Concurrent calls share one connection and each gets its own answer."""
    results = await asyncio.gather(*(rpc.call("events.list", {"limit": n}) for n in range(1, 40)))
    assert len(results) == 39
    assert rpc.connected


async def test_async_reconnects_after_daemon_restart(sandbox: Sandbox) -> None:
    """After xrayd restarts, the next call reconnects by itself; a call while down fails fast."""
    client = XraydClient(str(sandbox.config.socket), connect_timeout=1)
    d = Daemon(sandbox.config, shutdown_grace=1)
    task = await start_daemon(d)
    assert (await client.call("system.ping"))["ok"]
    d.request_stop()
    await task
    with pytest.raises(DaemonUnavailable):
        await client.call("system.ping")
    d = Daemon(sandbox.config, shutdown_grace=1)
    task = await start_daemon(d)
    assert (await client.call("system.ping"))["ok"]
    await client.close()
    d.request_stop()
    await task


def test_sync_client(daemon_process: subprocess.Popen[bytes], sandbox: Sandbox) -> None:
    """The blocking client calls, raises RpcError, and survives a daemon-side error."""
    with SyncXraydClient(str(sandbox.config.socket)) as c:
        assert c.call("system.ping")["message"] == "pong"
        with pytest.raises(RpcError) as err:
            c.call("no.such")
        assert err.value.error == "method_not_found"
        assert c.call("events.list", {"limit": 1})["total"] >= 1


def test_sync_client_daemon_down(sandbox: Sandbox) -> None:
    """With no daemon the blocking client raises DaemonUnavailable, not a raw OSError."""
    with pytest.raises(DaemonUnavailable), SyncXraydClient(str(sandbox.config.socket)) as c:
        c.call("system.ping")


def test_parse_params_forms() -> None:
    """key=value, --key value, --key=value and --flag all become named params."""
    assert parse_params(["limit=5", "--include-today", "--date", "2026-01-02", "--x=[1]", "name=bob"]) == {
        "limit": 5,
        "include_today": True,
        "date": "2026-01-02",
        "x": [1],
        "name": "bob",
    }
    with pytest.raises(ValueError):
        parse_params(["loose"])


def test_render_table() -> None:
    """A result with one list of objects renders as aligned columns."""
    out = render_table({"users": [{"email": "a@x", "alias": None}, {"email": "bb@x", "alias": "B"}]})
    assert out.splitlines() == ["EMAIL  ALIAS", "a@x    -", "bb@x   B"]


def test_xrayctl_end_to_end(daemon_process: subprocess.Popen[bytes], sandbox: Sandbox) -> None:
    """`xrayctl events list limit=1` prints JSON; an RPC error exits 1 with the sentence."""
    base = [sys.executable, "-m", "client", "--socket", str(sandbox.config.socket)]
    ok = subprocess.run([*base, "events", "list", "limit=1"], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["events"][0]["type"] == "xrayd_started"
    bad = subprocess.run(
        [*base, "call", "events.list", "limit=0"], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 1 and "limit" in bad.stderr
    table = subprocess.run(
        [*base, "-o", "table", "events", "list"], capture_output=True, text=True, timeout=60
    )
    assert table.stdout.startswith("TS")


def test_xrayctl_daemon_down_exits_3(sandbox: Sandbox) -> None:
    """With xrayd down, xrayctl says so and exits 3."""
    out = subprocess.run(
        [sys.executable, "-m", "client", "--socket", str(sandbox.config.socket), "call", "system.ping"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 3 and "not reachable" in out.stderr
