"""Domain errors: each class pins an HTTP-like `CODE` and a stable machine `ERROR`.

xrayd sends them as JSON-RPC errors `{code: CODE, message, data: {error: ERROR, ...}}`; the
gateway answers with status CODE. Nothing else about an exception ever leaves the daemon.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """An error a caller can act on; its message is a sentence for a person."""

    CODE = 500
    ERROR = "internal_error"

    def __init__(self, message: str, *, error: str | None = None, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        self.error = error or self.ERROR
        self.data = data

    def to_rpc(self) -> dict[str, Any]:
        return {"code": self.CODE, "message": self.message, "data": {"error": self.error, **self.data}}


class BadRequest(DomainError):
    CODE = 400
    ERROR = "bad_request"


class InvalidParams(DomainError):
    """A parameter of the right name but a wrong type or value; `param` names it."""

    CODE = -32602
    ERROR = "invalid_params"

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message, param=param)


class Unauthorized(DomainError):
    """No valid credential: an unknown or revoked token, an expired session, a wrong password."""

    CODE = 401
    ERROR = "unauthorized"


class Forbidden(DomainError):
    """A valid credential whose scope does not cover the call."""

    CODE = 403
    ERROR = "forbidden"


class NotFound(DomainError):
    CODE = 404
    ERROR = "not_found"


class Conflict(DomainError):
    CODE = 409
    ERROR = "conflict"


class TooLarge(DomainError):
    CODE = 413
    ERROR = "too_large"


class Unprocessable(DomainError):
    CODE = 422
    ERROR = "unprocessable"


class TooManyRequests(DomainError):
    CODE = 429
    ERROR = "rate_limited"


class Internal(DomainError):
    CODE = 500
    ERROR = "internal_error"


class NotBuilt(DomainError):
    """The method needs a module that is not built into this xrayd (the gateway's 501)."""

    CODE = 501
    ERROR = "not_implemented"


class Unavailable(DomainError):
    CODE = 503
    ERROR = "unavailable"


class Timeout(DomainError):
    CODE = 504
    ERROR = "timeout"


# JSON-RPC's own codes, with the machine code and the sentence we send for each.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

STANDARD_ERRORS: dict[int, tuple[str, str]] = {
    PARSE_ERROR: ("parse_error", "The request is not valid JSON."),
    INVALID_REQUEST: ("invalid_request", "The request is not a valid JSON-RPC 2.0 request."),
    METHOD_NOT_FOUND: ("method_not_found", "There is no such method."),
    INVALID_PARAMS: ("invalid_params", "The parameters do not fit the method."),
    INTERNAL_ERROR: ("internal_error", "The daemon failed; the details are in its log."),
}
