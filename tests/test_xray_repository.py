"""The config repository: crash safety, hand edits during a write, strays, and xray's output."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import spawn_daemon, start_daemon
from xray_configs import running

from client.aio import XraydClient
from client.protocol import CallTimeout, DaemonUnavailable, RpcError
from xrayd import atomic, proc
from xrayd.daemon import Daemon
from xrayd.sandbox import builder
from xrayd.sandbox.builder import Sandbox
from xrayd.xray import commands
from xrayd.xray.commands import parse_api


def config_emails(path: Path) -> list[str]:
    doc = json.loads(path.read_text())  # xrayd writes plain JSON: no comment stripping needed
    return [c["email"] for c in doc["inbounds"][0]["settings"]["clients"]]


def strays(sandbox: Sandbox) -> list[str]:
    return sorted(p.name for p in sandbox.config.xray_config.parent.iterdir() if p.name.endswith(".tmp"))


def xray_accepts(sandbox: Sandbox) -> bool:
    argv = [sandbox.config.xray_bin, "run", "-test", "-config", sandbox.config.xray_config]
    return subprocess.run(argv, capture_output=True).returncode == 0


async def _adds(socket: Path, emails: list[str]) -> None:
    """Fire adds until the daemon dies under them."""
    async with XraydClient(str(socket), call_timeout=30) as client:
        await asyncio.gather(
            *(client.call("users.add", {"email": e}) for e in emails), return_exceptions=True
        )


@pytest.mark.slow
async def test_kill_9_mid_write_leaves_the_old_or_the_new_file(short_tmp: Path) -> None:
    """kill -9 of xrayd while it writes, in a loop (once while `xray run -test` checks the staged
    file, then at random moments): config.json is always a whole document Xray accepts, with
    no duplicate and no stranger; the next start removes the stray temp file."""
    initial = [f"u{i}@example.org" for i in range(2000)]
    sandbox = builder.build(short_tmp / "sb", emails=initial, gateway_port=builder.free_port())
    known = set(initial)
    rng = random.Random(7)
    caught_mid_write = 0
    for round_no in range(8):
        daemon = spawn_daemon(sandbox.config_file, sandbox.config.socket)
        assert strays(sandbox) == []  # what the previous kill left is gone
        emails = [f"r{round_no}-{i}@example.org" for i in range(10)]
        known.update(emails)
        adds = asyncio.create_task(_adds(sandbox.config.socket, emails))
        if round_no == 0:  # deterministic: kill while the staged file is being checked
            deadline = time.monotonic() + 20
            while not strays(sandbox) and time.monotonic() < deadline:
                await asyncio.sleep(0.002)
        else:
            await asyncio.sleep(rng.uniform(0.0, 0.8))
        daemon.kill()
        daemon.wait()
        with contextlib.suppress(DaemonUnavailable, CallTimeout):
            await adds
        caught_mid_write += bool(strays(sandbox))
        listed = config_emails(sandbox.config.xray_config)
        assert listed[:2000] == initial
        assert len(set(listed)) == len(listed) and set(listed) <= known
        assert xray_accepts(sandbox)
    assert caught_mid_write >= 1
    final = spawn_daemon(sandbox.config_file, sandbox.config.socket)
    try:
        assert strays(sandbox) == []
    finally:
        final.kill()
        final.wait()


async def test_hand_edit_during_a_write_is_kept(sandbox: Sandbox) -> None:
    """config.json edited by hand while xrayd's candidate is being checked: the write notices,
    re-reads and re-applies, so neither the hand edit nor the new user is lost."""
    real = sandbox.config.xray_bin
    marker = sandbox.root / "edited"
    wrapper = sandbox.root / "bin" / "xray-editing"
    atomic.write_text(
        wrapper,
        f"""#!{sys.executable}
import json, os, sys
if sys.argv[1:2] == ["run"] and not os.path.exists({str(marker)!r}):
    open({str(marker)!r}, "w").close()
    path = {str(sandbox.config.xray_config)!r}
    doc = json.load(open(path))
    doc["inbounds"][0]["settings"]["clients"].append({{"id": "hand-made-id", "email": "hand@x"}})
    open(path, "w").write(json.dumps(doc))
