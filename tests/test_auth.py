"""Accounts and tokens through a real gateway and a real xrayd: login, CSRF, limits, scopes."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from client.aio import XraydClient
from client.protocol import RpcError
from gateway.app import create_app
from gateway.keys import Options
from xrayd.auth.passwords import hash_password, verify_password
from xrayd.auth.ratelimit import FailureLimiter, address_key
from xrayd.auth.store import Sessions
from xrayd.daemon import Daemon
from xrayd.sandbox.builder import Sandbox

PASSWORD = "correct horse battery staple"


@pytest.fixture
async def web(daemon: Daemon, sandbox: Sandbox, aiohttp_client):  # type: ignore[no-untyped-def]
    """A real gateway with no credential preset (a browser, or a script with its own token)."""
    return await aiohttp_client(create_app(str(sandbox.config.socket), sandbox.token))


async def _login(web: TestClient, password: str = PASSWORD, **extra: Any) -> Any:
    return await web.post("/api/auth/login", json={"password": password, **extra})


async def _events(rpc: XraydClient, type: str) -> list[dict[str, Any]]:
    return (await rpc.call("events.list", {"type": type}))["events"]


async def test_login_sets_a_strict_session_cookie(web: TestClient, rpc: XraydClient) -> None:
    """The right password gives a CSRF token and an HttpOnly, SameSite=Strict cookie; /me says admin."""
    await rpc.call("admin.set_password", {"password": PASSWORD})
    resp = await _login(web, username="admin")
    body = await resp.json()
    assert resp.status == 200 and body["ok"] is True and body["csrf_token"]
    cookie = resp.cookies["xr_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
    assert not cookie["secure"]  # plain HTTP on loopback: a Secure cookie would never come back
    me = await (await web.get("/api/auth/me")).json()
    assert me == {"ok": True, "actor": "admin", "scope": "admin", "csrf_token": body["csrf_token"]}
    [event] = await _events(rpc, "admin_login")
    assert event["data"]["actor"] == "admin" and event["data"]["address"] == "127.0.0.1"


async def test_cookie_is_secure_behind_https(
    daemon: Daemon, sandbox: Sandbox, rpc: XraydClient, aiohttp_client
) -> None:  # type: ignore[no-untyped-def]
    """With TLS (its own or a proxy's) the session cookie is Secure and HSTS is sent."""
    await rpc.call("admin.set_password", {"password": PASSWORD})
    options = Options(https=True, behind_proxy=True)
    web = await aiohttp_client(create_app(str(sandbox.config.socket), None, options=options))
    resp = await web.post(
        "/api/auth/login", json={"password": PASSWORD}, headers={"X-Forwarded-For": "203.0.113.9"}
    )
    assert resp.status == 200 and resp.cookies["xr_session"]["secure"]
    assert resp.headers["Strict-Transport-Security"].startswith("max-age=")
    [event] = await _events(rpc, "admin_login")
    assert event["data"]["address"] == "203.0.113.9"


async def test_wrong_password_and_no_password_are_401(web: TestClient, rpc: XraydClient) -> None:
    """No default credentials: before set-password nothing logs in; a wrong password is a 401 event."""
    resp = await _login(web)
    assert resp.status == 401 and (await resp.json())["error"] == "invalid_credentials"
    assert "set-password" in (await resp.json())["message"]
    await rpc.call("admin.set_password", {"password": PASSWORD})
    for extra in ({"password": "wrong password!"}, {"username": "root"}):
        resp = await _login(web, **extra)
        assert resp.status == 401 and (await resp.json())["error"] == "invalid_credentials"
        assert "xr_session" not in resp.cookies
    failed = await _events(rpc, "login_failed")
    assert len(failed) == 3 and failed[0]["severity"] == "warning"


async def test_csrf_token_is_required_for_session_mutations(web: TestClient, rpc: XraydClient) -> None:
    """A cookie session's POST without (or with a wrong) X-CSRF-Token is a 403; with it, it passes."""
    await rpc.call("admin.set_password", {"password": PASSWORD})
    csrf = (await (await _login(web)).json())["csrf_token"]
    for headers in ({}, {"X-CSRF-Token": "forged"}):
        resp = await web.post("/api/settings", json={"live": {"window_seconds": 120}}, headers=headers)
        assert resp.status == 403 and (await resp.json())["error"] == "csrf_failed"
    assert (await rpc.call("settings.get"))["settings"]["live"]["window_seconds"] == 300
    resp = await web.post(
        "/api/settings", json={"live": {"window_seconds": 120}}, headers={"X-CSRF-Token": csrf}
    )
    assert resp.status == 200
    assert (await web.get("/api/settings")).status == 200  # reads need no CSRF token
    [event] = await _events(rpc, "settings_updated")
    assert event["data"]["actor"] == "admin"


async def test_login_rate_limit(web: TestClient, rpc: XraydClient) -> None:
    """After 5 failures in the window the address gets 429, even with the right password."""
    await rpc.call("admin.set_password", {"password": PASSWORD})
    for _ in range(5):
        assert (await _login(web, "nope nope nope")).status == 401
    resp = await _login(web)
    body = await resp.json()
    assert resp.status == 429 and body["error"] == "rate_limited" and "try again" in body["message"]
    [event] = await _events(rpc, "login_rate_limited")
    assert event["severity"] == "warning" and event["data"]["address"] == "127.0.0.1"
    assert len(await _events(rpc, "login_failed")) == 5  # refused tries write no event each


async def test_logout_and_new_password_close_sessions(web: TestClient, rpc: XraydClient) -> None:
    """Logout ends the session at once; setting the password ends every session."""
    await rpc.call("admin.set_password", {"password": PASSWORD})
    csrf = (await (await _login(web)).json())["csrf_token"]
    assert (await web.post("/api/auth/logout")).status == 403  # CSRF applies to logout too
    resp = await web.post("/api/auth/logout", headers={"X-CSRF-Token": csrf})
    assert resp.status == 200 and await resp.json() == {"ok": True}
    assert (await web.get("/api/auth/me")).status == 401
    session = (await _login(web)).cookies["xr_session"].value
    await rpc.call("admin.set_password", {"password": PASSWORD + "!"})
    resp = await web.get("/api/events", cookies={"xr_session": session})
    assert resp.status == 401


async def test_named_tokens_scopes_and_instant_revocation(web: TestClient, rpc: XraydClient) -> None:
    """A read token reads but may not mutate (403); a revoked token is refused by the next request."""
    made = await rpc.call("tokens.create", {"name": "ci", "scope": "read"})
    assert made["token"].startswith("xrt_") and made["scope"] == "read"
    auth = {"Authorization": f"Bearer {made['token']}"}
    assert (await web.get("/api/events", headers=auth)).status == 200
    me = await (await web.get("/api/auth/me", headers=auth)).json()
    assert me == {"ok": True, "actor": "token:ci", "scope": "read"}
    resp = await web.post("/api/settings", json={"live": {"window_seconds": 120}}, headers=auth)
    assert resp.status == 403 and (await resp.json())["error"] == "forbidden"
    listed = await rpc.call("tokens.list")
    assert [t["name"] for t in listed["tokens"]] == ["ci"] and "digest" not in listed["tokens"][0]
    await rpc.call("tokens.revoke", {"name": "ci"})
    resp = await web.get("/api/events", headers=auth)
    assert resp.status == 401 and (await resp.json())["error"] == "unauthorized"


async def test_mutation_events_name_the_token(web: TestClient, rpc: XraydClient, sandbox: Sandbox) -> None:
    """An admin token's change is recorded as token:NAME; the token file's as token:file."""
    secret = (await rpc.call("tokens.create", {"name": "ops", "scope": "admin"}))["token"]
    for token, actor, seconds in ((secret, "token:ops", 120), (None, "token:file", 90)):
        headers = {"Authorization": f"Bearer {token or sandbox.token}"}
        resp = await web.post("/api/settings", json={"live": {"window_seconds": seconds}}, headers=headers)
        assert resp.status == 200
        assert (await _events(rpc, "settings_updated"))[0]["data"]["actor"] == actor


async def test_tokens_persist_hashed_and_survive_a_restart(sandbox: Sandbox, rpc: XraydClient) -> None:
    """auth.json (0600) holds digests, never a token; the password is an scrypt hash."""
    secret = (await rpc.call("tokens.create", {"name": "backup", "scope": "admin"}))["token"]
    await rpc.call("admin.set_password", {"password": PASSWORD})
    path = sandbox.config.data_dir / "auth.json"
    text = path.read_text()
    assert secret not in text and PASSWORD not in text and '"scrypt$' in text
    assert path.stat().st_mode & 0o777 == 0o600
    d = Daemon(sandbox.config)
    d.prepare()
    from xrayd.auth.store import AuthStore

    store = AuthStore(path)
    store.load()
    assert (
        store.tokens["backup"].scope == "admin"
        and store.password
        and verify_password(PASSWORD, store.password)
    )


async def test_credential_management_is_for_local_root_only(rpc: XraydClient) -> None:
    """tokens.* and admin.set_password refuse a call forwarded for someone (the gateway's)."""
    for method, params in (
        ("tokens.create", {"name": "x"}),
        ("tokens.list", {}),
        ("admin.set_password", {"password": PASSWORD}),
    ):
        with pytest.raises(RpcError) as caught:
            await rpc.call(method, {**params, "_actor": "token:file"})
        assert (caught.value.code, caught.value.error) == (403, "operator_only")


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"name": "Bad Name"}, "name"),
        ({"name": "file"}, "name"),
        ({"name": "ok", "scope": "root"}, "scope"),
    ],
)
async def test_token_params_are_checked(rpc: XraydClient, params: dict[str, Any], name: str) -> None:
    """Token names are short slugs (`file` is reserved); scopes are read or admin."""
    with pytest.raises(RpcError) as caught:
        await rpc.call("tokens.create", params)
    assert caught.value.data["param"] == name


