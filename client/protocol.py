"""The wire protocol, once: JSON-RPC 2.0 requests and responses, one JSON object per line."""

from __future__ import annotations

import json
from typing import Any

MAX_RESPONSE_LINE = 256 * 1024 * 1024


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
    return json.dumps(msg, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


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
