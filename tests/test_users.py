"""users.*: through the real socket (and gateway), the real file, and the xray/systemctl stand-ins."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from urllib.parse import unquote, urlsplit

import pytest
from aiohttp.test_utils import TestClient
from xray_configs import (
    REALITY_TEMPLATE,
    events,
    filled,
    reality_inbound,
    reference,
    restarts,
    running,
    running_users,
    set_knob,
    text_of,
)

from client.aio import XraydClient
from client.protocol import RpcError
from xrayd.daemon import Daemon
from xrayd.sandbox.builder import Sandbox
from xrayd.sandbox.standin_state import update_state

TAG = "vless-reality"  # the sandbox's inbound


def without_actor(data: dict) -> dict:
    """Event data less the actor, which names whoever runs the tests."""
    return {k: v for k, v in data.items() if k != "actor"}


def on_disk(sandbox: Sandbox) -> dict:
    return json.loads(sandbox.config.xray_config.read_text())


def emails_on_disk(sandbox: Sandbox) -> list[str]:
    return [c.get("email") for c in on_disk(sandbox)["inbounds"][0]["settings"]["clients"]]


def xray_accepts(sandbox: Sandbox) -> bool:
    path = sandbox.config.xray_config
    result = subprocess.run([sandbox.config.xray_bin, "run", "-test", "-config", path], capture_output=True)
    return result.returncode == 0


async def test_list_has_every_client_with_alias_and_flow(rpc: XraydClient) -> None:
    """users.list → {"users": [{email, uuid, alias, flow}]} in config order."""
    users = (await rpc.call("users.list"))["users"]
    assert [u["email"] for u in users] == ["alice@example.org", "bob@example.org", "carol@example.org"]
    assert all(set(u) == {"email", "uuid", "alias", "flow"} and u["alias"] is None for u in users)
    assert all(str(uuid.UUID(u["uuid"])) == u["uuid"] and u["flow"] == "xtls-rprx-vision" for u in users)


async def test_list_is_served_to_other_modules_in_process(daemon: Daemon) -> None:
    """Other modules call d.methods["users.list"]() and get the same shape, from the cache."""
    first = await daemon.methods["users.list"]()
    second = await daemon.methods["users.list"]()
    assert first == second and first["users"] is not second["users"]
    assert first["users"][0]["email"] == "alice@example.org"


async def test_add_writes_the_file_and_reaches_xray_live(rpc: XraydClient, sandbox: Sandbox) -> None:
    """add → {ok, user, uuid}: in config.json, in the running Xray through adu, no restart."""
    before = restarts(sandbox)
    answer = await rpc.call("users.add", {"email": "Dave@Example.org", "alias": "Дейв 🚀"})
    assert answer["ok"] is True and answer["applied"] == "api"
    assert answer["user"] == {
        "email": "Dave@Example.org",
        "uuid": answer["uuid"],
        "alias": "Дейв 🚀",
        "flow": "xtls-rprx-vision",
    }
    assert emails_on_disk(sandbox)[-1] == "Dave@Example.org" and xray_accepts(sandbox)
    assert running_users(sandbox, TAG)["dave@example.org"]["id"] == answer["uuid"]
    assert restarts(sandbox) == before
    listed = (await rpc.call("users.list"))["users"][-1]
    assert listed == answer["user"]
    [event] = await events(rpc, "user_added")
    assert event["data"]["email"] == "Dave@Example.org" and event["data"]["applied"] == "api"
    assert answer["uuid"] not in json.dumps(event) and event["data"]["uuid_prefix"] == answer["uuid"][:8]


async def test_add_with_uuid_and_flow(rpc: XraydClient, sandbox: Sandbox) -> None:
    """A given UUID is stored canonical; a custom id works; flow "" is kept."""
    given = uuid.uuid4()
    answer = await rpc.call("users.add", {"email": "e1", "uuid": given.hex.upper(), "flow": ""})
    assert answer["uuid"] == str(given) and answer["user"]["flow"] == ""
    custom = await rpc.call("users.add", {"email": "e2", "uuid": "my-own-id"})
    assert custom["uuid"] == "my-own-id"
    assert running_users(sandbox, TAG)["e2"]["id"] == "my-own-id"


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"email": "alice@example.org"}, 409, "user_exists"),
        ({"email": "ALICE@EXAMPLE.ORG"}, 409, "user_exists"),
        ({"email": "bad email"}, 400, "invalid_email"),
        ({"email": "a>>>b"}, 400, "invalid_email"),
        ({"email": "x" * 65}, 400, "invalid_params"),  # the gateway's own bound
        ({"email": "ok@x", "uuid": "not-a-uuid-and-far-too-long-for-a-custom-id"}, 400, "invalid_uuid"),
        ({"email": "ok@x", "flow": "xtls-rprx-direct"}, 400, "invalid_flow"),
        ({"email": "ok@x", "alias": "x" * 65}, 400, "invalid_alias"),
        ({"email": "ok@x", "alias": "bad\nalias"}, 400, "invalid_alias"),
        ({}, 400, "invalid_params"),
    ],
)
async def test_add_refusals_through_the_gateway(
    api: TestClient, sandbox: Sandbox, body: dict, status: int, error: str
) -> None:
    """Bad or duplicate input is refused with its status and machine code; the file is untouched."""
    before = sandbox.config.xray_config.read_bytes()
    resp = await api.post("/api/users/add", json=body)
    answer = await resp.json()
    assert (resp.status, answer["error"], answer["ok"]) == (status, error, False)
    assert sandbox.config.xray_config.read_bytes() == before


async def test_xrayd_checks_params_itself(rpc: XraydClient) -> None:
    """Straight over the socket (no gateway), a 65-character email is still refused."""
    with pytest.raises(RpcError) as err:
        await rpc.call("users.add", {"email": "x" * 65})
    assert (err.value.code, err.value.error) == (400, "invalid_email")


async def test_duplicate_uuid_is_409(rpc: XraydClient) -> None:
    """Two users may not share an id (a custom id and its UUIDv5 count as the same)."""
    alice = (await rpc.call("users.list"))["users"][0]["uuid"]
    for taken in (alice, alice.upper()):
        with pytest.raises(RpcError) as err:
            await rpc.call("users.add", {"email": "twin@x", "uuid": taken})
        assert (err.value.code, err.value.error) == (409, "uuid_exists")
    await rpc.call("users.add", {"email": "c1", "uuid": "custom"})
    with pytest.raises(RpcError) as err:
        await rpc.call("users.add", {"email": "c2", "uuid": str(uuid.uuid5(uuid.UUID(int=0), "custom"))})
    assert err.value.error == "uuid_exists"


async def test_delete_cuts_off_and_restarts_by_default(rpc: XraydClient, sandbox: Sandbox) -> None:
    """delete → user_deleted: gone from the file and from Xray, alias gone, Xray restarted."""
    await rpc.call("users.update_alias", {"email": "bob@example.org", "alias": "Bob"})
    before = restarts(sandbox)
    answer = await rpc.call("users.delete", {"email": "BOB@example.org"})
    assert answer == {"ok": True, "message": "user_deleted", "applied": "api"}
    assert "bob@example.org" not in emails_on_disk(sandbox)
    assert "bob@example.org" not in running_users(sandbox, TAG)
    assert restarts(sandbox) == before + 1
    assert json.loads((sandbox.config.data_dir / "aliases.json").read_text()) == {}
    [event] = await events(rpc, "user_deleted")
    assert "restarted to cut their open connections" in event["message"]
    assert without_actor((await events(rpc, "xray_restarted"))[0]["data"]) == {"reason": "revoke"}


async def test_delete_api_only_does_not_restart(sandbox: Sandbox) -> None:
    """With xray.revoke = api_only, rmu alone removes the user; Xray keeps running."""
    async with running(sandbox, settings={"xray": {"revoke": "api_only"}}) as (_, rpc):
        before = restarts(sandbox)
        await rpc.call("users.delete", {"email": "bob@example.org"})
        assert "bob@example.org" not in running_users(sandbox, TAG)
        assert restarts(sandbox) == before
        [event] = await events(rpc, "user_deleted")
        assert "open ones last until they close" in event["message"]


async def test_unknown_user_is_404(api: TestClient) -> None:
    """delete, kick, update-alias and link of an unknown email are 404 user_not_found."""
    for method, path, body in (
        ("POST", "/api/users/delete", {"email": "nobody@x"}),
        ("POST", "/api/users/kick", {"email": "nobody@x"}),
        ("POST", "/api/users/update-alias", {"email": "nobody@x", "alias": "N"}),
        ("GET", "/api/users/link", {"email": "nobody@x"}),
        ("GET", "/api/users/link", {"uuid": str(uuid.uuid4())}),
    ):
        if method == "GET":
            resp = await api.get(path, params=body)
        else:
            resp = await api.post(path, json=body)
        assert resp.status == 404, path
        assert (await resp.json())["error"] == "user_not_found"


async def test_kick_gives_a_new_uuid_everywhere(rpc: XraydClient, sandbox: Sandbox) -> None:
    """kick → {ok, new_uuid}: the file and the running Xray hold the new id; email and alias stay."""
    await rpc.call("users.update_alias", {"email": "carol@example.org", "alias": "C"})
    old = (await rpc.call("users.list"))["users"][2]["uuid"]
    answer = await rpc.call("users.kick", {"email": "carol@example.org"})
    new = answer["new_uuid"]
    assert answer["ok"] is True and new != old and str(uuid.UUID(new)) == new
    assert running_users(sandbox, TAG)["carol@example.org"]["id"] == new
    carol = (await rpc.call("users.list"))["users"][2]
    assert carol == {"email": "carol@example.org", "uuid": new, "alias": "C", "flow": "xtls-rprx-vision"}
    [event] = await events(rpc, "user_kicked")
    assert old not in json.dumps(event) and new not in json.dumps(event)


async def test_update_alias_never_touches_xray(rpc: XraydClient, sandbox: Sandbox) -> None:
    """update-alias changes xrayd's metadata only: config.json's bytes and backups stay as they were."""
    before = sandbox.config.xray_config.read_bytes()
    assert await rpc.call("users.update_alias", {"email": "Alice@example.org", "alias": "Алиса 👩"}) == {
        "ok": True
    }
    assert sandbox.config.xray_config.read_bytes() == before
    assert (await rpc.call("users.list"))["users"][0]["alias"] == "Алиса 👩"
    assert (await rpc.call("backups.list"))["backups"] == []
    await rpc.call("users.update_alias", {"email": "alice@example.org", "alias": ""})
    assert (await rpc.call("users.list"))["users"][0]["alias"] is None
    updates = await events(rpc, "alias_updated")
    assert [e["data"]["alias"] for e in updates] == [None, "Алиса 👩"]


async def test_link_by_email_or_uuid_and_as_qr(api: TestClient, rpc: XraydClient) -> None:
    """GET /api/users/link gives the vless:// link (by email or uuid); format=qr an SVG image."""
    alice = (await rpc.call("users.list"))["users"][0]
    await rpc.call("users.update_alias", {"email": alice["email"], "alias": "Alice A."})
    by_email = await (await api.get("/api/users/link", params={"email": alice["email"]})).json()
    by_uuid = await (await api.get("/api/users/link", params={"uuid": alice["uuid"]})).json()
    assert by_email["ok"] is True and by_email["link"] == by_uuid["link"]
    parts = urlsplit(by_email["link"])
    assert parts.username == alice["uuid"] and parts.hostname == "vpn.example.org" and parts.port == 443
    assert unquote(parts.fragment) == "Alice A."
    both_wrong = await api.get("/api/users/link", params={"email": alice["email"], "uuid": str(uuid.uuid4())})
    assert both_wrong.status == 404
    qr = await api.get("/api/users/link", params={"email": alice["email"], "format": "qr"})
    assert qr.status == 200 and qr.content_type == "image/svg+xml"
    assert (await qr.text()).lstrip().startswith("<?xml") and "<svg" in await qr.text()
    neither = await api.get("/api/users/link")
    assert neither.status == 400


