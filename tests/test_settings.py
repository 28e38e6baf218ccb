"""settings.*: one schema, deep merge, atomic writes, events, hostile patches, crashes."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from conftest import spawn_daemon, stop_process
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from client.aio import XraydClient
from client.protocol import DaemonUnavailable, RpcError, encode_request
from client.sync import SyncXraydClient
from xrayd.config import Config
from xrayd.daemon import Daemon
from xrayd.sandbox.builder import DEMO_HOST, Sandbox
from xrayd.settings import MAX_PROBLEMS, SCHEMA, Settings, defaults, validate_patch


async def _refused(rpc: XraydClient, patch: Any) -> RpcError:
    with pytest.raises(RpcError) as caught:
        await rpc.call("settings.update", patch)
    return caught.value


def _settings_file(d: Daemon) -> Path:
    return d.config.data_dir / "settings.json"


# --- reading ---------------------------------------------------------------------------------


async def test_get_fills_in_every_default(rpc: XraydClient) -> None:
    """settings.get returns every key of the schema; the file on disk held only one."""
    expected = defaults()
    expected["ui"]["public_host"] = DEMO_HOST  # the sandbox's settings.json sets only this
    assert await rpc.call("settings.get") == {"settings": expected}


def test_schema_defaults_pass_their_own_checks() -> None:
    """Every default value is one the schema accepts (a typo in a default would lock it in)."""
    assert validate_patch(defaults()) == []


# --- updating --------------------------------------------------------------------------------


async def test_update_deep_merges_writes_and_returns(rpc: XraydClient, daemon: Daemon) -> None:
    """A partial patch changes only its keys; the file and the answer hold the merged whole."""
    body = await rpc.call(
        "settings.update", {"ui": {"timezone": "Europe/Moscow"}, "live": {"window_seconds": 60}}
    )
    assert body["changed"] == ["ui.timezone", "live.window_seconds"]
    settings = body["settings"]
    assert settings["ui"] == {"public_host": DEMO_HOST, "timezone": "Europe/Moscow"}
    assert settings["live"] == {"window_seconds": 60, "retention_hours": 24}
    assert json.loads(_settings_file(daemon).read_text()) == settings
    assert (await rpc.call("settings.get"))["settings"] == settings


async def test_update_records_an_event_listing_changed_keys(rpc: XraydClient) -> None:
    """One settings_updated event names each changed key with its old and new value."""
    await rpc.call("settings.update", {"backups": {"keep": 7}, "ui": {"public_host": DEMO_HOST}})
    [event] = (await rpc.call("events.list", {"type": "settings_updated"}))["events"]
    assert event["data"]["changed"] == ["backups.keep"]  # public_host was already that
    assert event["data"]["changes"] == {"backups.keep": {"from": 50, "to": 7}}
    assert "backups.keep" in event["message"]


async def test_update_that_changes_nothing_writes_nothing(rpc: XraydClient, daemon: Daemon) -> None:
    """A patch equal to what is stored leaves the file alone and records no event."""
    before = os.stat(_settings_file(daemon))
    for patch in ({}, {"ui": {}}, {"ui": {"public_host": DEMO_HOST}}, {"backups": {"keep": 50}}):
        assert (await rpc.call("settings.update", patch))["changed"] == []
    after = os.stat(_settings_file(daemon))
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert (await rpc.call("events.list", {"type": "settings_updated"}))["events"] == []


async def test_update_takes_the_shape_settings_get_returns(rpc: XraydClient) -> None:
    """`{"settings": {...}}` as read from settings.get may be sent back, changed, as it is."""
    read = await rpc.call("settings.get")
    read["settings"]["events"]["keep_files"] = 9
    body = await rpc.call("settings.update", read)
    assert body["changed"] == ["events.keep_files"]


async def test_change_takes_effect_without_restart(rpc: XraydClient, daemon: Daemon) -> None:
    """The accessor and the events log see a new value as soon as the update answers."""
    await rpc.call(
        "settings.update", {"events": {"max_file_mb": 3, "keep_files": 2}, "tests": {"timeout_seconds": 60}}
    )
    assert daemon.settings.get("tests", "timeout_seconds") == 60
    assert daemon.events.max_bytes == 3 * 1024 * 1024 and daemon.events.keep == 2


async def test_null_clears_a_nullable_setting(rpc: XraydClient) -> None:
    """null is a value for the nullable keys (public_host, inbound_tag) and for no other."""
    body = await rpc.call("settings.update", {"ui": {"public_host": None}})
    assert body["settings"]["ui"]["public_host"] is None
    err = await _refused(rpc, {"ui": {"timezone": None}})
    assert err.code == 400 and "ui.timezone" in err.message


# --- refusals --------------------------------------------------------------------------------


async def test_unknown_key_is_400_naming_it(rpc: XraydClient, daemon: Daemon) -> None:
    """An unknown section or key is a 400 whose message names it; nothing is written."""
    before = _settings_file(daemon).read_bytes()
    err = await _refused(rpc, {"ui": {"public_hots": "x.example"}})
    assert err.code == 400 and err.error == "invalid_settings"
    assert "ui.public_hots" in err.message and "public_host" in err.message  # names the known ones
    err = await _refused(rpc, {"uii": {"timezone": "local"}})
    known = ", ".join(SCHEMA)
    assert "uii" in err.message and err.data["problems"] == [f"uii: unknown section (known: {known})"]
    assert _settings_file(daemon).read_bytes() == before


async def test_one_bad_key_refuses_the_whole_patch(rpc: XraydClient) -> None:
    """A patch with a good key and a bad one changes nothing: it is all or nothing."""
    await _refused(rpc, {"backups": {"keep": 3}, "live": {"window_seconds": "60"}})
    assert (await rpc.call("settings.get"))["settings"]["backups"]["keep"] == 50


WRONG_VALUES: dict[str, list[Any]] = {
    "ui.public_host": [
        "",
        "/etc/passwd",
        "../../etc/shadow",
        "file:///etc/passwd",
        "host name",
        "-lead.example",
        "a" * 64 + ".example",
        "x." * 127 + "x",
        "пример.рф",
        "exa\u200bmple.com",
        "example.com\n",
        "[::1]:443",
        80,
        ["a.example"],
    ],
    "ui.timezone": [
        "",
        "Mars/Olympus",
        "../../../etc/passwd",
        "/etc/localtime",
        "Europe/../../etc/passwd",
        "Еurope/Moscow",  # the first letter is Cyrillic
        "europe/moscow",
        0,
        None,
    ],
    "xray.inbound_tag": ["", "a" * 129, "tag\x00", "\ud800", "bidi\u202eflip", "line\u2028break", "tab\t", 1],
    "xray.revoke": ["RESTART", "kill", "", None, True, ["restart"]],
    "live.window_seconds": [29, 3601, -1, 60.0, "60", True, None, 10**40, float("nan"), float("inf")],
    "live.retention_hours": [0, 169, 1.5],
    "collector.schedule": [
        "",
        "* * * *",
        "* * * * * *",
        "60 0 * * *",
        "0 24 * * *",
        "0 0 0 * *",
        "0 0 * 13 *",
        "0 0 * * 8",
        "*/0 * * * *",
        "5-1 * * * *",
        "17  0 * * *",
        "17\t0 * * *",
        "17 0 * * *\n* * * * * root /bin/sh",
        "١٧ 0 * * *",  # Arabic-Indic digits are digits to \\d, not to cron
        "１７ 0 * * *",
        "@daily",
        "17 0 * * mon",
        17,
    ],
    "backups.keep": [0, 1001, "50"],
    "events.keep_files": [0, 101],
    "events.max_file_mb": [0, 1025],
    "tests.timeout_seconds": [9, 541, 300.5],
}


@pytest.mark.parametrize(
    ("key", "value"), [(k, v) for k, values in WRONG_VALUES.items() for v in values], ids=repr
)
def test_wrong_values_are_refused(key: str, value: Any) -> None:
    """Each wrong type, out-of-range number, bad enum or hostile string is named and refused."""
    section, name = key.split(".")
    [problem] = validate_patch({section: {name: value}})
    assert problem.startswith(f"{key}: must ")


GOOD_VALUES: dict[str, list[Any]] = {
    "ui.public_host": ["vpn.example.org", "xn--e1afmkfd.xn--p1ai", "203.0.113.7", "[2001:db8::1]", "a"],
    "ui.timezone": ["local", "UTC", "Europe/Moscow", "America/Argentina/Buenos_Aires", "Etc/GMT+3"],
    "xray.inbound_tag": ["vless-reality", "VLESS TCP REALITY", "inbound-0.0.0.0:443", "🚀 главный", None],
    "collector.schedule": [
        "17 0 * * *",
        "*/15 * * * *",
        "0 3 * * 1-5",
        "0,30 */2 1-31/2 * 7",
        "59 23 31 12 0",
    ],
}


@pytest.mark.parametrize(
    ("key", "value"), [(k, v) for k, values in GOOD_VALUES.items() for v in values], ids=repr
)
def test_good_values_are_accepted(key: str, value: Any) -> None:
    """Real host names, zones, tags in any script and cron schedules pass."""
    section, name = key.split(".")
    assert validate_patch({section: {name: value}}) == []


async def test_paths_and_programs_are_never_settings(rpc: XraydClient) -> None:
    """Every daemon-config key (paths, programs, units) is refused as a section and as a key."""
    for field in dataclasses.fields(Config):
        for patch in ({field.name: "/tmp/evil"}, {"xray": {field.name: "/tmp/evil"}}):
            err = await _refused(rpc, patch)
            assert err.code == 400 and field.name in err.message
    assert not set(SCHEMA) & {f.name for f in dataclasses.fields(Config)}


@pytest.mark.parametrize("patch", [None, [], "ui", 5, {"ui": None}, {"ui": []}, {"ui": "local"}])
def test_patch_of_the_wrong_shape(patch: Any) -> None:
    """A patch that is not an object of objects is refused with a sentence."""
    assert validate_patch(patch)


async def test_non_object_sections_over_rpc(rpc: XraydClient) -> None:
    """A section given as a string, list or null is a 400 that names the section."""
    for value in ("local", [1], None, 3):
        err = await _refused(rpc, {"ui": value})
        assert err.message == "Invalid settings: ui: must be an object."


async def test_huge_and_numerous_values_are_refused_briefly(rpc: XraydClient) -> None:
    """A megabyte-long value, thousands of unknown keys or deep nesting get a short 400."""
    err = await _refused(rpc, {"ui": {"public_host": "a" * 900_000}})
    assert len(err.message) < 500
    err = await _refused(rpc, {"ui": {f"k{i}": i for i in range(20_000)}})
    assert len(err.data["problems"]) == MAX_PROBLEMS
    assert err.message.endswith(f"and {20_000 - MAX_PROBLEMS} more.") and len(err.message) < 5_000
    nested: Any = "x"
    for _ in range(50):
        nested = {"a": nested}
    err = await _refused(rpc, {"xray": {"inbound_tag": nested}})
    assert "xray.inbound_tag" in err.message


async def test_odd_unicode_keys_are_echoed_escaped(rpc: XraydClient, daemon: Daemon) -> None:
    """An unknown key with a lone surrogate or a bidi override is shown escaped, never raw."""
    for key, shown in (("a\u202eb", "a\\u202eb"), ("k" * 1000, "k" * 64 + "…")):
        err = await _refused(rpc, {"ui": {key: 1}})
        assert f"ui.{shown}: unknown setting" in err.message
    # our client will not even encode a lone surrogate; JSON on the wire may carry one
    reader, writer = await asyncio.open_unix_connection(str(daemon.config.socket))
    writer.write(b'{"jsonrpc":"2.0","method":"settings.update","params":{"ui":{"\\ud800x":1}},"id":1}\n')
    reply = json.loads(await reader.readline())
    writer.close()
    assert "ui.\\ud800x: unknown setting" in reply["error"]["message"]
    reply["error"]["message"].encode("utf-8")  # a sentence the gateway can send


async def test_a_value_over_the_line_limit_is_refused(rpc: XraydClient, daemon: Daemon) -> None:
    """A patch over the socket's 1 MiB line limit is refused and the settings stay as they were."""
    before = _settings_file(daemon).read_bytes()
    with pytest.raises((RpcError, DaemonUnavailable)):
        await rpc.call("settings.update", {"ui": {"public_host": "a" * (2 * 1024 * 1024)}})
    assert _settings_file(daemon).read_bytes() == before


