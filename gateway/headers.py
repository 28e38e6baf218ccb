"""What every answer carries: security headers and the request id.

The request id is made here, sent back in `X-Request-Id`, written in the access log and
passed to xrayd with the call (`_rid`), so one id finds a request in both processes' logs.
Headers a handler set itself (the console's own CSP) are kept.
"""

from __future__ import annotations

import contextvars
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

REQUEST_ID_HEADER = "X-Request-Id"
RID = web.RequestKey("request_id", str)

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
HSTS = "max-age=31536000"

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("gateway_request_id", default=None)


def request_id(request: web.Request) -> str | None:
    return request.get(RID)


def log_context() -> dict[str, Any]:
    """Log fields of the request being served (for the JSON log formatter)."""
    return {"request_id": _current.get()}


@web.middleware
async def request_id_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    rid = secrets.token_hex(8)
    request[RID] = rid
    token = _current.set(rid)
    try:
        return await handler(request)
    finally:
        _current.reset(token)


def security_headers(https: bool) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """An `on_response_prepare` hook: every answer, errors and 404s included, gets the headers."""
    extra = {"Strict-Transport-Security": HSTS} if https else {}

    async def add(request: web.Request, response: web.StreamResponse) -> None:
        for name, value in (SECURITY_HEADERS | extra).items():
            response.headers.setdefault(name, value)
        if request.path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
        rid = request.get(RID)
        if rid:
            response.headers[REQUEST_ID_HEADER] = rid

    return add
