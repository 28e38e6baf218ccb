"""backups.*: list, preview, create, restore, delete; names that try to leave the folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from xray_configs import events, restarts, running, running_users

from client.aio import XraydClient
from client.protocol import RpcError
from xrayd.sandbox.builder import Sandbox

SECRET = "outside-secret"


def without_actor(data: dict) -> dict:
    """Event data less the actor, which names whoever runs the tests."""
    return {k: v for k, v in data.items() if k != "actor"}


def backups_dir(sandbox: Sandbox) -> Path:
    return sandbox.config.data_dir / "backups"


def outside_file(sandbox: Sandbox) -> Path:
    """A file beside the data folder that no backup call may read or remove."""
    path = sandbox.root / "outside.json"
    path.write_text(json.dumps({"secret": SECRET}))
    return path


async def test_list_create_and_retention(sandbox: Sandbox) -> None:
    """create keeps the current file; list is newest first with name, size, mtime, reason;
    only backups.keep backups are kept."""
    async with running(sandbox, settings={"backups": {"keep": 3}}) as (_, rpc):
        names = []
        for i in range(5):
            answer = await rpc.call("backups.create", {"reason": f"step{i}"})
            assert answer["ok"] is True
            names.append(answer["backup"]["name"])
        listed = (await rpc.call("backups.list"))["backups"]
        assert [b["name"] for b in listed] == names[:1:-1]
        assert [b["reason"] for b in listed] == ["step4", "step3", "step2"]
        first = listed[0]
        assert first["size"] == sandbox.config.xray_config.stat().st_size and first["mtime"].endswith("Z")
        assert (backups_dir(sandbox) / first["name"]).read_bytes() == sandbox.config.xray_config.read_bytes()
        assert oct((backups_dir(sandbox) / first["name"]).stat().st_mode & 0o777) == "0o600"
        assert len(await events(rpc, "backup_created")) == 5
        with pytest.raises(RpcError) as err:
            await rpc.call("backups.create", {"reason": "Bad Reason!"})
        assert err.value.error == "invalid_reason"


async def test_preview_and_diff(rpc: XraydClient) -> None:
    """preview of the backup before an add: counts, ports, protocols, and what restoring undoes."""
    await rpc.call("users.add", {"email": "new@x"})
    [backup] = (await rpc.call("backups.list"))["backups"]
    preview = (await rpc.call("backups.preview", {"name": backup["name"]}))["preview"]
    assert preview["users_count"] == 3 and preview["ports"] == [443] and preview["protocols"] == ["vless"]
    assert preview["inbounds"][0]["tag"] == "vless-reality"
    assert preview["diff_vs_current"]["users_removed"] == ["new@x"]
    assert preview["diff_vs_current"]["users_added"] == [] and preview["has_comments"] is False


async def test_restore_round_trip(rpc: XraydClient, sandbox: Sandbox) -> None:
    """restore (confirm=true) puts a backup back byte for byte, keeps the replaced file as a new
    backup, restarts Xray onto it, and records backup_restored."""
    original = sandbox.config.xray_config.read_bytes()
    await rpc.call("users.add", {"email": "temp@x"})
    [backup] = (await rpc.call("backups.list"))["backups"]
    with pytest.raises(RpcError) as err:
        await rpc.call("backups.restore", {"name": backup["name"]})
    assert (err.value.code, err.value.error) == (400, "confirm_required")
    before = restarts(sandbox)
    answer = await rpc.call("backups.restore", {"name": backup["name"], "confirm": True})
    assert answer["ok"] is True and answer["restored"] is True and answer["restarted"] is True
    assert sandbox.config.xray_config.read_bytes() == original
    assert restarts(sandbox) == before + 1 and "temp@x" not in running_users(sandbox, "vless-reality")
    previous = (backups_dir(sandbox) / answer["previous"]).read_text()
    assert "temp@x" in previous and answer["previous"].endswith("-before_restore.json")
    assert [u["email"] for u in (await rpc.call("users.list"))["users"]][-1] == "carol@example.org"
    [event] = await events(rpc, "backup_restored")
    assert event["data"]["name"] == backup["name"]


async def test_restore_without_restart_and_refused_backup(rpc: XraydClient, sandbox: Sandbox) -> None:
    """restart_xray=false leaves Xray alone; a backup Xray refuses is 422 and changes nothing."""
    await rpc.call("users.add", {"email": "temp@x"})
    [backup] = (await rpc.call("backups.list"))["backups"]
    before = restarts(sandbox)
    answer = await rpc.call(
        "backups.restore", {"name": backup["name"], "confirm": True, "restart_xray": False}
    )
    assert answer["restarted"] is False and restarts(sandbox) == before
    broken = backups_dir(sandbox) / "config-20200101T000000.000000Z-manual.json"
    broken.write_text('{"inbounds": [{"protocol": "vless", "settings": {"clients": [{"id": "x" }]}}]}')
    current = sandbox.config.xray_config.read_bytes()
    with pytest.raises(RpcError) as err:
        await rpc.call("backups.restore", {"name": broken.name, "confirm": True})
    assert (err.value.code, err.value.error) == (422, "xray_config_invalid")
    assert sandbox.config.xray_config.read_bytes() == current


async def test_delete(rpc: XraydClient, sandbox: Sandbox) -> None:
    """delete removes one backup and records it; a second delete is 404."""
    name = (await rpc.call("backups.create"))["backup"]["name"]
    assert await rpc.call("backups.delete", {"name": name}) == {"ok": True, "message": "backup_deleted"}
    assert not (backups_dir(sandbox) / name).exists()
    with pytest.raises(RpcError) as err:
        await rpc.call("backups.delete", {"name": name})
    assert (err.value.code, err.value.error) == (404, "backup_not_found")
    assert without_actor((await events(rpc, "backup_deleted"))[0]["data"]) == {"name": name}


EVIL_NAMES = [
    "..",
    "../outside.json",
    "../../etc/passwd",
    "/etc/passwd",
    "..%2F..%2Foutside.json",
    "%2e%2e%2foutside.json",
    "%252e%252e%252foutside.json",
    "..\\..\\outside.json",
    "config-20260101T000000.000000Z-manual.json/../../outside.json",
    "config-20260101T000000.000000Z-manual.json\x00.txt",
    "config-20260101T000000.000000Z-manual.json\n",
    "\uff0e\uff0e\uff0foutside.json",  # fullwidth dots and slash
    "config-２０２６0101T000000.000000Z-manual.json",  # fullwidth digits match \d, not [0-9]
    "config-20260101T000000.000000Z-../x.json",
    "config-20260101T000000.000000Z-Manual.json",
    "",
    "x" * 300,
]


@pytest.mark.parametrize("name", EVIL_NAMES)
async def test_rpc_refuses_every_name_it_did_not_make(rpc: XraydClient, sandbox: Sandbox, name: str) -> None:
    """Straight over the socket, a name not of xrayd's pattern is 400 invalid_backup_name for
    preview, restore and delete; nothing outside is read or removed."""
    outside = outside_file(sandbox)
    for method, extra in (
        ("backups.preview", {}),
        ("backups.restore", {"confirm": True}),
        ("backups.delete", {}),
    ):
        with pytest.raises(RpcError) as err:
            await rpc.call(method, {"name": name, **extra})
        assert (err.value.code, err.value.error) == (400, "invalid_backup_name"), method
        assert SECRET not in err.value.message
    assert outside.exists()


@pytest.mark.parametrize(
    "raw",
    [
        "..%2F..%2Foutside.json",
        "%2e%2e%2Foutside.json",
        "%252e%252e%252Foutside.json",
        "..%5C..%5Coutside.json",
        "config-20260101T000000.000000Z-manual.json%00",
        "%EF%BC%8E%EF%BC%8E%EF%BC%8Foutside.json",
        "..",
        "%2e%2e",
    ],
)
async def test_gateway_paths_never_leave_the_folder(api: TestClient, sandbox: Sandbox, raw: str) -> None:
    """Encoded traversal in the URL path is a 400 or 404 for preview, restore and delete."""
    from yarl import URL

    outside = outside_file(sandbox)
    for method, suffix, body in (
        ("GET", "/preview", None),
        ("POST", "/restore", {"confirm": True}),
        ("DELETE", "", None),
    ):
        url = URL(f"/api/backups/{raw}{suffix}", encoded=True)
        resp = await api.request(method, url, json=body)
        text = await resp.text()
        assert resp.status in (400, 404), (method, raw, resp.status)
        assert SECRET not in text
    assert outside.exists() and json.loads(outside.read_text()) == {"secret": SECRET}


async def test_symlink_in_the_folder_is_not_a_backup(rpc: XraydClient, sandbox: Sandbox) -> None:
    """A symlink with a valid name pointing outside is not listed, read, restored or removed."""
    outside = outside_file(sandbox)
    link = backups_dir(sandbox) / "config-20260101T000000.000000Z-manual.json"
    os.symlink(outside, link)
    assert (await rpc.call("backups.list"))["backups"] == []
    for method, extra in (
        ("backups.preview", {}),
        ("backups.restore", {"confirm": True}),
        ("backups.delete", {}),
    ):
        with pytest.raises(RpcError) as err:
            await rpc.call(method, {"name": link.name, **extra})
        assert (err.value.code, err.value.error) == (404, "backup_not_found"), method
        assert SECRET not in err.value.message
    assert link.is_symlink() and outside.exists()
    assert SECRET not in sandbox.config.xray_config.read_text()


async def test_backups_folder_that_is_a_symlink_is_refused(rpc: XraydClient, sandbox: Sandbox) -> None:
    """When the backups folder itself is swapped for a symlink, nothing is listed or written there."""
    folder = backups_dir(sandbox)
    elsewhere = sandbox.root / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    folder.rmdir()
    folder.symlink_to(elsewhere)
    with pytest.raises(RpcError) as err:
        await rpc.call("backups.list")
    assert (err.value.code, err.value.error) == (500, "backups_folder_unsafe")
    with pytest.raises(RpcError):
        await rpc.call("users.add", {"email": "x@y"})
    assert list(elsewhere.iterdir()) == []
    assert "x@y" not in sandbox.config.xray_config.read_text()