async def test_link_without_public_host_says_to_set_it(rpc: XraydClient) -> None:
    """With ui.public_host unset, users.link is a 422 that names the setting."""
    await rpc.call("settings.update", {"ui": {"public_host": None}})
    with pytest.raises(RpcError) as err:
        await rpc.call("users.link", {"email": "alice@example.org"})
    assert err.value.error == "public_host_not_set" and "ui.public_host" in err.value.message


async def test_fifty_concurrent_adds_through_the_gateway(
    api: TestClient, rpc: XraydClient, sandbox: Sandbox
) -> None:
    """50 adds at once → 50 users, a config Xray accepts, no duplicate emails or ids, all live."""
    emails = [f"user{i:02d}@example.org" for i in range(50)]
    answers = await asyncio.gather(*(api.post("/api/users/add", json={"email": e}) for e in emails))
    assert [r.status for r in answers] == [200] * 50
    users = (await rpc.call("users.list"))["users"]
    assert len(users) == 53
    assert len({u["email"] for u in users}) == 53 and len({u["uuid"] for u in users}) == 53
    assert xray_accepts(sandbox)
    assert set(emails) <= set(running_users(sandbox, TAG))
    assert len(await events(rpc, "user_added")) == 50


async def test_concurrent_changes_share_one_write(daemon: Daemon, sandbox: Sandbox) -> None:
    """Changes queued together are written once (one backup) and each gets its own answer."""
    add = daemon.methods["users.add"]
    results = await asyncio.gather(
        *(add(email=f"batch{i}@x") for i in range(20)),
        add(email="alice@example.org"),  # fails alone: the rest of the batch goes through
        return_exceptions=True,
    )
    assert all(isinstance(r, dict) and r["ok"] for r in results[:20])
    assert getattr(results[20], "error", None) == "user_exists"
    backups = (await daemon.methods["backups.list"]())["backups"]
    assert [b["reason"] for b in backups] == ["user_added"]
    assert len(running_users(sandbox, TAG)) == 23


