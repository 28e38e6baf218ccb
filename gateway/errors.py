"""One error middleware: every failure becomes `{"ok": false, "error", "message"}`.

Handlers raise; they never build error bodies by hand. No traceback text is ever sent.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from client.protocol import CallTimeout, DaemonUnavailable, RpcError
from gateway.params import ParamError

log = logging.getLogger(__name__)

_RPC_STANDARD = {-32700: 400, -32600: 400, -32602: 400, -32601: 501, -32603: 500}
_KNOWN_STATUS = {400, 401, 403, 404, 405, 409, 413, 422, 429, 500, 501, 503, 504}


class ApiError(Exception):
    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


def error_response(status: int, error: str, message: str) -> web.Response:
    return web.json_response({"ok": False, "error": error, "message": message}, status=status)


def status_of(exc: RpcError) -> int:
    if exc.code in _RPC_STANDARD:
        return _RPC_STANDARD[exc.code]
    return exc.code if exc.code in _KNOWN_STATUS else 500


def _from_http(exc: web.HTTPException) -> web.Response:
    names = {
        404: ("not_found", "There is no such endpoint."),
        405: ("method_not_allowed", "This endpoint does not take that HTTP method."),
        413: ("too_large", "The request body is over the 1 MiB limit."),
    }
    error, message = names.get(exc.status, ("http_error", exc.reason))
    return error_response(exc.status, error, message)


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.error, exc.message)
    except ParamError as exc:
        return error_response(400, "invalid_params", exc.message)
    except RpcError as exc:
        status = status_of(exc)
        if exc.code == -32601:
            return error_response(
                501, "not_implemented", "This endpoint's module is not built into xrayd yet."
            )
        return error_response(status, exc.error, exc.message)
    except DaemonUnavailable:
        return error_response(
            503, "daemon_unavailable", "xrayd is not reachable; it may be restarting. Try again shortly."
        )
    except CallTimeout:
        return error_response(504, "daemon_timeout", "xrayd did not answer in time.")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _from_http(exc)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "The gateway failed; the details are in its log.")
