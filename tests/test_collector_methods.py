"""collector.* through a real xrayd: the cron file on and off, status, runs, and the job itself."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import gzip
import os
import shlex
import subprocess
import sys
from collections.abc import AsyncIterator, Callable

import pytest
from conftest import start_daemon

from client.aio import XraydClient
from client.protocol import RpcError
from xrayd.daemon import Daemon
from xrayd.live.ledger import Ledger, Row
from xrayd.sandbox.builder import Sandbox
from xrayd.usage import cron, files, runs

TODAY = dt.date.today()
YESTERDAY = TODAY - dt.timedelta(days=1)


def log_line(date: dt.date, hms: str, email: str, host: str = "www.example.com") -> str:
    src = "from 203.0.113.7:50000"
    return f"{date:%Y/%m/%d} {hms}.123456 {src} accepted tcp:{host}:443 [in >> out] email: {email}\n"


@pytest.fixture
async def served(sandbox: Sandbox) -> AsyncIterator[tuple[Daemon, XraydClient]]:
    """xrayd started as `xrayd serve --config FILE` would: it knows its config file."""
    d = Daemon(sandbox.config, shutdown_grace=5, config_file=sandbox.config_file)
    task = await start_daemon(d)
    async with XraydClient(str(sandbox.config.socket)) as client:
        yield d, client
    d.request_stop()
    await task


async def eventually(check: Callable[[], bool]) -> None:
    """Let the daemon's background task catch up (it runs on the same loop as the test)."""
    for _ in range(1000):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never became true")


async def test_toggle_on_writes_the_cron_job_and_off_removes_it(
    served: tuple[Daemon, XraydClient], sandbox: Sandbox
) -> None:
    """On: a 0644 cron file with the schedule, root, this interpreter and config; off: gone."""
    _, rpc = served
    path = sandbox.config.cron_file
    assert await rpc.call("collector.toggle", {"enabled": True}) == {
        "ok": True,
        "enabled": True,
        "changed": True,
    }
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    job = path.read_text().splitlines()[-1]
    assert job.startswith("17 0 * * * root ")
    assert shlex.split(job.removeprefix("17 0 * * * root ")) == [
        sys.executable,
        "-m",
        "xrayd",
        "collect",
        "--quiet",
        "--config",
        str(sandbox.config_file),
    ]
    again = await rpc.call("collector.toggle", {"enabled": True})
    assert again["changed"] is False
    status = (await rpc.call("collector.status"))["status"]
    assert status["enabled"] is True and status["schedule"] == "17 0 * * *"
    off = await rpc.call("collector.toggle", {"enabled": False})
    assert off == {"ok": True, "enabled": False, "changed": True}
    assert not path.exists()
    assert (await rpc.call("collector.toggle", {"enabled": False}))["changed"] is False
    assert (await rpc.call("collector.status"))["status"]["enabled"] is False
    types = [e["type"] for e in (await rpc.call("events.list", {"service": "collector"}))["events"]]
    assert types == ["collector_disabled", "collector_enabled"]


async def test_toggle_checks_its_param(served: tuple[Daemon, XraydClient]) -> None:
    """`enabled` must be a JSON boolean; a string is invalid params, and nothing is written."""
    _, rpc = served
    with pytest.raises(RpcError) as err:
        await rpc.call("collector.toggle", {"enabled": "yes"})
    assert err.value.code == -32602


async def test_a_schedule_change_rewrites_an_installed_job(
    served: tuple[Daemon, XraydClient], sandbox: Sandbox
) -> None:
    """Changing collector.schedule in settings moves the installed job to the new time."""
    _, rpc = served
    await rpc.call("collector.toggle", {"enabled": True})
    await rpc.call("settings.update", {"collector": {"schedule": "5 3 * * *"}})
    await eventually(lambda: cron.installed_schedule(sandbox.config.cron_file) == "5 3 * * *")
    assert (await rpc.call("collector.status"))["status"]["schedule"] == "5 3 * * *"


