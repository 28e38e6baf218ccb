"""system.*: the daemon's own health, the services beside it, the machine, local ports.

`system.restart` restarts only the three targets of the daemon config's `[units]`. Xray's
restart belongs to `xray.restart` (it reads the traffic counters first and rolls back a
config Xray will not start with), so the `xray` target delegates to it. The `ui` target is
the gateway that carries the request: it is answered first and restarted a moment later.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from xrayd import __version__, validate
from xrayd.errors import DomainError, Internal, NotBuilt
from xrayd.host import ports
from xrayd.host.resources import ResourceMeter
from xrayd.host.units import UP_STATES, Systemctl, UnitState

if TYPE_CHECKING:
    from xrayd.daemon import Daemon

TARGETS = ("ui", "xray", "nextjs")
UI_RESTART_DELAY = 1.0  # seconds for the answer to travel back through the gateway


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def register(d: Daemon) -> None:
    systemctl = Systemctl(d.config.systemctl, d.config.subprocess_timeout)
    meter = ResourceMeter(d.config.data_dir)
    locks = {target: asyncio.Lock() for target in TARGETS}
    pending: set[asyncio.Task[None]] = set()  # the gateway's own restart, after its answer
    hurry = asyncio.Event()  # set at shutdown: a pending restart runs at once

    def unit_of(target: str) -> str:
        return str(getattr(d.config.units, target))

    async def ping() -> dict[str, Any]:
        return {"ok": True, "message": "pong", "ts": now_iso(), "version": __version__}

    async def status() -> dict[str, Any]:
        states = await systemctl.states([unit_of(t) for t in TARGETS])
        return {target: state.as_dict() for target, state in zip(TARGETS, states, strict=True)}

    async def resources() -> dict[str, Any]:
        return await asyncio.to_thread(meter.snapshot)

    async def ports_status() -> dict[str, Any]:
        return {"ports": await ports.check(d.config.ports)}

    async def restart_unit(target: str) -> UnitState:
        """One restart of a target's unit at a time; the outcome is always an event."""
        unit = unit_of(target)
        async with locks[target]:
            try:
                state = await systemctl.restart(unit)
                if state.state not in UP_STATES:
                    raise Internal(
                        f"{unit} is {state.state} after the restart.",
                        error="restart_failed",
                        unit=unit,
                        state=state.state,
                    )
            except DomainError as exc:
                await d.event(
                    "service_restart_failed",
                    f"Restart of {target} ({unit}) failed: {exc.message}",
                    severity="error",
                    service=target,
                    data={"unit": unit, "error": exc.error},
                )
                raise
            await d.event(
                "service_restarted",
                f"{target} ({unit}) restarted",
                service=target,
                data={"unit": unit, "state": state.state},
            )
            return state

    async def restart_ui_later() -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(hurry.wait(), UI_RESTART_DELAY)
        # a failure is already recorded as an event, and nobody is left to answer
        with contextlib.suppress(DomainError):
            await restart_unit("ui")

    def schedule_ui_restart() -> dict[str, Any]:
        if not pending:
            task = asyncio.create_task(restart_ui_later())
            pending.add(task)
            task.add_done_callback(pending.discard)
        return {
            "ok": True,
            "message": "restart scheduled",
            "service": "ui",
            "unit": unit_of("ui"),
            "delay_seconds": UI_RESTART_DELAY,
        }

    async def restart_xray() -> dict[str, Any]:
        method = d.methods.get("xray.restart")
        if method is None:
            raise NotBuilt("Restarting Xray needs the xray module, which this xrayd does not have.")
        return {**await method(), "service": "xray"}

    async def restart(target: str | None = None) -> dict[str, Any]:
        target = validate.choice("target", target, TARGETS)
        if target == "xray":
            return await restart_xray()
        if target == "ui":
            return schedule_ui_restart()
        state = await restart_unit(target)
        return {"ok": True, "message": "restarted", "service": target, **state.as_dict()}

    async def lifespan() -> AsyncIterator[None]:
        meter.prime()
        yield
        hurry.set()  # the caller was told the gateway restarts: do it before we go
        await asyncio.gather(*pending)

    d.register("system.ping", ping)
    d.register("system.status", status)
    d.register("system.resources", resources)
    d.register("system.ports", ports_status)
    d.register("system.restart", restart)
    d.lifespan(lifespan)
