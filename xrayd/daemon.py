"""The Daemon: builds every service from a Config, serves the socket, shuts down in bounds.

No work at import time and no module singletons: everything lives on the Daemon object,
and the RPC modules plug in through `register()` and `lifespan()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from pathlib import Path
from typing import Any

from xrayd.config import Config
from xrayd.events import EventLog
from xrayd.rpc.dispatch import Authenticator, Dispatcher, Method, current_caller
from xrayd.rpc.server import RpcServer
from xrayd.settings import Settings

log = logging.getLogger(__name__)

Lifespan = Callable[[], AbstractAsyncContextManager[None]]


class Daemon:
    """One process, the single writer of all state."""

    def __init__(
        self, config: Config, *, shutdown_grace: float = 10.0, config_file: Path | None = None
    ) -> None:
        from xrayd.methods import MODULES

        self.config = config
        self.config_file = config_file  # where `config` was read from: jobs run outside xrayd use it
        self.shutdown_grace = shutdown_grace
        self.settings = Settings(config.data_dir / "settings.json")
        self.events = EventLog(config.data_dir / "events.jsonl")
        self.methods: dict[str, Method] = {}
        self._lifespans: list[Lifespan] = []
        self._before_xray_restart: list[Callable[[], Awaitable[None]]] = []
        self._authenticate: Authenticator | None = None
        self._stop: asyncio.Event | None = None
        self.server: RpcServer | None = None
        for module in MODULES:
            module.register(self)

    def register(self, name: str, fn: Method) -> None:
        if name in self.methods:
            raise ValueError(f"method {name} registered twice")
        self.methods[name] = fn

    def lifespan(self, factory: Callable[[], AsyncIterator[None]]) -> None:
        """Add a background service: an async generator that sets up, yields, tears down."""
        self._lifespans.append(contextlib.asynccontextmanager(factory))

    def authenticator(self, fn: Authenticator) -> None:
        """Check the credentials the gateway forwards (the `_auth` param) with `fn`."""
        self._authenticate = fn

    def before_xray_restart(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run `hook` before every restart of Xray (the traffic ledger reads its counters)."""
        self._before_xray_restart.append(hook)

    async def prepare_xray_restart(self) -> None:
        """Call this right before restarting Xray, whoever restarts it: a restart resets
        Xray's counters, so what they hold must be read first. A failing hook is logged,
        never a reason to refuse the restart."""
        for hook in self._before_xray_restart:
            try:
                await hook()
            except Exception:
                log.exception("a before-restart hook failed")

    async def event(
        self,
        type: str,
        message: str,
        *,
        severity: str = "info",
        service: str = "xrayd",
        data: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The one way every module records what it changed. The event names its actor: the
        caller of the RPC being served, unless `data` names one already."""
        caller = current_caller()
        if caller is not None and "actor" not in (data or {}):
            data = {**(data or {}), "actor": caller.actor}
        return await self.events.append(type, message, severity=severity, service=service, data=data)

    def _apply_settings(self, values: dict[str, Any]) -> None:
        self.events.keep = values["events"]["keep_files"]
        self.events.max_bytes = values["events"]["max_file_mb"] * 1024 * 1024

    def prepare(self) -> None:
        """Create our folders and load settings; raises on anything an operator must fix."""
        for folder in (self.config.data_dir, self.config.backups_dir):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.settings.load()
        self._apply_settings(self.settings.snapshot())
        self.settings.on_change(self._apply_settings)

    def handle_signal(self, signum: int) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        self.request_stop()

    def request_stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    async def run(self, ready: Callable[[], None] | None = None) -> None:
        """Serve until a stop is requested; `ready` is called once the socket accepts."""
        self._stop = asyncio.Event()
        self.prepare()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):  # before the socket exists: no window
            loop.add_signal_handler(sig, self.handle_signal, sig)
        try:
            async with AsyncExitStack() as stack:
                for factory in self._lifespans:
                    await stack.enter_async_context(factory())
                self.server = RpcServer(
                    Dispatcher(self.methods, authenticate=self._authenticate),
                    self.config.socket,
                    group=self.config.socket_group,
                    mode=self.config.socket_mode,
                )
                await self.server.start()
                try:
                    await self.event("xrayd_started", f"xrayd started (pid {os.getpid()})")
                    if ready is not None:
                        ready()
                    await self._stop.wait()
                finally:
                    await self.server.stop(self.shutdown_grace)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