async def test_a_schedule_set_while_off_is_used_when_turned_on(
    served: tuple[Daemon, XraydClient], sandbox: Sandbox
) -> None:
    """With the collector off a new schedule installs nothing; turning it on uses that schedule."""
    _, rpc = served
    await rpc.call("settings.update", {"collector": {"schedule": "5 3 * * *"}})
    assert not sandbox.config.cron_file.exists()
    await rpc.call("collector.toggle", {"enabled": True})
    assert cron.installed_schedule(sandbox.config.cron_file) == "5 3 * * *"


async def test_a_start_brings_a_stale_job_up_to_date(sandbox: Sandbox) -> None:
    """An installed job naming another interpreter or schedule is rewritten when xrayd starts."""
    sandbox.config.cron_file.write_text(cron.render("0 1 * * *", ["/old/python", "-m", "xrayd", "collect"]))
    d = Daemon(sandbox.config, shutdown_grace=5, config_file=sandbox.config_file)
    task = await start_daemon(d)
    try:
        await eventually(lambda: cron.installed_schedule(sandbox.config.cron_file) == "17 0 * * *")
        assert sys.executable in sandbox.config.cron_file.read_text()
    finally:
        d.request_stop()
        await task


async def test_toggle_without_a_cron_folder_is_503(sandbox: Sandbox) -> None:
    """A machine without /etc/cron.d gets a clear 503, not a traceback."""
    config = dataclasses.replace(sandbox.config, cron_file=sandbox.root / "no-cron" / "job")
    d = Daemon(config, shutdown_grace=5)
    task = await start_daemon(d)
    try:
        async with XraydClient(str(config.socket)) as rpc:
            with pytest.raises(RpcError) as err:
                await rpc.call("collector.toggle", {"enabled": True})
        assert (err.value.code, err.value.error) == (503, "cron_unavailable")
    finally:
        d.request_stop()
        await task


async def test_run_collects_yesterday_and_today_when_asked(
    served: tuple[Daemon, XraydClient], sandbox: Sandbox
) -> None:
    """collector.run writes yesterday's file (today's only with include_today) and says so."""
    _, rpc = served
    sandbox.config.access_log.write_text(
        log_line(YESTERDAY, "10:00:00", "alice@example.org") + log_line(TODAY, "00:00:01", "bob@example.org")
    )
    ledger = Ledger.in_data_dir(sandbox.config.data_dir)
    ledger.add([Row(YESTERDAY, "alice@example.org", 123, 456)])
    ledger.close()
    first = await rpc.call("collector.run")
    assert first["ok"] is True
    assert first["message"] == "Collector: 1 day(s) written, 0 unchanged, 0 missing, 0 kept."
    assert first["written"] == [YESTERDAY.isoformat()]
    text = files.path_for(sandbox.config.usage_dir, YESTERDAY).read_text()
    assert f"\nalice@example.org,,123,456,1,1,{YESTERDAY}T10:00:00,{YESTERDAY}T10:00:00\n" in text
    status = (await rpc.call("collector.status"))["status"]
    assert (status["newest_date"], status["lag_days"], status["last_error"]) == (
        YESTERDAY.isoformat(),
        0,
        None,
    )
    assert status["last_run"]["ok"] is True and status["last_run"]["written"] == [YESTERDAY.isoformat()]
    today = await rpc.call("collector.run", {"include_today": True})
    assert today["written"] == [TODAY.isoformat()]
    assert (await rpc.call("usage.dates"))["dates"] == [TODAY.isoformat(), YESTERDAY.isoformat()]
    again = await rpc.call("collector.run", {"date": YESTERDAY.isoformat()})
    assert (again["written"], again["unchanged"]) == ([], [YESTERDAY.isoformat()])
    events = (await rpc.call("events.list", {"type": "collector_run"}))["events"]
    assert len(events) == 3 and all(e["severity"] == "info" for e in events)


