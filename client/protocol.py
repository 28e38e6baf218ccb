"""The wire protocol, once: JSON-RPC 2.0 requests and responses, one JSON object per line."""

from __future__ import annotations

import hashlib
from typing import Any

from client import wirejson

MAX_RESPONSE_LINE = 256 * 1024 * 1024

# Named params that carry the call's context, not the method's arguments. xrayd's dispatcher
# strips them before the method runs: `_actor` names who asked (for events), `_auth` holds a
# credential digest and the scope the call needs, `_rid` is the request id both sides log.
ACTOR, AUTH, REQUEST_ID = "_actor", "_auth", "_rid"
RESERVED = (ACTOR, AUTH, REQUEST_ID)


def credential_digest(secret: str) -> str:
    """How a token or session crosses the socket and is stored: its SHA-256, never itself.
    A plain hash is enough for 256-bit random secrets; there is nothing to brute-force."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class RpcError(Exception):
    """An error answer of xrayd: `code` (HTTP-like or JSON-RPC), `error` (machine), `message`."""

    def __init__(self, code: int, error: str, message: str, data: dict[str, Any] | None = None):
        super().__init__(f"{error}: {message}")
        self.code = code
        self.error = error
        self.message = message
        self.data = data or {}


class DaemonUnavailable(ConnectionError):
    """xrayd could not be reached, or the connection dropped before the answer came."""


class CallTimeout(TimeoutError):
    """xrayd took longer than the call's timeout to answer."""


def encode_request(method: str, params: dict[str, Any] | None, id: int | str | None) -> bytes:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params:
        msg["params"] = params
    if id is not None:
        msg["id"] = id
    return wirejson.dumps(msg) + b"\n"


def result_of(response: dict[str, Any]) -> Any:
    """The result of a decoded response, or the RpcError it carries."""
    if "error" in response:
        err = response["error"] or {}
        data = err.get("data") if isinstance(err.get("data"), dict) else {}
        raise RpcError(
            int(err.get("code", -32603)),
            str(data.get("error", "rpc_error")),
            str(err.get("message", "")),
            data,
        )
    return response.get("result")