async def test_duplicate_token_and_short_password_are_refused(rpc: XraydClient) -> None:
    """A second token of one name is a 409; a password under 12 characters a 400."""
    await rpc.call("tokens.create", {"name": "dup"})
    with pytest.raises(RpcError) as caught:
        await rpc.call("tokens.create", {"name": "dup"})
    assert (caught.value.code, caught.value.error) == (409, "token_exists")
    with pytest.raises(RpcError) as caught:
        await rpc.call("admin.set_password", {"password": "short"})
    assert caught.value.code == -32602


async def test_unknown_credentials_are_401(web: TestClient) -> None:
    """Missing, malformed, unknown and foreign credentials are all 401 before any data."""
    for headers in (
        {},
        {"Authorization": "Bearer xrt_unknown"},
        {"Authorization": "Bearer " + "x" * 500},
        {"Authorization": "Basic abc"},
        {"Cookie": "xr_session=made-up"},
    ):
        resp = await web.get("/api/events", headers=headers)
        assert resp.status == 401, headers


async def test_security_headers_and_request_id_on_every_answer(web: TestClient) -> None:
    """Success, 401 and 404 answers all carry the security headers and a fresh request id."""
    ids = set()
    for path in ("/api/ping", "/api/events", "/api/nope", "/elsewhere"):
        resp = await web.get(path)
        assert resp.headers["X-Content-Type-Options"] == "nosniff", path
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
        assert resp.headers["Referrer-Policy"] == "no-referrer"
        ids.add(resp.headers["X-Request-Id"])
    assert len(ids) == 4
    assert (await web.get("/api/ping")).headers["Cache-Control"] == "no-store"


