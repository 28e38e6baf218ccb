"""The gateway application: `create_app()` builds it from the route table."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from client import wirejson
from client.aio import XraydClient
from client.protocol import CallTimeout, DaemonUnavailable, RpcError
from gateway import keys
from gateway.auth import add_auth_routes, auth_middleware, call_context
from gateway.body import read_body
from gateway.console import add_console
from gateway.errors import ApiError, error_middleware
from gateway.headers import request_id_middleware, security_headers
from gateway.keys import Options
from gateway.openapi import add_openapi
from gateway.routes import ROUTES, Route

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024


def json_ok(body: Any) -> web.Response:
    return web.Response(body=wirejson.dumps(body), content_type="application/json")


async def params_for(route: Route, request: web.Request) -> dict[str, Any]:
    """Coerce and check the query, body and path parameters a route declares."""
    if route.spread_body:
        body = await read_body(request)
        if any(key.startswith("_") for key in body):  # reserved for the call's context
            raise ApiError(400, "invalid_params", "Body keys may not start with an underscore.")
        return body
    given: dict[str, Any] = dict(request.query)
    if request.method in ("POST", "PUT", "DELETE"):
        given.update(await read_body(request))
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
        params.update(call_context(request, route.scope(params)))
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
        await request.app[keys.CLIENT].call("system.ping", call_context(request, "read"), timeout=2.0)
        daemon = {"ok": True}
    except (DaemonUnavailable, CallTimeout, RpcError) as exc:
        daemon["message"] = str(exc)
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return json_ok({"ok": True, "message": "pong", "ts": now, "daemon": daemon})


async def not_found(request: web.Request) -> web.Response:
    raise ApiError(404, "not_found", f"There is no endpoint {request.path}.")


def create_app(
    socket_path: str,
    token: str | None,
    *,
    client: XraydClient | None = None,
    options: Options | None = None,
) -> web.Application:
    """Build the gateway for the xrayd socket at `socket_path`; `token` (the token file's
    content) is an admin credential besides the named tokens and sessions xrayd keeps."""
    if token is not None and not token:
        raise ValueError("the API token is empty")
    app = web.Application(
        client_max_size=MAX_BODY, middlewares=[request_id_middleware, error_middleware, auth_middleware]
    )
    app[keys.TOKEN] = token or ""
    app[keys.OPTIONS] = options or Options()
    app.on_response_prepare.append(security_headers(app[keys.OPTIONS].https))

    async def xrayd_client(app: web.Application) -> AsyncIterator[None]:
        app[keys.CLIENT] = client or XraydClient(socket_path)
        yield
        await app[keys.CLIENT].close()

    app.cleanup_ctx.append(xrayd_client)
    app.router.add_get("/api/ping", ping)
    add_auth_routes(app)
    add_openapi(app)
    for route in ROUTES:
        app.router.add_route(route.method, route.path, _handler(route))
    app.router.add_route("*", "/api/{tail:.*}", not_found)
    add_console(app)
    return app
