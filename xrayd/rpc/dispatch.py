"""Dispatch one JSON-RPC 2.0 message (a request or a batch) to our methods.

jsonrpcserver parses, validates, binds named params and runs batches concurrently; this
module owns the rest: an explicit method table per server, our error table, and the rule
that no exception text ever reaches a client.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from jsonrpcserver import Error, Success, async_dispatch_to_response
from jsonrpcserver.response import ErrorResponse, SuccessResponse
from oslash.either import Left

from xrayd.errors import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    STANDARD_ERRORS,
    DomainError,
)

log = logging.getLogger(__name__)

Method = Callable[..., Awaitable[Any]]


def error_object(code: int, detail: Any = None) -> dict[str, Any]:
    """A JSON-RPC error object for a standard code, in our shape."""
    machine, sentence = STANDARD_ERRORS.get(code, STANDARD_ERRORS[INTERNAL_ERROR])
    data: dict[str, Any] = {"error": machine}
    if detail is not None and code == INVALID_PARAMS:
        data["detail"] = str(detail)[:500]
    return {"code": code, "message": sentence, "data": data}


def _wrap(name: str, fn: Method) -> Method:
    """Turn domain errors into ours and anything unexpected into a generic internal error."""

    @functools.wraps(fn)
    async def call(*args: Any, **kwargs: Any) -> Any:
        if args:  # params are always named: an object, never a list
            err = error_object(INVALID_PARAMS, "params must be an object of named parameters")
            return Error(err["code"], err["message"], err["data"])
        try:
            return Success(await fn(**kwargs))
        except DomainError as exc:
            err = exc.to_rpc()
            return Error(err["code"], err["message"], err["data"])
        except Exception:
            log.exception("method %s failed", name)
            return Error(INTERNAL_ERROR, STANDARD_ERRORS[INTERNAL_ERROR][1], {"error": "internal_error"})

    return call


def _check_one(request: Any) -> None:
    if not (
        isinstance(request, dict)
        and request.get("jsonrpc") == "2.0"
        and isinstance(request.get("method"), str)
        and isinstance(request.get("params", {}), dict | list)
        and (not isinstance(request.get("id"), bool))
        and isinstance(request.get("id"), str | int | float | type(None))
        and request.keys() <= {"jsonrpc", "method", "params", "id"}
    ):
        raise ValueError("not a JSON-RPC 2.0 request")


def validate_request(message: Any) -> Any:
    """The JSON-RPC 2.0 request rules, checked by hand: the library's jsonschema check costs
    more than the rest of a call put together."""
    for request in message if isinstance(message, list) and message else [message]:
        _check_one(request)
    return message


def _serialize(response: Any) -> dict[str, Any]:
    if isinstance(response, Left):
        err: ErrorResponse = response._error
        if isinstance(err.data, dict) and "error" in err.data:  # built by _wrap
            body = {"code": err.code, "message": err.message, "data": err.data}
        else:
            body = error_object(err.code, err.data)
        return {"jsonrpc": "2.0", "error": body, "id": err.id}
    ok: SuccessResponse = response._value
    return {"jsonrpc": "2.0", "result": ok.result, "id": ok.id}


class Dispatcher:
    """An explicit method table and the one entry point the socket server calls."""

    def __init__(self, methods: Mapping[str, Method]) -> None:
        self.methods = {name: _wrap(name, fn) for name, fn in methods.items()}

    async def handle(self, message: str) -> str | None:
        """Answer one line: a response line, or None when it held only notifications."""
        response = await async_dispatch_to_response(
            message, self.methods, validator=validate_request, post_process=_serialize
        )
        if response is None or response == []:
            return None
        return json.dumps(response, ensure_ascii=False, separators=(",", ":"), default=str)
