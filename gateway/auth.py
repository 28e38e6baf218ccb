"""Who is calling: the bearer token file, named tokens, or the admin's browser session.

The gateway keeps no auth state. It tells a credential's kind, refuses what is missing or
malformed, checks the CSRF token of cookie sessions, and sends the credential's digest with
the RPC call itself (`_auth`); xrayd resolves it on that call. So a check costs no extra
round trip, and a revoked token or a closed session fails on its very next request.

The token file (`--token-file`) is the one credential the gateway checks alone: it is its own
configuration, it has the admin scope, and its actor is `token:file`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from client.protocol import ACTOR, AUTH, credential_digest
from gateway import keys
from gateway.body import read_body
from gateway.errors import ApiError
from gateway.headers import request_id

SESSION_COOKIE = "xr_session"
CSRF_HEADER = "X-CSRF-Token"
FILE_ACTOR = "token:file"
TOKEN_PREFIX = "xrt_"  # noqa: S105 - the prefix of xrayd's named tokens, not a secret
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PUBLIC_PATHS = frozenset({"/api/ping", "/api/openapi.json", "/api/auth/login", "/api/auth/logout"})
_MAX_SECRET = 128


@dataclass(frozen=True)
class Credential:
    kind: str  # file, token or session
    secret: str

    def context(self, need: str) -> dict[str, Any]:
        """The reserved params that carry this credential to xrayd, needing scope `need`."""
        if self.kind == "file":
            return {ACTOR: FILE_ACTOR}
        return {AUTH: {self.kind: credential_digest(self.secret), "need": need}}


CREDENTIAL = web.RequestKey("credential", Credential)


def csrf_token(session: str) -> str:
    """The session's CSRF token: an HMAC keyed by the session secret, so it needs no storage
    and cannot be made without the HttpOnly cookie."""
    mac = hmac.new(session.encode(), b"xray-report csrf", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def credential_of(request: web.Request) -> Credential | None:
    """The request's credential: a bearer token first (it is never sent by a browser on its
    own), else the session cookie. None when there is none or it cannot be ours."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme:
        file_token = request.app[keys.TOKEN]
        if scheme.lower() != "bearer" or not token or len(token) > _MAX_SECRET:
            return None
        if file_token and hmac.compare_digest(token.encode(), file_token.encode()):
            return Credential("file", token)
        return Credential("token", token) if token.startswith(TOKEN_PREFIX) else None
    session = request.cookies.get(SESSION_COOKIE, "")
    return Credential("session", session) if 0 < len(session) <= _MAX_SECRET else None


def check_csrf(request: web.Request, session: str) -> None:
    given = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(given.encode(), csrf_token(session).encode()):
        raise ApiError(403, "csrf_failed", f"Send the session's CSRF token in {CSRF_HEADER}.")


@web.middleware
async def auth_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if request.path.startswith("/api/") and request.path not in PUBLIC_PATHS:
        credential = credential_of(request)
        if credential is None:
            raise ApiError(401, "unauthorized", "Send `Authorization: Bearer <token>`.")
        if credential.kind == "session" and request.method in MUTATING:
            check_csrf(request, credential.secret)
        request[CREDENTIAL] = credential
    return await handler(request)


def call_context(request: web.Request, need: str) -> dict[str, Any]:
    """The reserved params of an RPC call made for `request`: its credential and request id."""
    context = request[CREDENTIAL].context(need) if CREDENTIAL in request else {}
    rid = request_id(request)
    return {**context, "_rid": rid} if rid else context


def client_address(request: web.Request) -> str:
    """The address that logs in: behind a TLS-terminating proxy, the last X-Forwarded-For hop
    (the one the proxy added); otherwise the peer of the connection."""
    if request.app[keys.OPTIONS].behind_proxy:
        forwarded = request.headers.get("X-Forwarded-For", "").rsplit(",", 1)[-1].strip()
        if forwarded:
            return forwarded[:128]
    return request.remote or "unknown"


async def login(request: web.Request) -> web.Response:
    body = await read_body(request)
    password, username = body.get("password"), body.get("username", "admin")
    if not isinstance(password, str) or not isinstance(username, str):
        raise ApiError(400, "invalid_params", "Send a JSON body with a password (and optionally username).")
    params = {"password": password, "username": username, "address": client_address(request)}
    answer = await request.app[keys.CLIENT].call("auth.login", params | call_context(request, "read"))
    response = web.json_response({"ok": True, "csrf_token": csrf_token(answer["session"])})
    response.set_cookie(
        SESSION_COOKIE,
        answer["session"],
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.app[keys.OPTIONS].https,
    )
    return response


async def logout(request: web.Request) -> web.Response:
    """Close the cookie's session (if any) and clear the cookie; idempotent."""
    credential = credential_of(request)
    if credential is not None and credential.kind == "session":
        check_csrf(request, credential.secret)
        params = {"session": credential_digest(credential.secret)}
        await request.app[keys.CLIENT].call("auth.logout", params | call_context(request, "read"))
    response = web.json_response({"ok": True})
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


async def me(request: web.Request) -> web.Response:
    credential = request[CREDENTIAL]
    if credential.kind == "file":
        return web.json_response({"ok": True, "actor": FILE_ACTOR, "scope": "admin"})
    who = await request.app[keys.CLIENT].call("auth.whoami", call_context(request, "read"))
    body = {"ok": True, "actor": who["actor"], "scope": who["scope"]}
    if credential.kind == "session":
        body["csrf_token"] = csrf_token(credential.secret)
    return web.json_response(body)


def add_auth_routes(app: web.Application) -> None:
    app.router.add_post("/api/auth/login", login)
    app.router.add_post("/api/auth/logout", logout)
    app.router.add_get("/api/auth/me", me)