os.execv({str(real)!r}, [{str(real)!r}, *sys.argv[1:]])
""",
        mode=0o755,
    )
    d = Daemon(replace(sandbox.config, xray_bin=wrapper), shutdown_grace=5)
    task = await start_daemon(d)
    try:
        await d.methods["users.add"](email="new@x")
    finally:
        d.request_stop()
        await task
    assert marker.exists()
    assert config_emails(sandbox.config.xray_config)[-2:] == ["hand@x", "new@x"]


async def test_list_reads_the_file_once_per_change(sandbox: Sandbox) -> None:
    """users.list is served from a cache keyed by the file's stat, and sees a hand edit at once."""
    async with running(sandbox) as (_, rpc):
        first = await rpc.call("users.list")
        assert await rpc.call("users.list") == first
        doc = json.loads(sandbox.config.xray_config.read_text())
        doc["inbounds"][0]["settings"]["clients"].pop()
        atomic.write_json(sandbox.config.xray_config, doc)
        assert len((await rpc.call("users.list"))["users"]) == 2


async def test_unreadable_or_broken_config_is_a_clear_error(sandbox: Sandbox) -> None:
    """A missing config is 503 xray_config_unreadable; broken JSON is 422 xray_config_unparsable."""
    async with running(sandbox) as (_, rpc):
        text = sandbox.config.xray_config.read_text()
        sandbox.config.xray_config.write_text(text[:-20])
        with pytest.raises(RpcError) as err:
            await rpc.call("users.list")
        assert (err.value.code, err.value.error) == (422, "xray_config_unparsable")
        assert "line" in err.value.message
        sandbox.config.xray_config.unlink()
        with pytest.raises(RpcError) as err:
            await rpc.call("users.add", {"email": "a@b"})
        assert (err.value.code, err.value.error) == (503, "xray_config_unreadable")


def _done(out: str = "", err: str = "", code: int = 0) -> proc.Completed:
    return proc.Completed(("xray",), code, out, err)


def test_adu_output_is_read_not_the_exit_code() -> None:
    """adu exits 0 when a user fails: the count and `already exists` lines tell what happened."""
    ok = parse_api(
        _done("processing inbound: t\nadd user: a@x\nresult: ok\nAdded 1 user(s) in total.\n"),
        commands._ADDED,
    )
    assert (ok.count, ok.errors, ok.exists, ok.unreachable) == (1, (), frozenset(), False)
    dup = parse_api(
        _done(
            "processing inbound: t\nadd user: A@x\n"
            "rpc error: code = Unknown desc = proxy/vless: User A@x already exists.\n"
            "Added 0 user(s) in total.\n"
        ),
        commands._ADDED,
    )
    assert dup.count == 0 and dup.exists == {"a@x"} and dup.errors == ()
    missing = parse_api(
        _done(
            "processing inbound: t\n"
            "rpc error: code = Unknown desc = app/proxyman/inbound: handler not found: t\n"
            "Added 0 user(s) in total.\n"
        ),
        commands._ADDED,
    )
    assert missing.errors and "handler not found" in missing.reason()


def test_dial_failure_and_rmu_not_found() -> None:
    """`failed to dial` with exit 1 means the API is down; rmu's `not found` is not an error."""
    down = parse_api(_done(err="failed to dial 127.0.0.1:10085\n", code=1), commands._REMOVED)
    assert down.unreachable and "failed to dial" in down.reason()
    gone = parse_api(
        _done(
            "remove user: b@x\nrpc error: code = Unknown desc = proxy/vless: User b@x not found.\n"
            "Removed 0 user(s) in total.\n"
        ),
        commands._REMOVED,
    )
    assert gone.missing == {"b@x"} and gone.errors == () and gone.count == 0
    odd = parse_api(_done(err="panic: something\n", code=2), commands._REMOVED)
    assert not odd.unreachable and odd.errors == ("panic: something",)


async def test_a_symlinked_config_stays_a_symlink(sandbox: Sandbox) -> None:
    """When config.json is a symlink, writes replace the file it points to, not the link."""
    real = sandbox.root / "etc" / "real-config.json"
    sandbox.config.xray_config.rename(real)
    sandbox.config.xray_config.symlink_to(real)
    async with running(sandbox) as (_, rpc):
        await rpc.call("users.add", {"email": "linked@x"})
    assert sandbox.config.xray_config.is_symlink()
    assert config_emails(real)[-1] == "linked@x"
