"""usage.* through a real xrayd (and the gateway): dates, dashboards over a known fixture."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from conftest import start_daemon

from client.aio import XraydClient
from client.protocol import RpcError
from gateway.app import create_app
from xrayd import atomic
from xrayd.daemon import Daemon
from xrayd.sandbox import builder
from xrayd.sandbox.builder import Sandbox
from xrayd.usage import files
from xrayd.usage.files import UserDay

D18, D19, D20 = dt.date(2026, 1, 18), dt.date(2026, 1, 19), dt.date(2026, 1, 20)
CONFIGURED = [
    {"email": "alice@example.org", "alias": "Alice"},
    {"email": "Bob@Example.org", "alias": None},
    {"email": "carol@example.org", "alias": "C"},
    {"email": "dave@example.org", "alias": "never connects"},
]


def stamp(date: dt.date, hms: str) -> dt.datetime:
    return dt.datetime.fromisoformat(f"{date.isoformat()}T{hms}")


def user(
    email: str, date: dt.date, up: int, down: int, ips: int, span: tuple[str, str] | None, **doms: int
) -> UserDay:
    first, last = (stamp(date, span[0]), stamp(date, span[1])) if span else (None, None)
    domains = {name.replace("_", "."): n for name, n in doms.items()}
    return UserDay(
        email,
        uplink=up,
        downlink=down,
        connections=sum(domains.values()),
        ips={f"10.0.0.{n}" for n in range(ips)},
        first_seen=first,
        last_seen=last,
        domains=domains,
    )


def write_fixture(usage_dir: Path) -> None:
    """Two collected days around a gap: the figures the tests below count by hand."""
    day18 = [
        user("alice@example.org", D18, 100, 1000, 1, ("08:00:00", "09:00:00"), google_com=2, telegram_org=1),
        user("bob@example.org", D18, 10, 20, 1, ("10:00:00", "10:00:00"), google_com=1),
    ]
    day20 = [
        user("alice@example.org", D20, 200, 2000, 3, ("07:00:00", "22:00:00"), youtube_com=4, google_com=1),
        user("carol@example.org", D20, 1, 2, 0, None),
    ]
    for date, users in ((D18, day18), (D20, day20)):
        atomic.write_bytes(files.path_for(usage_dir, date), files.render({u.email: u for u in users}))
    (usage_dir / "README.txt").write_text("not a usage file")


def point(date: str, up: int, down: int, *, connections: int, users: int, collected: bool = True) -> dict:
    """One entry of a dashboard's series."""
    return {
        "date": date,
        "uplink": up,
        "downlink": down,
        "traffic": up + down,
        "connections": connections,
        "users": users,
        "collected": collected,
    }


@pytest.fixture
def peers(short_tmp: Path) -> Sandbox:
    """A sandbox whose Xray config has the CONFIGURED users, and the usage fixture files."""
    sandbox = builder.build(short_tmp / "peers", emails=[u["email"] for u in CONFIGURED])
    write_fixture(sandbox.config.usage_dir)
    return sandbox


@pytest.fixture
async def rpc_with_peers(peers: Sandbox) -> AsyncIterator[XraydClient]:
    """xrayd over `peers` with aliases set through users.update_alias, and live.now pinned:
    the live module's own tests cover how it finds who is online."""
    sandbox = peers
    d = Daemon(sandbox.config, shutdown_grace=5)

    async def live_now() -> dict[str, Any]:
        return {"users": [{"email": "alice@example.org"}, {"email": "stranger@example.org"}]}

    d.methods["live.now"] = live_now
    task = await start_daemon(d)
    async with XraydClient(str(sandbox.config.socket)) as client:
        for u in CONFIGURED:
            if u["alias"]:
                await client.call("users.update_alias", {"email": u["email"], "alias": u["alias"]})
        yield client
    d.request_stop()
    await task


async def test_dates_are_newest_first_from_file_names(rpc_with_peers: XraydClient) -> None:
    """usage.dates lists the dates of the usage files, newest first, other files ignored."""
    assert await rpc_with_peers.call("usage.dates") == {"dates": ["2026-01-20", "2026-01-18"]}


