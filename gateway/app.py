"""The gateway application: `create_app()` builds it from the route table."""

from __future__ import annotations

import datetime as dt
import hmac
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

from aiohttp import web

from client.aio import XraydClient
from client.protocol import CallTimeout, DaemonUnavailable, RpcError
from gateway import keys
from gateway.errors import ApiError, error_middleware
from gateway.routes import ROUTES, Route

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
PUBLIC_PATHS = frozenset({"/api/ping"})

_dumps = partial(json.dumps, ensure_ascii=False, separators=(",", ":"))


def json_ok(body: Any) -> web.Response:
    return web.json_response(body, dumps=_dumps)


@web.middleware
async def auth_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if request.path.startswith("/api/") and request.path not in PUBLIC_PATHS:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        expected = request.app[keys.TOKEN]
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected.encode()):
            raise ApiError(401, "unauthorized", "Send `Authorization: Bearer <token>`.")
    return await handler(request)


async def _read_body(request: web.Request) -> dict[str, Any]:
    if not request.body_exists:
        return {}
    raw = await request.read()  # aiohttp enforces client_max_size (413)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "The request body must be a JSON object.")
    return body


async def params_for(route: Route, request: web.Request) -> dict[str, Any]:
    """Coerce and check the query, body and path parameters a route declares."""
    if route.spread_body:
        return await _read_body(request)
    given: dict[str, Any] = dict(request.query)
    if request.method in ("POST", "PUT", "DELETE"):
        given.update(await _read_body(request))
    for url_name, param in route.path_params.items():
        given[param] = request.match_info[url_name]
    params = {}
    for name, spec in route.params.items():
        value = given.get(name)
        if value is None or (value == "" and spec.kind != "str"):
            if spec.required:
                raise ApiError(400, "invalid_params", f"{name} is required.")
            continue
        params[name] = spec.coerce(name, value)
    return params


def _handler(route: Route) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        params = await params_for(route, request)
        result = await request.app[keys.CLIENT].call(route.rpc, params, timeout=route.timeout)
        if route.raw is not None and isinstance(result, dict) and isinstance(result.get(route.raw.key), str):
            return web.Response(text=result[route.raw.key], content_type=route.raw.media_type)
        return json_ok(result)

    handle.__name__ = route.rpc.replace(".", "_")
    return handle


async def ping(request: web.Request) -> web.Response:
    """Answers while xrayd is down too; says whether xrayd is reachable."""
    daemon: dict[str, Any] = {"ok": False}
    try:
        await request.app[keys.CLIENT].call("system.ping", timeout=2.0)
        daemon = {"ok": True}
    except (DaemonUnavailable, CallTimeout, RpcError) as exc:
        daemon["message"] = str(exc)
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return json_ok({"ok": True, "message": "pong", "ts": now, "daemon": daemon})


async def not_found(request: web.Request) -> web.Response:
    raise ApiError(404, "not_found", f"There is no endpoint {request.path}.")


def create_app(socket_path: str, token: str, *, client: XraydClient | None = None) -> web.Application:
    """Build the gateway for the xrayd socket at `socket_path`, guarded by `token`."""
    if not token:
        raise ValueError("the API token is empty")
    app = web.Application(client_max_size=MAX_BODY, middlewares=[error_middleware, auth_middleware])
    app[keys.TOKEN] = token

    async def xrayd_client(app: web.Application) -> AsyncIterator[None]:
        app[keys.CLIENT] = client or XraydClient(socket_path)
        yield
        await app[keys.CLIENT].close()

    app.cleanup_ctx.append(xrayd_client)
    app.router.add_get("/api/ping", ping)
    for route in ROUTES:
        app.router.add_route(route.method, route.path, _handler(route))
    app.router.add_route("*", "/api/{tail:.*}", not_found)
    return app