async def test_api_down_falls_back_to_a_restart(sandbox: Sandbox) -> None:
    """API unreachable: add is applied by restarting Xray (counters read first), and the event says so."""
    async with running(sandbox) as (d, rpc):
        hooks: list[int] = []

        async def read_counters() -> None:
            hooks.append(1)

        d.before_xray_restart(read_counters)
        set_knob(sandbox, api_up=False)
        before = restarts(sandbox)
        answer = await rpc.call("users.add", {"email": "late@x"})
        assert answer["applied"] == "restart" and restarts(sandbox) == before + 1 and hooks == [1]
        assert "late@x" in running_users(sandbox, TAG)
        [event] = await events(rpc, "user_added")
        assert event["severity"] == "warning" and "failed to dial" in event["message"]
        assert "restarting Xray" in event["message"]
        assert without_actor((await events(rpc, "xray_restarted"))[0]["data"]) == {
            "reason": "api_unreachable"
        }


async def test_stale_user_in_running_xray_is_replaced(rpc: XraydClient, sandbox: Sandbox) -> None:
    """When the running Xray already has the email (added by hand), rmu + adu replace it, no restart."""

    def sneak(state: dict) -> None:
        state["inbounds"][TAG]["ghost@x"] = {"id": str(uuid.uuid4()), "email": "ghost@x"}

    update_state(sandbox.state_dir, sneak)
    before = restarts(sandbox)
    answer = await rpc.call("users.add", {"email": "ghost@x"})
    assert answer["applied"] == "api" and restarts(sandbox) == before
    assert running_users(sandbox, TAG)["ghost@x"]["id"] == answer["uuid"]


