"""xray.*: the config (masked), REALITY parameters, and restarts with their rollback."""

from __future__ import annotations

import json

import pytest
from xray_configs import PUBLIC_KEY, events, reference, restarts, running, set_knob

from client.aio import XraydClient
from client.protocol import RpcError
from xrayd.daemon import Daemon
from xrayd.sandbox.builder import Sandbox
from xrayd.sandbox.standin_state import read_state


def without_actor(data: dict) -> dict:
    """Event data less the actor, which names whoever runs the tests."""
    return {k: v for k, v in data.items() if k != "actor"}


async def test_config_masks_the_private_key_unless_revealed(api, sandbox: Sandbox) -> None:  # type: ignore[no-untyped-def]
    """GET /api/xray/config → {"config"} with privateKey masked; reveal=true shows it."""
    private = json.loads(sandbox.config.xray_config.read_text())["inbounds"][0]["streamSettings"][
        "realitySettings"
    ]["privateKey"]
    masked = await (await api.get("/api/xray/config")).json()
    assert private not in json.dumps(masked) and masked["masked"] is True
    assert masked["config"]["inbounds"][0]["streamSettings"]["realitySettings"]["privateKey"] == "********"
    shown = await (await api.get("/api/xray/config", params={"reveal": "true"})).json()
    assert shown["config"] == json.loads(sandbox.config.xray_config.read_text())


async def test_reality_params(sandbox: Sandbox) -> None:
    """GET /api/xray/reality → port, pbk (derived), sni, sid, fp, flow, type, host."""
    async with running(sandbox, reference(sandbox)) as (_, rpc):
        p = await rpc.call("xray.reality")
    assert {k: p[k] for k in ("ok", "port", "pbk", "sni", "sid", "fp", "flow", "type", "host")} == {
        "ok": True,
        "port": 443,
        "pbk": PUBLIC_KEY,
        "sni": "www.microsoft.com",
        "sid": "0123456789abcdef",
        "fp": "chrome",
        "flow": "xtls-rprx-vision",
        "type": "tcp",
        "host": "vpn.example.org",
    }


async def test_restart_checks_restarts_and_records(
    rpc: XraydClient, daemon: Daemon, sandbox: Sandbox
) -> None:
    """xray.restart reads the counters first, restarts the unit, and records xray_restarted."""
    calls: list[str] = []

    async def hook() -> None:
        calls.append("read")

    daemon.before_xray_restart(hook)
    before = restarts(sandbox)
    assert await rpc.call("xray.restart") == {"ok": True, "message": "restarted"}
    assert restarts(sandbox) == before + 1 and calls == ["read"]
    systemctl = read_state(sandbox.state_dir)["calls"]
    assert ["restart", "xray.service"] in systemctl and systemctl[-1] == ["is-active", "xray.service"]
    assert without_actor((await events(rpc, "xray_restarted"))[0]["data"]) == {"reason": "manual"}


async def test_restart_refuses_a_broken_file(rpc: XraydClient, sandbox: Sandbox) -> None:
    """A config.json Xray would refuse is not restarted into: 422, Xray keeps running."""
    doc = json.loads(sandbox.config.xray_config.read_text())
    doc["inbounds"][0]["streamSettings"]["realitySettings"]["privateKey"] = "broken"
    sandbox.config.xray_config.write_text(json.dumps(doc))
    before = restarts(sandbox)
    with pytest.raises(RpcError) as err:
        await rpc.call("xray.restart")
    assert (err.value.code, err.value.error) == (422, "xray_config_invalid")
    assert 'invalid "privateKey"' in err.value.message
    assert restarts(sandbox) == before and read_state(sandbox.state_dir)["running"]


async def test_failed_restart_rolls_back_and_recovers(sandbox: Sandbox) -> None:
    """Xray not active after a restart: the newest backup is restored, Xray restarted again (now
    active), config_rolled_back recorded, and the caller gets 500 xray_restart_failed."""
    async with running(sandbox) as (d, rpc):
        await rpc.call("users.add", {"email": "kept@x"})  # backup 1: the original config
        good = sandbox.config.xray_config.read_bytes()
        await rpc.call("users.add", {"email": "doomed@x"})  # backup 2: the config with kept@x
        attempts: list[int] = []

        async def heal_on_second_start() -> None:
            attempts.append(1)
            set_knob(sandbox, fail_start=len(attempts) == 1)

        d.before_xray_restart(heal_on_second_start)
        with pytest.raises(RpcError) as err:
            await rpc.call("xray.restart")
        assert (err.value.code, err.value.error) == (500, "xray_restart_failed")
        assert err.value.data["active"] is True and "active again" in err.value.message
        assert sandbox.config.xray_config.read_bytes() == good
        assert read_state(sandbox.state_dir)["running"] and len(attempts) == 2
        [event] = await events(rpc, "config_rolled_back")
        assert event["severity"] == "error" and event["data"]["restored"] == err.value.data["rolled_back_to"]
        kept = event["data"]["kept"]
        assert kept.endswith("-rollback.json")
        assert "doomed@x" in (sandbox.config.data_dir / "backups" / kept).read_text()
        assert [u["email"] for u in (await rpc.call("users.list"))["users"]][-1] == "kept@x"


async def test_failed_restart_of_a_delete_undoes_it(sandbox: Sandbox) -> None:
    """A delete whose revoke restart leaves Xray down is rolled back: the user is still there,
    the caller gets 500, and Xray stays down when it cannot start at all."""
    async with running(sandbox) as (_, rpc):
        set_knob(sandbox, fail_start=True)
        with pytest.raises(RpcError) as err:
            await rpc.call("users.delete", {"email": "bob@example.org"})
        assert err.value.error == "xray_restart_failed" and err.value.data["active"] is False
        assert "still not active" in err.value.message
        assert "bob@example.org" in [u["email"] for u in (await rpc.call("users.list"))["users"]]
        assert (await events(rpc, "user_deleted")) == []


async def test_failed_restart_with_no_backup_says_so(rpc: XraydClient, sandbox: Sandbox) -> None:
    """No backup to roll back to: 500 xray_restart_failed and an error event, file untouched."""
    before = sandbox.config.xray_config.read_bytes()
    set_knob(sandbox, fail_start=True)
    with pytest.raises(RpcError) as err:
        await rpc.call("xray.restart")
    assert err.value.error == "xray_restart_failed" and "no backup" in err.value.message
    assert sandbox.config.xray_config.read_bytes() == before
    assert (await events(rpc, "xray_restart_failed"))[0]["severity"] == "error"
