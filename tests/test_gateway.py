"""The gateway through a real aiohttp server and a real xrayd: auth, params, errors, 503."""

from __future__ import annotations

import asyncio
import io
import json

from aiohttp.test_utils import TestClient
from conftest import start_daemon

from gateway.app import create_app
from gateway.routes import ROUTES
from xrayd.daemon import Daemon
from xrayd.sandbox.builder import Sandbox


def test_route_table_has_every_endpoint() -> None:
    """35 endpoints: 34 in the table plus /api/ping, each path+method once."""
    keys = {(r.method, r.path) for r in ROUTES}
    assert len(keys) == len(ROUTES) == 34
    assert len({r.rpc for r in ROUTES}) == 34


async def test_ping_needs_no_token_and_reports_daemon(api: TestClient) -> None:
    """/api/ping answers without auth and says xrayd is reachable."""
    resp = await api.get("/api/ping", headers={"Authorization": ""})
    body = await resp.json()
    assert resp.status == 200
    assert body["ok"] is True and body["message"] == "pong" and body["daemon"] == {"ok": True}
    assert body["ts"].endswith("Z")


async def test_missing_or_wrong_token_is_401(api: TestClient) -> None:
    """Every other /api route needs the bearer token."""
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
        resp = await api.get("/api/events", headers=headers)
        assert resp.status == 401
        assert await resp.json() == {
            "ok": False,
            "error": "unauthorized",
            "message": "Send `Authorization: Bearer <token>`.",
        }


async def test_events_through_the_gateway(api: TestClient) -> None:
    """GET /api/events returns the daemon's events (its start-up event at least)."""
    resp = await api.get("/api/events", params={"limit": "5"})
    body = await resp.json()
    assert resp.status == 200
    assert body["total"] >= 1 and body["events"][0]["type"] == "xrayd_started"
    stats = await (await api.get("/api/events/stats", params={"hours": "1"})).json()
    assert stats["stats"]["by_type"]["xrayd_started"] >= 1


async def test_query_coercion_errors_name_the_parameter(api: TestClient) -> None:
    """A bad int, an out-of-range int and a bad enum are 400s that name the parameter."""
    for query, name in (
        ({"limit": "ten"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"severity": "loud"}, "severity"),
        ({"hours": "nan"}, "hours"),
    ):
        resp = await api.get("/api/events", params=query)
        body = await resp.json()
        assert resp.status == 400, query
        assert body["error"] == "invalid_params" and name in body["message"]


async def test_body_not_json_is_400(api: TestClient) -> None:
    """A POST body that is not JSON (or not an object) is a 400."""
    for raw in (b"{not json", b"[1,2]", b"\xff\xfe"):
        resp = await api.post("/api/users/add", data=raw, headers={"Content-Type": "application/json"})
        assert resp.status == 400
        assert (await resp.json())["error"] == "invalid_json"


async def test_body_over_limit_is_413(api: TestClient) -> None:
    """A body over 1 MiB is refused with 413 and the JSON error body."""
    big = io.BytesIO(json.dumps({"email": "a" * (1024 * 1024 + 10)}).encode())
    resp = await api.post("/api/users/add", data=big, headers={"Content-Type": "application/json"})
    assert resp.status == 413
    assert (await resp.json())["error"] == "too_large"


async def test_unknown_api_path_is_json_404(api: TestClient) -> None:
    """An unknown /api/... path gets a 404 JSON body (after auth)."""
    resp = await api.get("/api/nope/nothing")
    assert resp.status == 404
    assert (await resp.json())["error"] == "not_found"


async def test_wrong_http_method_is_json_405(api: TestClient) -> None:
    """A known path with the wrong method is a JSON 405."""
    resp = await api.delete("/api/events")
    assert resp.status in (404, 405)
    assert (await resp.json())["ok"] is False


def test_every_route_has_its_method(sandbox: Sandbox) -> None:
    """Every route of the table reaches a method xrayd registers: no endpoint answers 501."""
    methods = Daemon(sandbox.config).methods
    assert [r.rpc for r in ROUTES if r.rpc not in methods] == []


async def test_a_method_xrayd_lacks_is_501(sandbox: Sandbox, aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    """A route whose RPC method xrayd does not have (an older daemon) answers 501 clearly."""
    d = Daemon(sandbox.config, shutdown_grace=1)
    del d.methods["usage.dates"]
    task = await start_daemon(d)
    try:
        client = await aiohttp_client(create_app(str(sandbox.config.socket), sandbox.token))
        resp = await client.get("/api/usage/dates", headers={"Authorization": f"Bearer {sandbox.token}"})
        assert resp.status == 501
        assert (await resp.json())["error"] == "not_implemented"
    finally:
        d.request_stop()
        await task


async def test_daemon_down_is_503_then_recovers(sandbox: Sandbox, aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    """With xrayd down the gateway answers 503; once xrayd is back it recovers by itself."""
    client = await aiohttp_client(create_app(str(sandbox.config.socket), sandbox.token))
    auth = {"Authorization": f"Bearer {sandbox.token}"}
    resp = await client.get("/api/events", headers=auth)
    assert resp.status == 503
    assert (await resp.json())["error"] == "daemon_unavailable"
    ping = await (await client.get("/api/ping")).json()
    assert ping["daemon"]["ok"] is False
    for _ in range(2):  # up, down, up again: the held connection is replaced each time
        d = Daemon(sandbox.config, shutdown_grace=1)
        task = await start_daemon(d)
        resp = await client.get("/api/events", headers=auth)
        assert resp.status == 200
        d.request_stop()
        await task
        assert (await client.get("/api/events", headers=auth)).status == 503


async def test_rpc_error_becomes_status_and_body(api: TestClient) -> None:
    """A domain error from xrayd becomes its HTTP status with {ok, error, message}."""
    resp = await api.post("/api/settings", json={"bogus": {"x": 1}})
    body = await resp.json()
    assert resp.status == 400
    assert body["ok"] is False and body["error"] == "invalid_settings"
    assert "bogus" in body["message"]


def test_rpc_codes_map_to_http_statuses() -> None:
    """JSON-RPC standard codes map to 400/501/500; our codes pass through; odd ones are 500."""
    from client.protocol import RpcError
    from gateway.errors import status_of

    cases = {
        -32700: 400,
        -32600: 400,
        -32602: 400,
        -32601: 501,
        -32603: 500,
        404: 404,
        409: 409,
        422: 422,
        503: 503,
        504: 504,
        418: 500,
        7: 500,
    }
    assert {code: status_of(RpcError(code, "e", "m")) for code in cases} == cases


async def test_concurrent_requests_share_one_connection(api: TestClient) -> None:
    """Many requests at once through the gateway all succeed over the pipelined client."""
    results = await asyncio.gather(*(api.get("/api/events", params={"limit": "1"}) for _ in range(100)))
    assert [r.status for r in results] == [200] * 100