async def test_xray_refusing_leaves_the_file_untouched(rpc: XraydClient, sandbox: Sandbox) -> None:
    """`xray run -test` exit 23 → 422 xray_config_invalid with Xray's reason; nothing written."""
    before = sandbox.config.xray_config.read_bytes()
    set_knob(sandbox, fail_test="infra/conf: something Xray dislikes")
    with pytest.raises(RpcError) as err:
        await rpc.call("users.add", {"email": "new@x"})
    assert (err.value.code, err.value.error) == (422, "xray_config_invalid")
    assert (
        "something Xray dislikes" in err.value.message
        and "something Xray dislikes" in err.value.data["reason"]
    )
    assert sandbox.config.xray_config.read_bytes() == before
    assert (await rpc.call("backups.list"))["backups"] == []
    assert "new@x" not in running_users(sandbox, TAG)
    strays = [p.name for p in sandbox.config.xray_config.parent.iterdir() if p.name.endswith(".tmp")]
    assert strays == []


async def test_hand_written_template_with_comments(sandbox: Sandbox) -> None:
    """The REALITY template (comments, no tag, no api, a client without email): listed by id,
    linked by uuid, and an add is applied by a restart that the event explains."""
    text = filled(REALITY_TEMPLATE)
    async with running(sandbox, text) as (_, rpc):
        [first] = (await rpc.call("users.list"))["users"]
        assert first["email"] is None and first["alias"] is None
        link = (await rpc.call("users.link", {"uuid": first["uuid"]}))["link"]
        assert urlsplit(link).username == first["uuid"] and urlsplit(link).fragment == first["uuid"][:8]
        before = restarts(sandbox)
        answer = await rpc.call("users.add", {"email": "new@example.org"})
        assert answer["applied"] == "restart" and restarts(sandbox) == before + 1
        assert answer["user"]["flow"] == "xtls-rprx-vision"
        [event] = await events(rpc, "user_added")
        assert "no tag" in event["message"] and "comments" in event["message"]
        backup = event["data"]["backup"]
        preview = await rpc.call("backups.preview", {"name": backup})
        assert preview["preview"]["has_comments"] is True
        kept = sandbox.config.data_dir / "backups" / backup
        assert kept.read_text() == text
        users = (await rpc.call("users.list"))["users"]
        assert [u["email"] for u in users] == [None, "new@example.org"]


