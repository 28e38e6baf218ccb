"""The live service end to end: a real xrayd, real files, the xray and systemctl stand-ins."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Awaitable, Callable
from datetime import date, datetime, time, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from client.aio import XraydClient
from tests.conftest import start_daemon
from xrayd.daemon import Daemon
from xrayd.live.ledger import Ledger
from xrayd.live.pairs import Pairs
from xrayd.live.scan import Tally
from xrayd.live.service import LiveService
from xrayd.sandbox.builder import Sandbox
from xrayd.sandbox.standin_state import add_traffic, read_state, update_state

ALICE, BOB = "alice@example.org", "bob@example.org"


def access_line(
    email: str, host: str = "example.com", ip: str = "203.0.113.7", when: datetime | None = None
) -> bytes:
    stamp = (when or datetime.now()).strftime("%Y/%m/%d %H:%M:%S.%f")
    return (
        f"{stamp} from {ip}:41234 accepted tcp:{host}:443 [vless-reality >> direct] email: {email}\n".encode()
    )


def append(sandbox: Sandbox, *lines: bytes) -> None:
    with sandbox.config.access_log.open("ab") as f:
        f.write(b"".join(lines))


async def eventually(check: Callable[[], Awaitable[Any]], tries: int = 400) -> Any:
    """Retry `check` until it returns something truthy (the tailer runs on its own task)."""
    for _ in range(tries):
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.025)
    raise AssertionError("condition never became true")


async def conns_now(rpc: XraydClient, email: str) -> int:
    users = (await rpc.call("live.now"))["users"]
    return next((u["conns"] for u in users if u["email"] == email), 0)


async def test_appended_lines_show_in_live_now(rpc: XraydClient, sandbox: Sandbox) -> None:
    """Lines appended to access.log appear in live.now with IPs, destinations and last seen."""
    rejected = datetime.now().strftime("%Y/%m/%d %H:%M:%S.%f").encode() + (
        b" from 192.0.2.9:40000 rejected  proxy/vless/encoding: invalid request user id\n"
    )
    other = access_line(ALICE, "cdn.example.net", ip="198.51.100.2")
    append(sandbox, access_line(ALICE), other, b"junk\n", rejected)
    await eventually(lambda: _equals(conns_now(rpc, ALICE), 2))
    now = await rpc.call("live.now")
    alice = now["users"][0]
    assert alice["email"] == ALICE and set(alice["ips"]) == {"203.0.113.7", "198.51.100.2"}
    assert {d["domain"] for d in alice["top_domains"]} == {"example.com", "cdn.example.net"}
    assert alice["last_seen"].endswith("Z") and now["total"]["unparsed"] == 1
    assert now["total"]["rejected"] == 1
    assert now["total"]["users_online"] == 1 and now["window_seconds"] == 300 and now["stats_ok"] is True


async def test_traffic_moves_into_live_now_and_the_ledger(
    daemon: Daemon, rpc: XraydClient, sandbox: Sandbox
) -> None:
    """A poll reads Xray's counters with reset: live.now and users.stats show the bytes."""
    assert add_traffic(sandbox.state_dir, ALICE, 1000, 9000)
    await daemon.prepare_xray_restart()
    alice = next(u for u in (await rpc.call("live.now"))["users"] if u["email"] == ALICE)
    assert (alice["uplink"], alice["downlink"]) == (1000, 9000)
    stats = (await rpc.call("users.stats"))["stats"]
    assert stats[ALICE]["traffic"] == {"uplink": 1000, "downlink": 9000, "total": 10000}
    assert stats[ALICE]["isOnline"] is True
    assert read_state(sandbox.state_dir)["counters"][f"user>>>{ALICE}>>>traffic>>>uplink"] == 0
    ledger = Ledger.in_data_dir(sandbox.config.data_dir, readonly=True)
    assert ledger.totals_all_time() == {ALICE: (1000, 9000)}


async def test_a_restart_of_xray_loses_no_counted_byte(
    daemon: Daemon, rpc: XraydClient, sandbox: Sandbox
) -> None:
    """The before-restart hook reads the counters, so bytes from before a restart are kept."""
    add_traffic(sandbox.state_dir, BOB, 500, 700)
    await daemon.prepare_xray_restart()
    subprocess.run([str(sandbox.config.systemctl), "restart", "xray"], check=True)
    assert read_state(sandbox.state_dir)["restarts"] == 1
    add_traffic(sandbox.state_dir, BOB, 5, 7)
    await daemon.prepare_xray_restart()
    stats = (await rpc.call("users.stats"))["stats"]
    assert stats[BOB]["traffic"] == {"uplink": 505, "downlink": 707, "total": 1212}


