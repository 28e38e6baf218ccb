"""system.*: unit states, resources, ports and restarts through a real xrayd and the stand-ins."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil
import pytest
from aiohttp.test_utils import TestClient
from conftest import start_daemon

from client.aio import XraydClient
from client.protocol import RpcError
from xrayd.config import Config, Units
from xrayd.daemon import Daemon
from xrayd.host import ports
from xrayd.host.resources import ResourceMeter
from xrayd.host.units import parse_show
from xrayd.methods import system
from xrayd.sandbox.builder import Sandbox, free_port
from xrayd.sandbox.standin_state import read_state, update_state


@contextlib.asynccontextmanager
async def serving(d: Daemon) -> AsyncIterator[XraydClient]:
    """Run `d` on its socket for the block, with a client connected to it."""
    task = await start_daemon(d)
    try:
        async with XraydClient(str(d.config.socket)) as client:
            yield client
    finally:
        d.request_stop()
        await task


def _calls(sandbox: Sandbox) -> list[list[str]]:
    return read_state(sandbox.state_dir)["calls"]


def _set_unit(sandbox: Sandbox, unit: str, state: str) -> None:
    def put(s: dict[str, Any]) -> None:
        s["unit_states"][unit] = state

    update_state(sandbox.state_dir, put)


async def _events(rpc: XraydClient, type: str) -> list[dict[str, Any]]:
    return (await rpc.call("events.list", {"type": type, "limit": 100}))["events"]


# --- system.status -------------------------------------------------------------------------


async def test_status_reports_every_target(rpc: XraydClient) -> None:
    """All three targets are reported with the seed's {active, state} and their unit."""
    body = await rpc.call("system.status")
    assert set(body) == {"ui", "xray", "nextjs"}
    assert body["xray"] == {
        "active": True,
        "state": "active",
        "sub_state": "running",
        "installed": True,
        "unit": "xray.service",
    }
    assert body["ui"]["unit"] == Units.ui and body["nextjs"]["unit"] == Units.nextjs


async def test_status_with_a_failed_unit(rpc: XraydClient, sandbox: Sandbox) -> None:
    """A failed unit is reported as failed and inactive; the others are unaffected."""
    _set_unit(sandbox, Units.ui, "failed")
    body = await rpc.call("system.status")
    assert body["ui"]["active"] is False and body["ui"]["state"] == "failed"
    assert body["ui"]["installed"] is True
    assert body["xray"]["active"] is True


async def test_status_of_a_unit_not_installed(sandbox: Sandbox) -> None:
    """A unit that is not installed says so, and the call still succeeds."""
    config = replace(sandbox.config, units=replace(sandbox.config.units, nextjs="no-such-ui.service"))
    async with serving(Daemon(config)) as rpc:
        body = await rpc.call("system.status")
    assert body["nextjs"] == {
        "active": False,
        "state": "inactive",
        "sub_state": "dead",
        "installed": False,
        "unit": "no-such-ui.service",
    }
    assert body["ui"]["installed"] is True


async def test_status_without_systemctl_is_503(sandbox: Sandbox) -> None:
    """When systemctl cannot be run the call is a 503 that says so, not a crash."""
    config = replace(sandbox.config, systemctl=sandbox.root / "bin" / "no-systemctl")
    async with serving(Daemon(config)) as rpc:
        with pytest.raises(RpcError) as caught:
            await rpc.call("system.status")
    assert caught.value.code == 503 and caught.value.error == "systemctl_unavailable"


def test_parse_show_reads_blocks_in_order_and_checks_their_count() -> None:
    """`systemctl show` blocks map to the units in order; a missing block is an error."""
    out = "LoadState=loaded\nActiveState=active\nSubState=running\n\n"
    out += "ActiveState=inactive\nLoadState=not-found\n"
    a, b = parse_show(out, ["a.service", "b.service"])
    assert (a.installed, a.state, a.sub_state) == (True, "active", "running")
    assert (b.installed, b.state, b.sub_state) == (False, "inactive", "unknown")
    with pytest.raises(Exception, match="1 blocks for 2 units"):
        parse_show("LoadState=loaded\n", ["a.service", "b.service"])


# --- system.resources ----------------------------------------------------------------------


async def test_resources_has_every_figure(rpc: XraydClient, daemon: Daemon) -> None:
    """cpu, memory (with swap), disk for / and data_dir, uptime, network and xrayd's RSS."""
    body = await rpc.call("system.resources")
    cpu = body["cpu"]
    assert 0 <= cpu["percent"] <= 100 and len(cpu["per_core"]) == cpu["count"] == psutil.cpu_count()
    assert len(cpu["load_avg"]) == 3
    memory = body["memory"]
    assert 0 < memory["available"] <= memory["total"] and 0 < memory["used"] <= memory["total"]
    assert set(memory["swap"]) == {"total", "used", "free", "percent"}
    assert body["disk"]["path"] == "/" and body["disk"]["total"] > 0
    assert body["disk"]["data_dir"]["path"] == str(daemon.config.data_dir)
    assert body["uptime"]["seconds"] > 0 and body["uptime"]["boot_time"].endswith("Z")
    assert body["network"]["bytes_recv"] >= 0 and body["network"]["bytes_sent"] >= 0
    assert body["xrayd"]["pid"] == os.getpid()
    assert body["xrayd"]["rss"] == pytest.approx(psutil.Process().memory_info().rss, rel=0.5)