async def test_3x_ui_template_with_a_reality_inbound_applies_live(sandbox: Sandbox) -> None:
    """3x-ui's template (api through a `tunnel` inbound) plus a REALITY inbound: adds go through the API."""
    doc = json.loads(text_of("3x-ui__internal_web_service__config.json"))
    doc["inbounds"][0]["port"] = int(sandbox.config.xray_api.rpartition(":")[2])
    doc["log"] = {"loglevel": "warning"}
    doc["inbounds"].append(reality_inbound("inbound-443"))
    async with running(sandbox, doc) as (_, rpc):
        before = restarts(sandbox)
        answer = await rpc.call("users.add", {"email": "x@ui"})
        assert answer["applied"] == "api" and restarts(sandbox) == before
        assert answer["user"]["flow"] == ""  # the inbound's other client uses no flow
        assert "x@ui" in running_users(sandbox, "inbound-443")


async def test_marzban_template_tag_with_spaces_and_no_api(sandbox: Sandbox) -> None:
    """Marzban's template has no api section: a change restarts Xray; a tag with spaces is fine."""
    doc = json.loads(text_of("Marzban__xray_config.json"))
    doc["inbounds"].append(reality_inbound("VLESS TCP REALITY", port=8443))
    async with running(sandbox, doc, settings={"xray": {"inbound_tag": "VLESS TCP REALITY"}}) as (_, rpc):
        answer = await rpc.call("users.add", {"email": "m@z"})
        assert answer["applied"] == "restart"
        assert "m@z" in running_users(sandbox, "VLESS TCP REALITY")
        [event] = await events(rpc, "user_added")
        assert "no `api` section" in event["message"]


async def test_reference_config_users_live_through_dokodemo_api(sandbox: Sandbox) -> None:
    """The reference config (api via dokodemo-door + routing rule): add, kick, delete all live."""
    async with running(sandbox, reference(sandbox), settings={"xray": {"revoke": "api_only"}}) as (_, rpc):
        before = restarts(sandbox)
        await rpc.call("users.add", {"email": "r@x"})
        new = (await rpc.call("users.kick", {"email": "alice@example.com"}))["new_uuid"]
        await rpc.call("users.delete", {"email": "r@x"})
        assert restarts(sandbox) == before
        assert set(running_users(sandbox, "vless-reality")) == {"alice@example.com"}
        assert running_users(sandbox, "vless-reality")["alice@example.com"]["id"] == new


async def test_a_vmess_only_config_is_a_clear_error(sandbox: Sandbox) -> None:
    """A config with no VLESS + REALITY inbound answers 422 no_managed_inbound, never crashes."""
    async with running(sandbox, filled("VMess-TCP__config_server.jsonc")) as (_, rpc):
        for method, params in (("users.list", {}), ("users.add", {"email": "a@b"}), ("xray.reality", {})):
            with pytest.raises(RpcError) as err:
                await rpc.call(method, params)
            assert (err.value.code, err.value.error) == (422, "no_managed_inbound"), method
            assert "vmess/none on port 1234" in err.value.message
