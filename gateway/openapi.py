"""The OpenAPI 3.1 document of the REST API, derived from the route table, at /api/openapi.json.

Nothing here is written twice: every RPC endpoint's path, parameters, scope and limits come
from `gateway.routes`; only the gateway's own endpoints (ping, auth, this document) are
described by hand below. The document is built once per app and served from memory.
"""

from __future__ import annotations

import json
from importlib.metadata import version
from typing import Any

from aiohttp import web

from client.protocol import RESERVED
from gateway.auth import CSRF_HEADER, SESSION_COOKIE
from gateway.params import Param
from gateway.routes import ROUTES, Route

OPENAPI_PATH = "/api/openapi.json"
_ERROR_STATUSES = {
    400: "A parameter or the body is wrong (the message names it)",
    401: "No valid credential",
    403: "The credential's scope does not cover this call, or the CSRF token is missing",
    404: "No such thing (user, backup, date)",
    409: "The change conflicts with the current state",
    413: "The body is over 1 MiB",
    422: "The change is well-formed but cannot be applied",
    429: "Too many failed logins from this address",
    500: "The gateway or xrayd failed; the details are in their logs",
    501: "This endpoint's module is not built into xrayd yet",
    503: "xrayd is not reachable (it may be restarting)",
    504: "xrayd did not answer in time",
}
_RPC_ERRORS = (400, 401, 403, 404, 409, 422, 500, 501, 503, 504)
_UPSTREAM = (500, 503, 504)
_PROTECTED = [{"bearer": []}, {"session": []}]
_CSRF_PARAM = {
    "name": CSRF_HEADER,
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "The session's CSRF token: needed with a session cookie, not with a bearer token",
}