def test_cpu_is_never_measured_by_sleeping(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every psutil.cpu_percent call passes interval=None: no request waits for a sample."""
    intervals = []
    real = psutil.cpu_percent

    def spy(interval: float | None = None, percpu: bool = False) -> Any:
        intervals.append(interval)
        return real(interval=None, percpu=percpu)

    monkeypatch.setattr(psutil, "cpu_percent", spy)
    meter = ResourceMeter(tmp_path)
    meter.prime()
    meter.snapshot()
    assert intervals and set(intervals) == {None}


def test_cpu_figures_are_reused_within_the_minimum_window(tmp_path: Path) -> None:
    """Requests closer than a second apart get the last CPU figures instead of a new noisy one."""
    now = [100.0]
    meter = ResourceMeter(tmp_path, clock=lambda: now[0])
    meter.prime()
    now[0] = 100.4
    first = meter.snapshot()["cpu"]
    assert first["window_seconds"] == pytest.approx(0.4)
    now[0] = 101.0
    assert meter.snapshot()["cpu"]["window_seconds"] == first["window_seconds"]
    now[0] = 101.5
    assert meter.snapshot()["cpu"]["window_seconds"] == pytest.approx(1.1)


# --- system.ports --------------------------------------------------------------------------


async def test_ports_running_and_closed(sandbox: Sandbox) -> None:
    """A port something listens on is running, a free one is closed, in the config's order."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        open_port, closed_port = listener.getsockname()[1], free_port()
        config = replace(sandbox.config, ports=(closed_port, open_port))
        async with serving(Daemon(config)) as rpc:
            body = await rpc.call("system.ports")
    assert body == {
        "ports": [
            {"port": closed_port, "status": "closed", "service": None},
            {"port": open_port, "status": "running", "service": None},
        ]
    }


async def test_ports_known_services_are_named() -> None:
    """The seed's ports carry the name of what listens there."""
    rows = await ports.check([3000, 8787, 443], timeout=0.5)
    assert [r["service"] for r in rows] == ["nextjs", "ui", "xray"]


async def test_ports_are_probed_at_once() -> None:
    """Ports are probed concurrently: many closed ports answer in one round, not one by one."""
    started: list[int] = []
    seen_when_resumed: list[int] = []

    async def probe(port: int, timeout: float = ports.CONNECT_TIMEOUT) -> bool:
        started.append(port)
        await asyncio.sleep(0)  # one step of the loop: the other probes get to start
        seen_when_resumed.append(len(started))
        return False

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ports, "accepts", probe)
        rows = await ports.check(range(1000, 1020))
    assert [r["port"] for r in rows] == list(range(1000, 1020))
    assert min(seen_when_resumed) == 20


# --- system.restart ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target", ["XRAY", "xray.service", "../ui", "ui;reboot", "", " ui", "sshd", None, 1, ["ui"], {"t": 1}]
)
async def test_restart_refuses_any_other_target(rpc: XraydClient, sandbox: Sandbox, target: Any) -> None:
    """Only ui, xray and nextjs are restartable; anything else is a 400 and runs nothing."""
    before = len(_calls(sandbox))
    params = {} if target is None else {"target": target}
    with pytest.raises(RpcError) as caught:
        await rpc.call("system.restart", params)
    assert caught.value.code == -32602 and caught.value.data["param"] == "target"
    assert len(_calls(sandbox)) == before


async def test_restart_nextjs_restarts_its_unit_and_records_it(rpc: XraydClient, sandbox: Sandbox) -> None:
    """nextjs restarts the configured unit, answers with its new state, and adds an event."""
    body = await rpc.call("system.restart", {"target": "nextjs"})
    assert body["ok"] is True and body["service"] == "nextjs" and body["state"] == "active"
    assert ["restart", "--no-ask-password", Units.nextjs] in _calls(sandbox)
    [event] = await _events(rpc, "service_restarted")
    assert event["service"] == "nextjs" and event["data"]["unit"] == Units.nextjs


async def test_restart_of_a_unit_not_installed_is_404_and_an_event(sandbox: Sandbox) -> None:
    """A target whose unit is not installed is a 404 `unit_not_installed`, recorded as an error."""
    config = replace(sandbox.config, units=replace(sandbox.config.units, nextjs="gone.service"))
    async with serving(Daemon(config)) as rpc:
        with pytest.raises(RpcError) as caught:
            await rpc.call("system.restart", {"target": "nextjs"})
        [event] = await _events(rpc, "service_restart_failed")
    assert caught.value.code == 404 and caught.value.error == "unit_not_installed"
    assert event["severity"] == "error" and event["data"]["error"] == "unit_not_installed"