async def test_a_failed_commit_is_kept_for_the_next(
    daemon: Daemon, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counters already read (and reset) are not lost when the ledger cannot be written once."""
    real, calls = Ledger.add, []

    def flaky(self: Ledger, *args: Any, **kwargs: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("No space left on device")
        real(self, *args, **kwargs)

    monkeypatch.setattr(Ledger, "add", flaky)
    add_traffic(sandbox.state_dir, ALICE, 10, 20)
    await daemon.prepare_xray_restart()  # reads and resets the counters, then fails to write
    add_traffic(sandbox.state_dir, ALICE, 1, 2)
    await daemon.prepare_xray_restart()
    ledger = Ledger.in_data_dir(sandbox.config.data_dir, readonly=True)
    assert ledger.totals_all_time() == {ALICE: (11, 22)} and len(calls) == 2


async def test_the_api_down_and_back(daemon: Daemon, rpc: XraydClient, sandbox: Sandbox) -> None:
    """While Xray's API is down live.now says stats_ok false and still counts lines; an event
    marks each change."""
    update_state(sandbox.state_dir, lambda s: s.update(api_up=False))
    await daemon.prepare_xray_restart()
    append(sandbox, access_line(BOB))
    await eventually(lambda: _equals(conns_now(rpc, BOB), 1))
    assert (await rpc.call("live.now"))["stats_ok"] is False
    update_state(sandbox.state_dir, lambda s: s.update(api_up=True))
    add_traffic(sandbox.state_dir, BOB, 1, 2)
    await daemon.prepare_xray_restart()
    assert (await rpc.call("live.now"))["stats_ok"] is True
    types = [e["type"] for e in (await rpc.call("events.list", {"service": "live"}))["events"]]
    assert types == ["stats_recovered", "stats_unavailable"]


async def test_a_daemon_restart_in_the_middle_of_a_file(sandbox: Sandbox) -> None:
    """Stopping xrayd and starting it again neither re-counts nor skips a line: the ledger's
    connections equal the lines written, and live.now has them all back."""
    append(sandbox, *(access_line(ALICE) for _ in range(3)))
    first = Daemon(sandbox.config, shutdown_grace=5)
    task = await start_daemon(first)
    async with XraydClient(str(sandbox.config.socket)) as rpc:
        await eventually(lambda: _equals(conns_now(rpc, ALICE), 3))
        append(sandbox, *(access_line(ALICE) for _ in range(2)))
        await eventually(lambda: _equals(conns_now(rpc, ALICE), 5))
    first.request_stop()
    await task
    append(sandbox, *(access_line(ALICE) for _ in range(4)))
    second = Daemon(sandbox.config, shutdown_grace=5)
    task = await start_daemon(second)
    try:
        async with XraydClient(str(sandbox.config.socket)) as rpc:
            await eventually(lambda: _equals(conns_now(rpc, ALICE), 9))
            await second.prepare_xray_restart()
            assert (await rpc.call("users.stats"))["stats"][ALICE]["conns"] == 9
    finally:
        second.request_stop()
        await task
    assert Ledger.in_data_dir(sandbox.config.data_dir, readonly=True).usage_all_time()[ALICE].conns == 9


async def test_traffic_series_survive_a_daemon_restart(sandbox: Sandbox) -> None:
    """The per-minute traffic of the window comes back from the ledger after a restart."""
    first = Daemon(sandbox.config, shutdown_grace=5)
    task = await start_daemon(first)
    add_traffic(sandbox.state_dir, ALICE, 40, 60)
    await first.prepare_xray_restart()
    first.request_stop()
    await task
    second = Daemon(sandbox.config, shutdown_grace=5)
    task = await start_daemon(second)
    try:
        async with XraydClient(str(sandbox.config.socket)) as rpc:
            query = {"metric": "traffic", "period": 600, "scope": "user", "user": ALICE}
            series = (await rpc.call("live.series", query))["series"]
            assert sum(p["value"] for p in series) == 100
            assert (await rpc.call("users.stats"))["stats"][ALICE]["traffic"]["total"] == 100
    finally:
        second.request_stop()
        await task


async def test_the_first_start_backfills_only_the_retention_window(sandbox: Sandbox) -> None:
    """Lines older than the retention are skipped (found by binary search), newer ones count."""
    old = datetime.now() - timedelta(hours=30)
    append(sandbox, *(access_line(BOB, when=old + timedelta(seconds=n)) for n in range(500)))
    append(sandbox, *(access_line(BOB, when=datetime.now() - timedelta(hours=2)) for _ in range(3)))
    d = Daemon(sandbox.config, shutdown_grace=5)
    task = await start_daemon(d)
    try:
        async with XraydClient(str(sandbox.config.socket)) as rpc:

            async def top() -> list[dict[str, Any]]:
                return (await rpc.call("live.top", {"metric": "conns", "period": 86400}))["top"]

            assert await eventually(top) == [{"user": BOB, "value": 3}]
            await d.prepare_xray_restart()
            assert (await rpc.call("users.stats"))["stats"][BOB]["conns"] == 3
    finally:
        d.request_stop()
        await task


async def test_connections_go_to_the_ledger_per_local_day(sandbox: Sandbox) -> None:
    """Lines on both sides of midnight, read in one chunk, are committed per (day, email)."""
    midnight = datetime.combine(date.today(), time())
    if not timedelta(minutes=2) < datetime.now() - midnight < timedelta(hours=23, minutes=58):
        pytest.skip("too close to midnight for yesterday's last minute to be in the window")
    before, after = midnight - timedelta(seconds=30), midnight + timedelta(seconds=30)
    append(sandbox, access_line(ALICE, when=before), access_line(BOB, when=before))
    append(sandbox, *(access_line(ALICE, when=after) for _ in range(2)))
    d = Daemon(sandbox.config, shutdown_grace=5)
    task = await start_daemon(d)
    try:
        async with XraydClient(str(sandbox.config.socket)) as rpc:

            async def top() -> list[dict[str, Any]]:
                return (await rpc.call("live.top", {"metric": "conns", "period": 86400}))["top"]

            await eventually(lambda: _equals(top(), [{"user": ALICE, "value": 3}, {"user": BOB, "value": 1}]))
            await d.prepare_xray_restart()
    finally:
        d.request_stop()
        await task
    ledger = Ledger.in_data_dir(sandbox.config.data_dir, readonly=True)
    yesterday = ledger.usage_for_day(before.date())
    assert {email: u.conns for email, u in yesterday.items()} == {ALICE: 1, BOB: 1}
    assert {email: u.conns for email, u in ledger.usage_for_day(after.date()).items()} == {ALICE: 2}
    assert yesterday[BOB].last_seen == pytest.approx(before.timestamp())


def test_a_chunk_across_midnight_gives_each_day_its_own_last_line(sandbox: Sandbox) -> None:
    """Connections waiting for the ledger carry, per day, that day's latest time: the exact
    one of a recent line on its own day, the last minute's start on the day before."""
    live = LiveService(Daemon(sandbox.config))
    midnight = datetime(2026, 3, 2)
    m = int(midnight.timestamp() // 60)
    pairs = Pairs.from_counter({(m - 2, ALICE, "a"): 1, (m - 1, ALICE, "b"): 1, (m, ALICE, "a"): 2})
    live._keep(Tally(pairs=pairs, last_seen={ALICE: midnight.timestamp() + 30}))
    assert live._pending[midnight.date() - timedelta(days=1), ALICE][2:] == [2, (m - 1) * 60]
    assert live._pending[midnight.date(), ALICE][2:] == [2, midnight.timestamp() + 30]


async def test_a_log_that_appears_later(sandbox: Sandbox) -> None:
    """With no access.log at start, xrayd waits and counts the file once Xray creates it."""
    sandbox.config.access_log.unlink()
    d = Daemon(sandbox.config, shutdown_grace=5)
    task = await start_daemon(d)
    try:
        async with XraydClient(str(sandbox.config.socket)) as rpc:
            assert (await rpc.call("live.now"))["users"] == []
            append(sandbox, access_line(BOB))
            await eventually(lambda: _equals(conns_now(rpc, BOB), 1))
    finally:
        d.request_stop()
        await task


async def test_rotation_by_rename_while_running(rpc: XraydClient, sandbox: Sandbox) -> None:
    """logrotate's rename + create loses and double counts nothing."""
    log = sandbox.config.access_log
    append(sandbox, access_line(ALICE))
    await eventually(lambda: _equals(conns_now(rpc, ALICE), 1))
    log.rename(log.with_name("access.log.1"))
    with log.with_name("access.log.1").open("ab") as f:
        f.write(access_line(ALICE))
    append(sandbox, access_line(ALICE), access_line(ALICE))
    await eventually(lambda: _equals(conns_now(rpc, ALICE), 4))
    append(sandbox, access_line(ALICE))
    await eventually(lambda: _equals(conns_now(rpc, ALICE), 5))


async def test_series_and_top(daemon: Daemon, rpc: XraydClient, sandbox: Sandbox) -> None:
    """series is zero-filled per granularity; top ranks users by traffic or domains by conns."""
    append(sandbox, access_line(ALICE), access_line(ALICE, "b.com"), access_line(BOB, "b.com"))
    await eventually(lambda: _equals(conns_now(rpc, BOB), 1))
    add_traffic(sandbox.state_dir, BOB, 10, 90)
    add_traffic(sandbox.state_dir, ALICE, 1, 2)
    await daemon.prepare_xray_restart()
    series = (await rpc.call("live.series", {"metric": "conns", "period": 600, "granularity": 120}))["series"]
    assert len(series) == 5 and sum(p["value"] for p in series) == 3 and series[-1]["value"] == 3
    mine = await rpc.call("live.series", {"metric": "traffic", "period": 300, "scope": "user", "user": BOB})
    assert [p["value"] for p in mine["series"]][-1] == 100 and len(mine["series"]) == 5
    top = (await rpc.call("live.top", {"metric": "traffic"}))["top"]
    assert top == [{"user": BOB, "value": 100}, {"user": ALICE, "value": 3}]
    domains = await rpc.call("live.top", {"by": "domains", "scope": "user", "user": ALICE})
    assert sorted((d["domain"], d["value"]) for d in domains["top"]) == [("b.com", 1), ("example.com", 1)]
    everyone = (await rpc.call("live.top", {"by": "domains", "limit": 1}))["top"]
    assert everyone == [{"domain": "b.com", "value": 2}]


async def test_bad_params_name_the_parameter(api: TestClient) -> None:
    """A period over the retention or a granularity that is not whole minutes is a 400 naming it."""
    for query, name in (
        ({"period": "90000"}, "period"),
        ({"granularity": "90"}, "granularity"),
        ({"scope": "user"}, "user"),
    ):
        resp = await api.get("/api/live/series", params=query)
        body = await resp.json()
        assert resp.status == 400 and body["error"] == "invalid_params" and body["message"].startswith(name)
    resp = await api.get("/api/live/top", params={"period": "90000", "by": "domains"})
    assert resp.status == 400 and (await resp.json())["message"].startswith("period")


async def test_rest_endpoints_answer(api: TestClient) -> None:
    """The four endpoints are live through the gateway."""
    for path in ("/api/live/now", "/api/live/series", "/api/live/top", "/api/users/stats"):
        resp = await api.get(path)
        assert resp.status == 200, path


async def _equals(value: Awaitable[Any], expected: Any) -> bool:
    return (await value) == expected


async def test_live_now_names_users_and_survives_users_list_failing(sandbox: Sandbox) -> None:
    """live.now shows aliases from users.list, and still answers, unnamed,
    when users.list fails (a config with no managed inbound)."""
    from xrayd.errors import Unprocessable

    d = Daemon(sandbox.config, shutdown_grace=5)
    task = await start_daemon(d)
    try:
        async with XraydClient(str(sandbox.config.socket)) as rpc:
            await rpc.call("users.update_alias", {"email": ALICE, "alias": "Алиса"})
            append(sandbox, access_line(ALICE))
            await eventually(lambda: _equals(conns_now(rpc, ALICE), 1))
            assert (await rpc.call("live.now"))["users"][0]["alias"] == "Алиса"

            async def broken() -> dict[str, Any]:
                raise Unprocessable("There is no VLESS + REALITY inbound.", error="no_managed_inbound")

            d.methods["users.list"] = broken  # what live.now looks up at call time
            body = await rpc.call("live.now")
            assert [(u["email"], u["alias"]) for u in body["users"]] == [(ALICE, None)]
    finally:
        d.request_stop()
        await task