async def test_dashboard_figures_for_the_fixture(rpc_with_peers: XraydClient) -> None:
    """Totals, series, the per-user table with aliases, top domains and presence, by hand."""
    body = await rpc_with_peers.call("usage.dashboard", {"days": 3})
    assert (body["from"], body["to"], body["days"], body["user"]) == ("2026-01-18", "2026-01-20", 3, None)
    assert body["collected_days"] == 2
    assert body["totals"] == {"uplink": 311, "downlink": 3022, "traffic": 3333, "connections": 9, "users": 3}
    assert body["series"] == [
        point("2026-01-18", 110, 1020, connections=4, users=2),
        point("2026-01-19", 0, 0, connections=0, users=0, collected=False),
        point("2026-01-20", 201, 2002, connections=5, users=2),
    ]
    assert body["users"] == [
        {
            "email": "alice@example.org",
            "alias": "Alice",
            "uplink": 300,
            "downlink": 3000,
            "traffic": 3300,
            "connections": 8,
            "unique_ips": 3,
            "days_active": 2,
            "first_seen": "2026-01-18T08:00:00",
            "last_seen": "2026-01-20T22:00:00",
        },
        {
            "email": "bob@example.org",
            "alias": None,
            "uplink": 10,
            "downlink": 20,
            "traffic": 30,
            "connections": 1,
            "unique_ips": 1,
            "days_active": 1,
            "first_seen": "2026-01-18T10:00:00",
            "last_seen": "2026-01-18T10:00:00",
        },
        {
            "email": "carol@example.org",
            "alias": "C",
            "uplink": 1,
            "downlink": 2,
            "traffic": 3,
            "connections": 0,
            "unique_ips": 0,
            "days_active": 1,
            "first_seen": None,
            "last_seen": None,
        },
        {
            "email": "dave@example.org",
            "alias": "never connects",
            "uplink": 0,
            "downlink": 0,
            "traffic": 0,
            "connections": 0,
            "unique_ips": 0,
            "days_active": 0,
            "first_seen": None,
            "last_seen": None,
        },
    ]
    assert body["top_domains"] == [
        {"domain": "google.com", "connections": 4},
        {"domain": "youtube.com", "connections": 4},
        {"domain": "telegram.org", "connections": 1},
    ]
    assert (body["online"], body["offline"]) == (1, 3)


async def test_dashboard_window_ends_on_the_newest_file(rpc_with_peers: XraydClient) -> None:
    """days=1 is the newest collected date alone; the default is the 7 dates ending on it."""
    one = await rpc_with_peers.call("usage.dashboard", {"days": 1})
    assert (one["from"], one["to"], one["totals"]["traffic"]) == ("2026-01-20", "2026-01-20", 2203)
    week = await rpc_with_peers.call("usage.dashboard")
    assert (week["from"], week["to"], len(week["series"])) == ("2026-01-14", "2026-01-20", 7)
    assert week["totals"]["traffic"] == 3333


async def test_dashboard_for_one_user(rpc_with_peers: XraydClient) -> None:
    """With `user`, every figure is that user's (matched case-insensitively), domains included."""
    body = await rpc_with_peers.call("usage.dashboard", {"days": 3, "user": "ALICE@example.org"})
    assert body["user"] == "alice@example.org"
    assert body["totals"] == {"uplink": 300, "downlink": 3000, "traffic": 3300, "connections": 8, "users": 1}
    assert [p["traffic"] for p in body["series"]] == [1100, 0, 2200]
    assert [p["collected"] for p in body["series"]] == [True, False, True]
    assert [row["email"] for row in body["users"]] == ["alice@example.org"]
    assert body["top_domains"] == [
        {"domain": "youtube.com", "connections": 4},
        {"domain": "google.com", "connections": 3},
        {"domain": "telegram.org", "connections": 1},
    ]


async def test_dashboard_for_a_user_without_usage(rpc_with_peers: XraydClient) -> None:
    """A configured user with no usage gets zeros and their row; an unknown one just zeros."""
    dave = await rpc_with_peers.call("usage.dashboard", {"days": 3, "user": "dave@example.org"})
    assert dave["totals"]["traffic"] == 0 and dave["top_domains"] == []
    assert [row["email"] for row in dave["users"]] == ["dave@example.org"]
    nobody = await rpc_with_peers.call("usage.dashboard", {"days": 3, "user": "nobody@example.org"})
    assert nobody["users"] == [] and nobody["totals"]["connections"] == 0