def param_schema(param: Param) -> dict[str, Any]:
    """The JSON Schema of one declared parameter, as the gateway checks it."""
    if param.kind in ("int", "float"):
        return {
            "type": "integer" if param.kind == "int" else "number",
            "minimum": param.lo,
            "maximum": param.hi,
        }
    if param.kind == "bool":
        return {"type": "boolean"}
    if param.kind == "enum":
        return {"type": "string", "enum": list(param.choices)}
    if param.kind == "date":
        return {"type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
    return {"type": "string", "maxLength": param.max_len}


def _described(schema: dict[str, Any], param: Param) -> dict[str, Any]:
    return {**schema, "description": param.doc} if param.doc else schema


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _responses(ok: dict[str, Any], statuses: tuple[int, ...]) -> dict[str, Any]:
    answers = {"200": _json(ok, "Success")}
    for status in sorted(statuses):
        answers[str(status)] = {**_json({"$ref": "#/components/schemas/Error"}, _ERROR_STATUSES[status])}
    return answers


def _operation(route: Route) -> dict[str, Any]:
    from_path = set(route.path_params.values())
    parameters = [
        {
            "name": url,
            "in": "path",
            "required": True,
            "schema": {**param_schema(route.params[rpc]), "minLength": 1},
        }
        for url, rpc in route.path_params.items()
    ]
    own = {name: p for name, p in route.params.items() if name not in from_path}
    statuses = set(_RPC_ERRORS)
    op: dict[str, Any] = {
        "operationId": route.rpc.replace(".", "_"),
        "summary": route.summary,
        "description": f"Calls xrayd's `{route.rpc}`. Needs the `{route.scope({})}` scope"
        + (f" (`admin` when `{route.admin_if}` is true)." if route.admin_if else "."),
        "tags": [route.rpc.split(".")[0]],
        "security": _PROTECTED,
        "x-rpc-method": route.rpc,
        "x-scope": route.scope({}),
    }
    if route.method == "GET":
        parameters += [
            {"name": n, "in": "query", "required": p.required, "schema": _described(param_schema(p), p)}
            for n, p in own.items()
        ]
    else:
        parameters.append(_CSRF_PARAM)
        statuses.add(413)
        if route.spread_body:
            body = {
                "type": "object",
                "propertyNames": {"pattern": "^[^_]"},
                "additionalProperties": {"type": "object"},
            }
        else:
            body = {
                "type": "object",
                "properties": {n: _described(param_schema(p), p) for n, p in own.items()},
                "required": [n for n, p in own.items() if p.required],
            }
        if body.get("properties") != {}:
            op["requestBody"] = {"required": False, "content": {"application/json": {"schema": body}}}
    op["parameters"] = parameters
    op["responses"] = _responses(route.returns or {"type": "object"}, tuple(statuses))
    return op


_PING = {
    "type": "object",
    "required": ["ok", "message", "ts", "daemon"],
    "properties": {
        "ok": {"const": True},
        "message": {"const": "pong"},
        "ts": {"type": "string"},
        "daemon": {"type": "object", "required": ["ok"], "properties": {"ok": {"type": "boolean"}}},
    },
}
_OK = {"type": "object", "required": ["ok"], "properties": {"ok": {"const": True}}}
_LOGIN_BODY = {
    "type": "object",
    "required": ["password"],
    "properties": {
        "password": {"type": "string", "minLength": 1, "maxLength": 1024},
        "username": {"type": "string", "maxLength": 64, "default": "admin"},
    },
}
_LOGIN_OK = {
    "type": "object",
    "required": ["ok", "csrf_token"],
    "properties": {"ok": {"const": True}, "csrf_token": {"type": "string"}},
}
_ME = {
    "type": "object",
    "required": ["ok", "actor", "scope"],
    "properties": {
        "ok": {"const": True},
        "actor": {"type": "string", "description": "`admin` or `token:NAME`"},
        "scope": {"enum": ["read", "admin"]},
        "csrf_token": {"type": "string", "description": "with a session cookie only"},
    },
}

GATEWAY_OPERATIONS: dict[str, dict[str, dict[str, Any]]] = {
    "/api/ping": {
        "get": {
            "operationId": "ping",
            "summary": "Whether the gateway and xrayd answer (no credential needed)",
            "tags": ["gateway"],
            "security": [],
            "responses": {"200": _json(_PING, "The gateway answers; `daemon.ok` says whether xrayd does")},
        }
    },
    OPENAPI_PATH: {
        "get": {
            "operationId": "openapi",
            "summary": "This document",
            "tags": ["gateway"],
            "security": [],
            "responses": {"200": _json({"type": "object"}, "The OpenAPI document")},
        }
    },
    "/api/auth/login": {
        "post": {
            "operationId": "auth_login",
            "summary": f"Log the admin in: sets the {SESSION_COOKIE} cookie, returns the CSRF token",
            "tags": ["auth"],
            "security": [],
            "requestBody": {"required": True, "content": {"application/json": {"schema": _LOGIN_BODY}}},
            "responses": _responses(_LOGIN_OK, (400, 401, 413, 429, *_UPSTREAM)),
        }
    },
    "/api/auth/logout": {
        "post": {
            "operationId": "auth_logout",
            "summary": "Close the session and clear its cookie (idempotent)",
            "tags": ["auth"],
            "security": [],
            "parameters": [_CSRF_PARAM],
            "responses": _responses(_OK, (403, *_UPSTREAM)),
        }
    },
    "/api/auth/me": {
        "get": {
            "operationId": "auth_me",
            "summary": "Who the credential is, its scope, and the session's CSRF token",
            "tags": ["auth"],
            "security": _PROTECTED,
            "responses": _responses(_ME, (401, *_UPSTREAM)),
        }
    },
}


def document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {path: dict(ops) for path, ops in GATEWAY_OPERATIONS.items()}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "xray-report",
            "version": version("xray-report"),
            "description": "The admin API of one Xray-core VLESS + REALITY server. Failures are "
            '`{"ok": false, "error": CODE, "message": SENTENCE}`; a body key may not start with '
            f"an underscore (reserved: {', '.join(RESERVED)}).",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a named token or the token file",
                },
                "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE},
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["ok", "error", "message"],
                    "properties": {
                        "ok": {"const": False},
                        "error": {"type": "string"},
                        "message": {"type": "string"},
                    },
                }
            },
        },
    }


def add_openapi(app: web.Application) -> None:
    body = json.dumps(document(), ensure_ascii=False, separators=(",", ":"))

    async def serve(request: web.Request) -> web.Response:
        return web.Response(text=body, content_type="application/json")

    app.router.add_get(OPENAPI_PATH, serve)