# --- concurrency and crashes -----------------------------------------------------------------


async def test_concurrent_updates_all_land(rpc: XraydClient, daemon: Daemon) -> None:
    """Sixty updates at once to two keys: every one is applied, saved and recorded, none lost."""
    windows = [rpc.call("settings.update", {"live": {"window_seconds": 100 + i}}) for i in range(30)]
    keeps = [rpc.call("settings.update", {"backups": {"keep": 200 + i}}) for i in range(30)]
    answers = await asyncio.gather(*windows, *keeps)
    assert all(a["changed"] for a in answers)
    events = (await rpc.call("events.list", {"type": "settings_updated", "limit": 1000}))["events"]
    assert len(events) == 60
    on_disk = json.loads(_settings_file(daemon).read_text())
    assert on_disk == daemon.settings.snapshot() == (await rpc.call("settings.get"))["settings"]
    last_window = events[[e["data"]["changed"] for e in events].index(["live.window_seconds"])]
    last_keep = events[[e["data"]["changed"] for e in events].index(["backups.keep"])]
    assert on_disk["live"]["window_seconds"] == last_window["data"]["changes"]["live.window_seconds"]["to"]
    assert on_disk["backups"]["keep"] == last_keep["data"]["changes"]["backups.keep"]["to"]


def test_a_crash_mid_write_leaves_the_old_or_the_new_file(sandbox: Sandbox) -> None:
    """xrayd killed (SIGKILL) while updating settings leaves a whole file, and starts again."""
    path = sandbox.config.data_dir / "settings.json"
    rng = random.Random(7)
    sent = {Settings(path).snapshot()["live"]["window_seconds"]}
    for _ in range(3):
        proc = spawn_daemon(sandbox.config_file, sandbox.config.socket)
        try:
            with SyncXraydClient(str(sandbox.config.socket)) as client:
                for _ in range(rng.randint(5, 40)):
                    value = rng.randint(30, 3600)
                    sent.add(value)
                    client.call("settings.update", {"live": {"window_seconds": value}})
            burst = [rng.randint(30, 3600) for _ in range(50)]  # in flight when the kill lands
            sent.update(burst)
            with socket.socket(socket.AF_UNIX) as raw:
                raw.connect(str(sandbox.config.socket))
                raw.sendall(
                    b"".join(
                        encode_request("settings.update", {"live": {"window_seconds": v}}, None)
                        for v in burst
                    )
                )
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        finally:
            stop_process(proc)
        stored = json.loads(path.read_text())
        assert validate_patch(stored) == [] and stored["live"]["window_seconds"] in sent
    leftovers = list(path.parent.glob(".settings.json.*"))
    proc = spawn_daemon(sandbox.config_file, sandbox.config.socket)  # it starts on what is there
    stop_process(proc)
    assert not [p for p in leftovers if p.exists()]