async def test_reserved_keys_in_a_spread_body_are_refused(web: TestClient, sandbox: Sandbox) -> None:
    """A settings body cannot smuggle `_actor` or `_auth` into the call."""
    headers = {"Authorization": f"Bearer {sandbox.token}"}
    resp = await web.post("/api/settings", json={"_actor": "someone else"}, headers=headers)
    assert resp.status == 400 and (await resp.json())["error"] == "invalid_params"


def test_password_hash_round_trip() -> None:
    """scrypt hashes are salted, verify the right password only, and never match garbage."""
    a, b = hash_password("pw one two three"), hash_password("pw one two three")
    assert a != b and a.startswith("scrypt$")
    assert verify_password("pw one two three", a) and not verify_password("pw one two thre", a)
    assert not verify_password("x", "garbage") and not verify_password("x", "scrypt$1$2$3$!!$!!")


def test_rate_limiter_window_slides() -> None:
    """5 failures block; the block lifts as the oldest failure leaves the window; IPv6 counts per /64."""
    now = [1000.0]
    limiter = FailureLimiter(clock=lambda: now[0])
    for i in range(5):
        assert limiter.retry_after("2001:db8::1", limit=5, window=300) == 0
        assert limiter.fail(f"2001:db8::{i + 1}", limit=5, window=300) is (i == 4)
        now[0] += 10
    assert limiter.retry_after("2001:db8::ffff", limit=5, window=300) == pytest.approx(250)
    assert limiter.retry_after("2001:db9::1", limit=5, window=300) == 0
    now[0] += 251
    assert limiter.retry_after("2001:db8::1", limit=5, window=300) == 0
    assert address_key("::ffff:10.0.0.1") == "10.0.0.1" and address_key("not an ip") == "not an ip"


