"""The call's context through a real socket: reserved params, the actor, the auth hook."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import start_daemon

from client.aio import XraydClient
from client.protocol import RpcError
from xrayd.daemon import Daemon
from xrayd.errors import Forbidden
from xrayd.rpc.dispatch import Dispatcher, current_caller
from xrayd.sandbox.builder import Sandbox


def _authenticate(auth: Any) -> tuple[str, str]:
    if auth == {"token": "good", "need": "read"}:
        return "token:good", "read"
    raise Forbidden("nope", error="forbidden")


@pytest.fixture
async def ctx_rpc(sandbox: Sandbox):  # type: ignore[no-untyped-def]
    """A daemon with `debug.whoami` (returns the caller) and `debug.note` (records an event)."""
    d = Daemon(sandbox.config, shutdown_grace=5)

    async def whoami(**extra: Any) -> dict[str, Any]:
        caller = current_caller()
        assert caller is not None
        return {"actor": caller.actor, "scope": caller.scope, "rid": caller.request_id, "extra": extra}

    async def note(text: str) -> dict[str, Any]:
        return await d.event("debug_note", text)

    d.register("debug.whoami", whoami)
    d.register("debug.note", note)
    d.authenticator(_authenticate)
    task = await start_daemon(d)
    async with XraydClient(str(sandbox.config.socket)) as client:
        yield client
    d.request_stop()
    await task


async def test_reserved_params_are_stripped_and_exposed(ctx_rpc: XraydClient) -> None:
    """`_actor` and `_rid` never reach the method (not even its **kwargs); the caller shows them."""
    got = await ctx_rpc.call("debug.whoami", {"_actor": "token:ci", "_rid": "r-1", "x": 1})
    assert got == {"actor": "token:ci", "scope": "admin", "rid": "r-1", "extra": {"x": 1}}


async def test_actor_defaults_to_the_socket_peer(ctx_rpc: XraydClient) -> None:
    """A call that names no actor is made by the peer of the socket, by user name."""
    import os
    import pwd

    got = await ctx_rpc.call("debug.whoami")
    assert got["actor"] == f"local:{pwd.getpwuid(os.geteuid()).pw_name}" and got["rid"] is None


async def test_event_names_the_actor(ctx_rpc: XraydClient) -> None:
    """An event recorded during a call carries the caller as data.actor."""
    event = await ctx_rpc.call("debug.note", {"text": "hi", "_actor": "admin"})
    assert event["data"]["actor"] == "admin"
    listed = await ctx_rpc.call("events.list", {"type": "debug_note"})
    assert listed["events"][0]["data"]["actor"] == "admin"


async def test_auth_goes_through_the_authenticator(ctx_rpc: XraydClient) -> None:
    """`_auth` is resolved by the daemon's hook, which overrides any `_actor`; a refusal is its error."""
    auth = {"token": "good", "need": "read"}
    got = await ctx_rpc.call("debug.whoami", {"_auth": auth, "_actor": "admin"})
    assert (got["actor"], got["scope"]) == ("token:good", "read")
    with pytest.raises(RpcError) as caught:
        await ctx_rpc.call("debug.whoami", {"_auth": {"token": "bad"}})
    assert (caught.value.code, caught.value.error) == (403, "forbidden")


@pytest.mark.parametrize(
    ("params", "name"),
    [({"_rid": "has space"}, "_rid"), ({"_rid": 5}, "_rid"), ({"_actor": "a\nb"}, "_actor")],
)
async def test_bad_reserved_params_are_refused(
    ctx_rpc: XraydClient, params: dict[str, Any], name: str
) -> None:
    """A malformed request id or actor is a -32602 that names it; the method never runs."""
    with pytest.raises(RpcError) as caught:
        await ctx_rpc.call("debug.note", {"text": "x", **params})
    assert caught.value.code == -32602 and caught.value.data["param"] == name


async def test_auth_without_a_hook_is_refused() -> None:
    """A dispatcher with no authenticator refuses `_auth` rather than ignoring it."""

    async def ping() -> str:
        return "pong"

    line = json.dumps({"jsonrpc": "2.0", "method": "ping", "params": {"_auth": {"token": "x"}}, "id": 1})
    reply = json.loads(await Dispatcher({"ping": ping}).handle(line) or b"{}")
    assert reply["error"]["code"] == -32602 and reply["error"]["data"]["param"] == "_auth"


async def test_unknown_params_are_still_refused(ctx_rpc: XraydClient) -> None:
    """Adding the reserved params to a signature leaves the binding check strict."""
    with pytest.raises(RpcError) as caught:
        await ctx_rpc.call("debug.note", {"text": "x", "_other": 1})
    assert caught.value.code == -32602
