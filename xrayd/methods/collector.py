"""collector.*: run the usage collector, turn its cron job on and off, say how far behind it is.

The cron job follows the `collector.schedule` setting: a change of it rewrites an installed
job, and so does a start of xrayd whose interpreter or config path differs from the job's.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from xrayd import validate
from xrayd.cli import DEFAULT_CONFIG
from xrayd.errors import DomainError, Internal, Unavailable
from xrayd.usage import cron, files, runs

if TYPE_CHECKING:
    from xrayd.daemon import Daemon

log = logging.getLogger(__name__)


def register(d: Daemon) -> None:
    cron_lock = asyncio.Lock()
    wake = asyncio.Event()
    d.settings.on_change(lambda _: wake.set())

    def job() -> list[str]:
        return cron.command(d.config_file or DEFAULT_CONFIG)

    async def write_job(reason: str) -> bool:
        """Install the job with the current schedule; record an event when the file changed."""
        schedule = d.settings.get("collector", "schedule")
        try:
            changed = await asyncio.to_thread(cron.write, d.config.cron_file, schedule, job())
        except FileNotFoundError:
            raise Unavailable(
                f"{d.config.cron_file.parent} does not exist: is cron installed?", error="cron_unavailable"
            ) from None
        if changed:
            await d.event(
                "collector_enabled",
                f"Collector cron job {reason}: {schedule}",
                service="collector",
                data={"schedule": schedule, "cron_file": str(d.config.cron_file)},
            )
        return changed

    async def toggle(enabled: bool) -> dict[str, Any]:
        validate.boolean("enabled", enabled)
        async with cron_lock:
            if enabled:
                changed = await write_job("installed")
            else:
                changed = await asyncio.to_thread(cron.remove, d.config.cron_file)
                if changed:
                    await d.event(
                        "collector_disabled",
                        "Collector cron job removed",
                        service="collector",
                        data={"cron_file": str(d.config.cron_file)},
                    )
        return {"ok": True, "enabled": enabled, "changed": changed}

    async def follow_settings() -> None:
        """Rewrite an installed job whenever settings change (its schedule may have)."""
        while True:
            await wake.wait()
            wake.clear()
            async with cron_lock:
                try:
                    if await asyncio.to_thread(cron.installed_schedule, d.config.cron_file) is not None:
                        await write_job("rewritten")
                except (DomainError, OSError, ValueError) as exc:
                    log.exception("cannot rewrite the collector's cron job")
                    why = exc.message if isinstance(exc, DomainError) else exc.__class__.__name__
                    await d.event(
                        "collector_cron_failed",
                        f"Cannot rewrite the collector cron job: {why}",
                        severity="error",
                        service="collector",
                    )

    async def keep_job_current() -> AsyncIterator[None]:
        wake.set()  # a start checks the installed job once, as after a settings change
        task = asyncio.create_task(follow_settings(), name="collector-cron")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def status() -> dict[str, Any]:
        def read() -> dict[str, Any]:
            dates = files.list_dates(d.config.usage_dir)
            newest = dates[0] if dates else None
            yesterday = dt.date.today() - dt.timedelta(days=1)
            return {
                "enabled": cron.installed_schedule(d.config.cron_file) is not None,
                "lag_days": None if newest is None else max(0, (yesterday - newest).days),
                "newest_date": None if newest is None else newest.isoformat(),
                **runs.load_state(d.config.data_dir),
                "schedule": d.settings.get("collector", "schedule"),
            }

        return {"status": await asyncio.to_thread(read)}

    async def run(include_today: bool = False, date: str | None = None) -> dict[str, Any]:
        validate.boolean("include_today", include_today)
        only = None if date is None else validate.date("date", date)
        outcome = await asyncio.to_thread(
            runs.run,
            d.config.data_dir,
            d.events,
            access_log=d.config.access_log,
            usage_dir=d.config.usage_dir,
            include_today=include_today,
            only=only,
        )
        if not outcome.ok:
            raise Internal(f"The collector failed: {outcome.error}", error="collector_failed")
        return {"ok": True, "message": outcome.event()["message"], **outcome.summary}

    d.register("collector.status", status)
    d.register("collector.toggle", toggle)
    d.register("collector.run", run)
    d.lifespan(keep_job_current)