async def test_restart_that_leaves_the_unit_failed_is_an_error(sandbox: Sandbox) -> None:
    """`systemctl restart` exits 0 even when the unit dies at once; the state after says so."""
    # the stand-in's xray unit fails to start when fail_start is set; point nextjs at it
    config = replace(sandbox.config, units=replace(sandbox.config.units, nextjs=Units.xray))
    update_state(sandbox.state_dir, lambda s: s.update(fail_start=True))
    async with serving(Daemon(config)) as rpc:
        with pytest.raises(RpcError) as caught:
            await rpc.call("system.restart", {"target": "nextjs"})
        [event] = await _events(rpc, "service_restart_failed")
    assert caught.value.code == 500 and caught.value.error == "restart_failed"
    assert caught.value.data["state"] == "failed"
    assert event["service"] == "nextjs"


async def test_restart_ui_answers_first_then_restarts(rpc: XraydClient, sandbox: Sandbox) -> None:
    """The gateway's own restart is answered before it happens, then happens and is recorded."""
    restart_ui = ["restart", "--no-ask-password", Units.ui]
    body = await rpc.call("system.restart", {"target": "ui"})
    assert body["message"] == "restart scheduled" and body["unit"] == Units.ui
    assert restart_ui not in _calls(sandbox)
    again = await rpc.call("system.restart", {"target": "ui"})  # while one is pending
    assert again["message"] == "restart scheduled"
    for _ in range(600):
        if await _events(rpc, "service_restarted"):
            break
        await asyncio.sleep(0.05)
    assert _calls(sandbox).count(restart_ui) == 1


async def test_pending_ui_restart_runs_at_shutdown(sandbox: Sandbox) -> None:
    """A ui restart that was promised is carried out when xrayd stops before its delay is up."""
    async with serving(Daemon(sandbox.config)) as rpc:
        await rpc.call("system.restart", {"target": "ui"})
    assert ["restart", "--no-ask-password", Units.ui] in _calls(sandbox)


async def test_restart_xray_delegates_to_xray_restart(sandbox: Sandbox) -> None:
    """The xray target runs `xray.restart` (which owns counters and rollback) and returns its answer."""
    d = Daemon(sandbox.config)
    seen = []

    async def fake_xray_restart() -> dict[str, Any]:
        seen.append(True)
        return {"ok": True, "message": "restarted", "rolled_back": False}

    d.methods["xray.restart"] = fake_xray_restart
    async with serving(d) as rpc:
        body = await rpc.call("system.restart", {"target": "xray"})
    assert seen == [True]
    assert body == {"ok": True, "message": "restarted", "rolled_back": False, "service": "xray"}
    assert not any(call[:1] == ["restart"] for call in _calls(sandbox))


async def test_restart_xray_without_the_xray_module_is_501(sandbox: Sandbox) -> None:
    """Without an `xray.restart` method the xray target is a clear 501, and nothing restarts."""
    d = Daemon(sandbox.config)
    d.methods.pop("xray.restart", None)
    async with serving(d) as rpc:
        with pytest.raises(RpcError) as caught:
            await rpc.call("system.restart", {"target": "xray"})
    assert caught.value.code == 501 and caught.value.error == "not_implemented"
    assert not any(call[:1] == ["restart"] for call in _calls(sandbox))


async def test_concurrent_restarts_of_one_target_take_turns(rpc: XraydClient, sandbox: Sandbox) -> None:
    """Five restarts of nextjs at once all succeed, each a full restart-then-check in turn."""
    results = await asyncio.gather(*(rpc.call("system.restart", {"target": "nextjs"}) for _ in range(5)))
    assert all(r["ok"] for r in results)
    ours = [c[0] for c in _calls(sandbox) if Units.nextjs in c]
    assert ours == ["restart", "show"] * 5


# --- through the gateway -------------------------------------------------------------------


async def test_header_endpoints_through_the_gateway(api: TestClient) -> None:
    """The four header endpoints answer through the gateway; a bad target is a 400 there too."""
    for path in ("/api/system/status", "/api/system/resources", "/api/ports/status"):
        resp = await api.get(path)
        assert resp.status == 200, path
    resp = await api.post("/api/system/restart", json={"target": "nextjs"})
    assert resp.status == 200 and (await resp.json())["service"] == "nextjs"
    resp = await api.post("/api/system/restart", json={"target": "sshd"})
    assert resp.status == 400 and (await resp.json())["error"] == "invalid_params"


def test_targets_are_the_config_units() -> None:
    """Every restart target names a unit field of the daemon config, and nothing more."""
    assert set(system.TARGETS) == set(vars(Config().units))
