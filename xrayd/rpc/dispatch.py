"""Dispatch one JSON-RPC 2.0 message (a request or a batch) to our methods.

jsonrpcserver parses, validates, binds named params and runs batches concurrently; this
module owns the rest: an explicit method table per server, our error table, the rule that
no exception text ever reaches a client, and the call's context.

The context travels in reserved params (`client.protocol.RESERVED`): the dispatcher strips
them, so method signatures stay clean, and exposes who asked through `current_caller()`.
The actor is, in order: what the `authenticate` hook makes of `_auth` (a credential the
gateway forwards, checked here on every call so a revoked token fails at once), the `_actor`
a socket peer names (peers are trusted: root or the socket group), or the peer itself.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from jsonrpcserver import Error, Success, async_dispatch_to_response
from jsonrpcserver.response import ErrorResponse, SuccessResponse
from oslash.either import Left

from client import wirejson
from client.protocol import ACTOR, AUTH, REQUEST_ID, RESERVED
from xrayd import validate
from xrayd.errors import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    STANDARD_ERRORS,
    DomainError,
    InvalidParams,
)

log = logging.getLogger(__name__)

Method = Callable[..., Awaitable[Any]]
SCOPES = ("read", "admin")
_RID = re.compile(r"[A-Za-z0-9._-]{1,64}")


@dataclass(frozen=True)
class Caller:
    """Who made the call being served, with which scope, under which request id."""

    actor: str
    scope: str = "admin"
    request_id: str | None = None
    uid: int | None = None  # the socket peer's user id (None when not known)


# (actor, scope) for the `_auth` param; raises Unauthorized or Forbidden.
Authenticator = Callable[[Any], tuple[str, str]]

_caller: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("xrayd_caller", default=None)
_origin: contextvars.ContextVar[tuple[str, int | None]] = contextvars.ContextVar(
    "xrayd_origin", default=("local", None)
)


def current_caller() -> Caller | None:
    """The caller of the RPC being served (None outside a call, e.g. in background tasks)."""
    return _caller.get()


def log_context() -> dict[str, Any]:
    """Fields every log line written during a call carries (for the JSON log formatter)."""
    caller = _caller.get()
    return {} if caller is None else {"request_id": caller.request_id, "actor": caller.actor}


def _caller_of(reserved: dict[str, Any], authenticate: Authenticator | None) -> Caller:
    rid = reserved.get(REQUEST_ID)
    if rid is not None and not (isinstance(rid, str) and _RID.fullmatch(rid)):
        raise InvalidParams(REQUEST_ID, f"{REQUEST_ID} must be 1 to 64 letters, digits, dots, dashes.")
    origin, uid = _origin.get()
    if AUTH in reserved:
        if authenticate is None:
            raise InvalidParams(AUTH, "This daemon checks no credentials.")
        actor, scope = authenticate(reserved[AUTH])
        return Caller(actor, scope, rid, uid)
    if ACTOR in reserved:
        return Caller(validate.text(ACTOR, reserved[ACTOR], max_len=128), "admin", rid, uid)
    return Caller(origin, "admin", rid, uid)


def error_object(code: int, detail: Any = None) -> dict[str, Any]:
    """A JSON-RPC error object for a standard code, in our shape."""
    machine, sentence = STANDARD_ERRORS.get(code, STANDARD_ERRORS[INTERNAL_ERROR])
    data: dict[str, Any] = {"error": machine}
    if detail is not None and code == INVALID_PARAMS:
        data["detail"] = str(detail)[:500]
    return {"code": code, "message": sentence, "data": data}


def _with_reserved(fn: Method) -> inspect.Signature:
    """`fn`'s signature plus the reserved params, so jsonrpcserver's binding check accepts them."""
    sig = inspect.signature(fn)
    params = [p for p in sig.parameters.values() if p.kind is not p.VAR_KEYWORD]
    extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None) for name in RESERVED]
    var_kw = [p for p in sig.parameters.values() if p.kind is p.VAR_KEYWORD]
    return sig.replace(parameters=[*params, *extra, *var_kw])


def _wrap(name: str, fn: Method, authenticate: Authenticator | None) -> Method:
    """Strip and check the call's context, then run `fn`: domain errors become ours, anything
    unexpected a generic internal error. Every call is logged once, with its request id."""

    async def call(*args: Any, **kwargs: Any) -> Any:
        if args:  # params are always named: an object, never a list
            err = error_object(INVALID_PARAMS, "params must be an object of named parameters")
            return Error(err["code"], err["message"], err["data"])
        reserved = {key: kwargs.pop(key) for key in RESERVED if key in kwargs}
        started = time.perf_counter()
        token = None
        outcome = "ok"
        try:
            token = _caller.set(_caller_of(reserved, authenticate))
            return Success(await fn(**kwargs))
        except DomainError as exc:
            err = exc.to_rpc()
            outcome = exc.error
            return Error(err["code"], err["message"], err["data"])
        except Exception:
            outcome = "internal_error"
            log.exception("method %s failed", name)
            return Error(INTERNAL_ERROR, STANDARD_ERRORS[INTERNAL_ERROR][1], {"error": "internal_error"})
        finally:
            ms = round((time.perf_counter() - started) * 1000, 3)
            log.info("call %s: %s", name, outcome, extra={"method": name, "outcome": outcome, "ms": ms})
            if token is not None:
                _caller.reset(token)

    call.__name__ = getattr(fn, "__name__", name)
    call.__signature__ = _with_reserved(fn)  # type: ignore[attr-defined]
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

    def __init__(self, methods: Mapping[str, Method], *, authenticate: Authenticator | None = None) -> None:
        self.methods = {name: _wrap(name, fn, authenticate) for name, fn in methods.items()}

    async def handle(self, message: str, *, origin: str = "local", uid: int | None = None) -> bytes | None:
        """Answer one line: a response line, or None when it held only notifications.
        `origin` names the socket peer (the actor of calls that name none), `uid` is its user."""
        _origin.set((origin, uid))
        response = await async_dispatch_to_response(
            message,
            self.methods,
            deserializer=wirejson.loads,
            validator=validate_request,
            post_process=_serialize,
        )
        if response is None or response == []:
            return None
        return wirejson.dumps(response)