async def test_status_before_any_run(served: tuple[Daemon, XraydClient]) -> None:
    """A fresh install: off, no data, no run, no error, the default schedule."""
    _, rpc = served
    assert await rpc.call("collector.status") == {
        "status": {
            "enabled": False,
            "lag_days": None,
            "newest_date": None,
            "last_run": None,
            "last_error": None,
            "schedule": "17 0 * * *",
        }
    }


async def test_lag_counts_finished_days_not_collected(
    served: tuple[Daemon, XraydClient], sandbox: Sandbox
) -> None:
    """lag_days is how many finished days have passed since the newest usage file."""
    _, rpc = served
    files.path_for(sandbox.config.usage_dir, TODAY - dt.timedelta(days=4)).write_bytes(files.render({}))
    assert (await rpc.call("collector.status"))["status"]["lag_days"] == 3


async def test_a_failed_run_is_500_and_shows_in_status(
    served: tuple[Daemon, XraydClient], sandbox: Sandbox
) -> None:
    """A corrupt log fails the run: a 500 naming the file, last_error set, an error event."""
    _, rpc = served
    sandbox.config.access_log.write_text(log_line(YESTERDAY, "10:00:00", "a@x"))
    rotated = sandbox.config.access_log.with_name("access.log.1.gz")
    rotated.write_bytes(gzip.compress(log_line(YESTERDAY, "01:00:00", "a@x").encode())[:-10])
    with pytest.raises(RpcError) as err:
        await rpc.call("collector.run")
    assert (err.value.code, err.value.error) == (500, "collector_failed")
    assert "access.log.1.gz is truncated or corrupt" in err.value.message
    status = (await rpc.call("collector.status"))["status"]
    assert status["last_error"] == "access.log.1.gz is truncated or corrupt."
    assert status["last_run"]["ok"] is False
    (event,) = (await rpc.call("events.list", {"type": "collector_run"}))["events"]
    assert event["severity"] == "error"
    rotated.unlink()
    await rpc.call("collector.run")
    assert (await rpc.call("collector.status"))["status"]["last_error"] is None


async def test_run_while_cron_runs_is_409(served: tuple[Daemon, XraydClient], sandbox: Sandbox) -> None:
    """If a run (cron's) holds the lock, collector.run answers 409 and records nothing."""
    _, rpc = served
    with runs.run_lock(sandbox.config.data_dir), pytest.raises(RpcError) as err:
        await rpc.call("collector.run")
    assert (err.value.code, err.value.error) == (409, "collector_running")


async def test_run_checks_its_params(served: tuple[Daemon, XraydClient]) -> None:
    """A bad date or a non-boolean include_today is invalid params; a future date is 400."""
    _, rpc = served
    for params in ({"date": "2026-02-30"}, {"include_today": "true"}):
        with pytest.raises(RpcError) as err:
            await rpc.call("collector.run", params)
        assert err.value.code == -32602
    with pytest.raises(RpcError) as err:
        await rpc.call("collector.run", {"date": (TODAY + dt.timedelta(days=1)).isoformat()})
    assert (err.value.code, err.value.error) == (400, "date_in_future")


async def test_the_installed_cron_line_runs_the_collector(
    served: tuple[Daemon, XraydClient], sandbox: Sandbox
) -> None:
    """The job's command, run by /bin/sh as cron would, collects with xrayd's own config."""
    _, rpc = served
    await rpc.call("collector.toggle", {"enabled": True})
    sandbox.config.access_log.write_text(log_line(YESTERDAY, "12:00:00", "carol@example.org"))
    job = sandbox.config.cron_file.read_text().splitlines()[-1]
    command = job.split(" ", 6)[6]
    done = await asyncio.to_thread(
        subprocess.run,
        ["/bin/sh", "-c", command],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(sandbox.root)},
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert files.list_dates(sandbox.config.usage_dir) == [YESTERDAY]
    status = (await rpc.call("collector.status"))["status"]
    assert status["last_run"]["written"] == [YESTERDAY.isoformat()] and status["lag_days"] == 0
    assert os.stat(files.path_for(sandbox.config.usage_dir, YESTERDAY)).st_size > 0