def test_sessions_expire_and_are_bounded() -> None:
    """A session is valid until its expiry; the oldest gives way past the cap."""
    from client.protocol import credential_digest
    from xrayd.auth.store import MAX_SESSIONS

    now = [0.0]
    sessions = Sessions(clock=lambda: now[0])
    first, _ = sessions.open(100)
    assert sessions.valid(credential_digest(first))
    now[0] = 100
    assert not sessions.valid(credential_digest(first))
    made = [sessions.open(1000 + i)[0] for i in range(MAX_SESSIONS + 1)]
    assert not sessions.valid(credential_digest(made[0])) and sessions.valid(credential_digest(made[-1]))


def test_xrayctl_manages_tokens_and_the_password(daemon_process, sandbox: Sandbox) -> None:  # type: ignore[no-untyped-def]
    """`xrayctl tokens create NAME`, `list`, `revoke NAME`, and `admin set-password` from stdin."""
    import json
    import subprocess
    import sys

    def xrayctl(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        env = {"XRAYD_SOCKET": str(sandbox.config.socket), "PATH": "/usr/bin:/bin"}
        cmd = [sys.executable, "-m", "client", *args]
        return subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=env, timeout=60)

    made = xrayctl("tokens", "create", "deploy", "--scope", "admin")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["token"].startswith("xrt_")
    assert "deploy" in xrayctl("-o", "table", "tokens", "list").stdout
    assert xrayctl("tokens", "revoke", "deploy").returncode == 0
    assert xrayctl("tokens", "revoke", "deploy").returncode == 1
    done = xrayctl("admin", "set-password", stdin=PASSWORD + "\n")
    assert done.returncode == 0 and json.loads(done.stdout)["ok"] is True
    assert PASSWORD not in (sandbox.config.data_dir / "auth.json").read_text()


def test_gateway_refuses_a_public_bind_without_tls(sandbox: Sandbox) -> None:
    """--listen 0.0.0.0 (or any non-loopback address) without TLS stops the gateway at once."""
    import subprocess
    import sys

    base = [sys.executable, "-m", "gateway", "--socket", str(sandbox.config.socket)]
    for listen in ("0.0.0.0:1", "[::]:1", "192.0.2.1:1", "example.org:1"):
        done = subprocess.run(
            [*base, "--listen", listen], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 2 and "refusing to listen" in done.stderr, listen
    half = subprocess.run(
        [*base, "--listen", "0.0.0.0:1", "--tls-cert", "/nonexistent"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert half.returncode == 2 and "go together" in half.stderr
