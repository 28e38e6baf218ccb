"""auth.*, tokens.*, admin.*: the admin login, browser sessions and named API tokens.

The gateway calls `auth.login`, `auth.logout` and `auth.whoami`, and forwards every other
request's credential digest in `_auth`, which `authenticate` below resolves on each call.
`tokens.*` and `admin.set_password` are for the server's operator: they answer only a root
peer of the socket, never a call forwarded by the gateway, so a compromised gateway cannot
mint itself a lasting credential.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from client.protocol import AUTH, credential_digest
from xrayd import validate
from xrayd.auth.passwords import hash_password, verify_password
from xrayd.auth.ratelimit import FailureLimiter
from xrayd.auth.store import (
    MAX_TOKENS,
    RESERVED_NAMES,
    SCOPES,
    TOKEN_NAME,
    TOKEN_PREFIX,
    AuthStore,
    Sessions,
    Token,
    is_digest,
    new_secret,
)
from xrayd.errors import Conflict, Forbidden, InvalidParams, NotFound, TooManyRequests, Unauthorized
from xrayd.rpc.dispatch import current_caller

if TYPE_CHECKING:
    from xrayd.daemon import Daemon

ADMIN = "admin"
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
HASHING_SLOTS = 2  # scrypt takes 32 MiB and ~0.1 s each: bound the memory a login flood costs


def _iso(unix: float) -> str:
    return dt.datetime.fromtimestamp(unix, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _password(name: str, value: Any, *, min_len: int = 1) -> str:
    if not isinstance(value, str) or not min_len <= len(value) <= MAX_PASSWORD:
        raise InvalidParams(name, f"{name} must be a string of {min_len} to {MAX_PASSWORD} characters.")
    return value


def _operator_only() -> None:
    """Credential management: a root peer calling for itself, not a forwarded request."""
    caller = current_caller()
    if caller is None or caller.uid not in (0, os.geteuid()) or not caller.actor.startswith("local:"):
        raise Forbidden(
            "Tokens and the admin password are managed on the server with xrayctl, as root.",
            error="operator_only",
        )


def register(d: Daemon) -> None:
    store = AuthStore(d.config.data_dir / "auth.json")
    sessions = Sessions()
    limiter = FailureLimiter()
    lock = asyncio.Lock()
    hashing = asyncio.Semaphore(HASHING_SLOTS)

    def authenticate(auth: Any) -> tuple[str, str]:
        """(actor, scope) of a forwarded credential `{token|session: digest, need: scope}`."""
        kind = next((k for k in ("token", "session") if isinstance(auth, dict) and k in auth), None)
        if kind is None or not is_digest(auth[kind]) or auth.get("need", "admin") not in SCOPES:
            raise InvalidParams(AUTH, f"{AUTH} must be {{token|session: SHA-256 hex, need: read|admin}}.")
        if kind == "token":
            token = store.by_digest(auth[kind])
            if token is None:
                raise Unauthorized("The token is unknown or has been revoked.")
            actor, scope = f"token:{token.name}", token.scope
        else:
            if not sessions.valid(auth[kind]):
                raise Unauthorized("The session is over: log in again.")
            actor, scope = ADMIN, "admin"
        if auth.get("need", "admin") == "admin" and scope != "admin":
            raise Forbidden("This token may only read; the request changes something.")
        return actor, scope

    async def load() -> AsyncIterator[None]:
        await asyncio.to_thread(store.load)
        yield

    async def login(password: str, address: str, username: str = ADMIN) -> dict[str, Any]:
        _password("password", password)
        validate.text("address", address, max_len=128)
        validate.text("username", username, max_len=64)
        limit = d.settings.get("auth", "login_max_failures")
        window = d.settings.get("auth", "login_window_seconds")
        async with hashing:  # checked inside, so parallel guesses cannot all pass the check
            wait = limiter.retry_after(address, limit=limit, window=window)
            if wait:
                raise TooManyRequests(
                    f"Too many failed logins from {address}: try again in {math.ceil(wait)} seconds.",
                    retry_after=math.ceil(wait),
                )
            stored = store.password
            ok = username == ADMIN and stored is not None
            ok = ok and await asyncio.to_thread(verify_password, password, stored or "")
            if not ok:
                blocked = limiter.fail(address, limit=limit, window=window)
        who = {"address": address, "username": username, "actor": "anonymous"}
        if not ok:
            await d.event(
                "login_failed",
                f"Failed admin login from {address}",
                severity="warning",
                service="auth",
                data=who,
            )
            if blocked:
                await d.event(
                    "login_rate_limited",
                    f"{limit} failed logins from {address} within {window} s: further tries refused for now",
                    severity="warning",
                    service="auth",
                    data=who,
                )
            if stored is None:
                raise Unauthorized(
                    "No admin password is set: run `xrayctl admin set-password` on the server.",
                    error="invalid_credentials",
                )
            raise Unauthorized("Wrong user name or password.", error="invalid_credentials")
        limiter.clear(address)
        secret, expires = sessions.open(d.settings.get("auth", "session_hours") * 3600)
        await d.event(
            "admin_login",
            f"Admin logged in from {address}",
            service="auth",
            data={"address": address, "actor": ADMIN},
        )
        return {"ok": True, "session": secret, "expires": _iso(expires)}

    async def logout(session: str) -> dict[str, Any]:
        if not is_digest(session):
            raise InvalidParams("session", "session must be a SHA-256 hex digest.")
        if sessions.close(session):
            await d.event("admin_logout", "Admin logged out", service="auth", data={"actor": ADMIN})
        return {"ok": True}

    async def whoami() -> dict[str, Any]:
        caller = current_caller()
        assert caller is not None  # always set during a call
        return {"ok": True, "actor": caller.actor, "scope": caller.scope}

    async def set_password(password: str) -> dict[str, Any]:
        _operator_only()
        _password("password", password, min_len=MIN_PASSWORD)
        hashed = await asyncio.to_thread(hash_password, password)
        async with lock:
            store.password = hashed
            await asyncio.to_thread(store.save)
            closed = sessions.close_all()
        await d.event(
            "admin_password_set",
            "The admin password was set; every browser session was closed",
            service="auth",
            data={"sessions_closed": closed},
        )
        return {"ok": True, "sessions_closed": closed}

    async def create(name: str, scope: str = "read") -> dict[str, Any]:
        _operator_only()
        if not isinstance(name, str) or not TOKEN_NAME.fullmatch(name) or name in RESERVED_NAMES:
            raise InvalidParams(
                "name", "name must be 1-64 of a-z 0-9 _ . - (starting with a letter or digit)."
            )
        validate.choice("scope", scope, SCOPES)
        caller = current_caller()
        async with lock:
            if name in store.tokens:
                raise Conflict(f"A token named {name} exists; revoke it first.", error="token_exists")
            if len(store.tokens) >= MAX_TOKENS:
                raise Conflict(f"There are already {MAX_TOKENS} tokens.", error="too_many_tokens")
            secret = new_secret(TOKEN_PREFIX)
            token = Token(
                name,
                scope,
                credential_digest(secret),
                _iso(dt.datetime.now(dt.UTC).timestamp()),
                caller.actor if caller else "local",
            )
            store.add(token)
            try:
                await asyncio.to_thread(store.save)
            except BaseException:
                store.remove(name)
                raise
        await d.event(
            "token_created",
            f"Token {name} created ({scope})",
            service="auth",
            data={"name": name, "scope": scope},
        )
        return {"ok": True, **token.public(), "token": secret}

    async def list_() -> dict[str, Any]:
        _operator_only()
        return {"tokens": [t.public() for t in sorted(store.tokens.values(), key=lambda t: t.name)]}

    async def revoke(name: str) -> dict[str, Any]:
        _operator_only()
        validate.text("name", name, max_len=64)
        async with lock:
            token = store.remove(name)
            if token is None:
                raise NotFound(f"There is no token named {name}.", error="token_not_found")
            try:
                await asyncio.to_thread(store.save)
            except BaseException:
                store.add(token)
                raise
        await d.event("token_revoked", f"Token {name} revoked", service="auth", data={"name": name})
        return {"ok": True, "name": name}

    d.authenticator(authenticate)
    d.lifespan(load)
    d.register("auth.login", login)
    d.register("auth.logout", logout)
    d.register("auth.whoami", whoami)
    d.register("admin.set_password", set_password)
    d.register("tokens.create", create)
    d.register("tokens.list", list_)
    d.register("tokens.revoke", revoke)