async def test_dashboard_for_date_daily_and_cumulative(rpc_with_peers: XraydClient) -> None:
    """daily is that date alone; cumulative sums the window that ends on it."""
    daily = await rpc_with_peers.call("usage.dashboard_for_date", {"date": "2026-01-18"})
    assert (daily["date"], daily["mode"], daily["from"], daily["to"]) == (
        "2026-01-18",
        "daily",
        "2026-01-18",
        "2026-01-18",
    )
    assert daily["totals"]["traffic"] == 1130
    assert daily["top_domains"] == [
        {"domain": "google.com", "connections": 3},
        {"domain": "telegram.org", "connections": 1},
    ]
    cumulative = await rpc_with_peers.call(
        "usage.dashboard_for_date", {"date": "2026-01-20", "mode": "cumulative", "window_days": 2}
    )
    assert (cumulative["from"], cumulative["to"], cumulative["window_days"]) == (
        "2026-01-19",
        "2026-01-20",
        2,
    )
    assert cumulative["totals"]["traffic"] == 2203
    wide = await rpc_with_peers.call("usage.dashboard_for_date", {"date": "2026-01-20", "mode": "cumulative"})
    assert wide["totals"]["traffic"] == 3333 and wide["collected_days"] == 2


async def test_bad_and_missing_dates(rpc_with_peers: XraydClient) -> None:
    """A malformed or impossible date is invalid params (400); a date without a file is 404."""
    for bad in ("2026-1-18", "2026-02-30", "yesterday", "2026-01-18/../x", 20260118):
        with pytest.raises(RpcError) as err:
            await rpc_with_peers.call("usage.dashboard_for_date", {"date": bad})
        assert err.value.code == -32602
    for missing in ("2026-01-19", "2031-01-01"):
        with pytest.raises(RpcError) as err:
            await rpc_with_peers.call("usage.dashboard_for_date", {"date": missing})
        assert (err.value.code, err.value.error) == (404, "usage_date_not_found")


async def test_params_are_checked_in_xrayd(rpc_with_peers: XraydClient) -> None:
    """days, window_days, mode and user are validated by xrayd, whatever the gateway did."""
    for method, params in (
        ("usage.dashboard", {"days": 0}),
        ("usage.dashboard", {"days": "7"}),
        ("usage.dashboard", {"user": "a\nb"}),
        ("usage.dashboard_for_date", {"date": "2026-01-18", "mode": "weekly"}),
        ("usage.dashboard_for_date", {"date": "2026-01-18", "window_days": 99999}),
    ):
        with pytest.raises(RpcError) as err:
            await rpc_with_peers.call(method, params)
        assert err.value.code == -32602, (method, params)


async def test_dashboard_with_no_usage_files_at_all(rpc: XraydClient) -> None:
    """No files yet: no dates, and a dashboard of zeros ending today, presence unknown."""
    assert await rpc.call("usage.dates") == {"dates": []}
    body = await rpc.call("usage.dashboard", {"days": 2})
    assert body["to"] == dt.date.today().isoformat()
    assert body["totals"]["traffic"] == 0 and body["collected_days"] == 0
    assert all(u["traffic"] == 0 and u["days_active"] == 0 for u in body["users"])


async def test_through_the_gateway(rpc_with_peers: XraydClient, peers: Sandbox, aiohttp_client: Any) -> None:
    """The REST routes answer 200 with the RPC result, 400 for a bad date, 404 for a missing one."""
    client: TestClient = await aiohttp_client(create_app(str(peers.config.socket), peers.token))
    auth = {"Authorization": f"Bearer {peers.token}"}
    resp = await client.get("/api/usage/dates", headers=auth)
    assert (resp.status, await resp.json()) == (200, {"dates": ["2026-01-20", "2026-01-18"]})
    resp = await client.get(
        "/api/usage/dashboard", params={"days": "3", "user": "bob@example.org"}, headers=auth
    )
    assert resp.status == 200 and (await resp.json())["totals"]["traffic"] == 30
    resp = await client.get("/api/usage/dashboard/2026-01-20", params={"mode": "cumulative"}, headers=auth)
    assert resp.status == 200 and (await resp.json())["totals"]["traffic"] == 3333
    resp = await client.get("/api/usage/dashboard/2026-13-01", headers=auth)
    assert resp.status == 400
    resp = await client.get("/api/usage/dashboard/2026-01-19", headers=auth)
    assert resp.status == 404
    assert (await resp.json())["error"] == "usage_date_not_found"