def test_load_removes_only_its_own_stale_temp_files(tmp_path: Path) -> None:
    """Temp files a crash left behind are removed at load; other files are not touched."""
    path = tmp_path / "settings.json"
    path.write_text('{"backups": {"keep": 3}}')
    stale = tmp_path / ".settings.json.k2j3.tmp"
    stale.write_text('{"half": ')
    other = tmp_path / ".events.jsonl.x.tmp"
    other.write_text("")
    settings = Settings(path)
    settings.load()
    assert settings.get("backups", "keep") == 3
    assert not stale.exists() and other.exists()


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('{"backups": {"kep": 3}}', "backups.kep"),
        ('{"backups": {"keep": "3"}}', "backups.keep"),
        ('{"backups": ', "cannot read settings"),
        ("[]", "object of sections"),
    ],
)
def test_a_broken_settings_file_stops_the_start(sandbox: Sandbox, text: str, named: str) -> None:
    """xrayd refuses to start (exit 4) on a settings file it cannot trust, naming the problem."""
    (sandbox.config.data_dir / "settings.json").write_text(text)
    proc = subprocess.run(
        [sys.executable, "-m", "xrayd", "serve", "--config", str(sandbox.config_file)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 4 and named in proc.stderr


async def test_a_failing_listener_does_not_undo_a_saved_change(tmp_path: Path, caplog: Any) -> None:
    """A listener that raises is logged; the update is still saved and answered."""
    settings = Settings(tmp_path / "settings.json")

    def broken(values: dict[str, Any]) -> None:
        raise RuntimeError("boom")

    settings.on_change(broken)
    values, changes = await settings.update({"backups": {"keep": 4}})
    assert values["backups"]["keep"] == 4 and list(changes) == ["backups.keep"]
    assert json.loads((tmp_path / "settings.json").read_text())["backups"]["keep"] == 4
    assert "a settings listener failed" in caplog.text


# --- through the gateway ---------------------------------------------------------------------


async def test_settings_through_the_gateway(api: TestClient) -> None:
    """GET and POST /api/settings: a good patch is 200, a wrong type is a 400 naming the key."""
    resp = await api.get("/api/settings")
    assert resp.status == 200 and (await resp.json())["settings"]["backups"]["keep"] == 50
    resp = await api.post("/api/settings", json={"backups": {"keep": 12}})
    assert resp.status == 200 and (await resp.json())["settings"]["backups"]["keep"] == 12
    resp = await api.post("/api/settings", json={"backups": {"keep": "12"}})
    body = await resp.json()
    assert resp.status == 400 and body["error"] == "invalid_settings" and "backups.keep" in body["message"]


# --- any JSON at all -------------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
_section_patch = st.dictionaries(
    st.sampled_from([*SCHEMA, "bogus"]),
    st.one_of(
        _json,
        st.dictionaries(
            st.sampled_from(sorted({k for f in SCHEMA.values() for k in f} | {"x"})),
            _json
            | st.sampled_from([v for vs in GOOD_VALUES.values() for v in vs] + [1, 30, 50, 540, "restart"]),
        ),
    ),
    max_size=4,
)

_valid_patch = st.fixed_dictionaries(
    {},
    optional={
        section: st.fixed_dictionaries(
            {},
            optional={
                key: st.sampled_from(GOOD_VALUES.get(f"{section}.{key}", [field.default]))
                for key, field in fields.items()
            },
        )
        for section, fields in SCHEMA.items()
    },
)


@hypothesis_settings(max_examples=300, deadline=None)
@given(patch=_json | _section_patch | _valid_patch)
def test_any_json_is_either_refused_or_stored_whole(patch: Any) -> None:
    """For any JSON patch, the check answers (never raises); what passes is saved and reloads equal."""
    problems = validate_patch(patch)
    assert isinstance(problems, list)
    if problems:
        return
    with tempfile.TemporaryDirectory() as tmp:
        store = Settings(Path(tmp) / "settings.json")
        values, _ = asyncio.run(store.update(patch))
        again = Settings(Path(tmp) / "settings.json")
        again.load()
    assert again.snapshot() == values == store.snapshot()
