"""The socket server through a real Unix socket: framing, pipelining, batches, limits, peers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import as_other_user, spawn_daemon, start_daemon, stop_process

from xrayd.daemon import Daemon
from xrayd.rpc.server import MAX_LINE, SocketInUse
from xrayd.sandbox.builder import Sandbox


async def _slow_daemon(sandbox: Sandbox) -> tuple[Daemon, asyncio.Task[None], asyncio.Event]:
    """A daemon with an extra `debug.sleep` method; the event is set when a sleep starts."""
    d = Daemon(sandbox.config, shutdown_grace=5)
    started = asyncio.Event()

    async def sleep(seconds: float) -> dict[str, Any]:
        started.set()
        await asyncio.sleep(seconds)
        return {"slept": seconds}

    d.register("debug.sleep", sleep)
    return d, await start_daemon(d), started


async def _exchange(path: Path, payload: bytes, replies: int = 1) -> list[Any]:
    reader, writer = await asyncio.open_unix_connection(str(path), limit=64 * MAX_LINE)
    writer.write(payload)
    await writer.drain()
    out = [json.loads(await reader.readline()) for _ in range(replies)]
    writer.close()
    return out


def _req(method: str, id: Any = 1, **params: Any) -> bytes:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": id}
    if params:
        msg["params"] = params
    return json.dumps(msg).encode() + b"\n"


async def test_one_request_one_line(daemon: Daemon) -> None:
    """A request line gets one response line with the same id."""
    [reply] = await _exchange(daemon.config.socket, _req("system.ping", id="abc"))
    assert reply["id"] == "abc" and reply["result"]["message"] == "pong"


async def test_garbage_gets_parse_error_and_connection_lives(daemon: Daemon) -> None:
    """Malformed JSON and invalid UTF-8 get -32700; the next request on the line still works."""
    replies = await _exchange(daemon.config.socket, b"{nope\n\xff\xfe\n" + _req("system.ping", 7), 3)
    assert [r.get("error", {}).get("code") for r in replies[:2]] == [-32700, -32700]
    assert replies[2]["id"] == 7 and "result" in replies[2]


async def test_unknown_method_and_bad_params(daemon: Daemon) -> None:
    """An unknown method gets -32601; a wrong parameter name gets -32602 with a sentence."""
    a, b = await _exchange(daemon.config.socket, _req("no.such", 1) + _req("events.list", 2, bogus=1), 2)
    by_id = {r["id"]: r["error"] for r in (a, b)}
    assert by_id[1]["code"] == -32601 and by_id[1]["data"]["error"] == "method_not_found"
    assert by_id[2]["code"] == -32602 and "bogus" in by_id[2]["data"]["detail"]


async def test_positional_params_refused(daemon: Daemon) -> None:
    """Params are always named: a list of params is -32602."""
    line = json.dumps({"jsonrpc": "2.0", "method": "events.list", "params": [5], "id": 1})
    [reply] = await _exchange(daemon.config.socket, line.encode() + b"\n")
    assert reply["error"]["code"] == -32602


async def test_batch_answers_every_request(daemon: Daemon) -> None:
    """A batch gets one array holding each request's answer; notifications get none."""
    batch = [
        {"jsonrpc": "2.0", "method": "system.ping", "id": 1},
        {"jsonrpc": "2.0", "method": "no.such", "id": 2},
        {"jsonrpc": "2.0", "method": "system.ping"},
    ]
    [reply] = await _exchange(daemon.config.socket, json.dumps(batch).encode() + b"\n")
    assert sorted(r["id"] for r in reply) == [1, 2]


async def test_oversized_line_closes_connection(daemon: Daemon) -> None:
    """A line over 1 MiB gets an error and the connection is closed; the daemon lives on."""
    reader, writer = await asyncio.open_unix_connection(str(daemon.config.socket))
    writer.write(b'{"jsonrpc":"2.0","method":"system.ping","params":{"x":"' + b"a" * (MAX_LINE + 10))
    reply = json.loads(await reader.readline())
    assert reply["error"]["data"]["error"] == "request_too_large"
    assert await reader.read() == b""  # closed
    writer.close()
    [ok] = await _exchange(daemon.config.socket, _req("system.ping"))
    assert "result" in ok


async def test_pipelined_calls_answer_out_of_order(sandbox: Sandbox) -> None:
    """A slow call does not hold up a fast one sent after it on the same connection."""
    d, task, _ = await _slow_daemon(sandbox)
    try:
        reader, writer = await asyncio.open_unix_connection(str(sandbox.config.socket))
        writer.write(_req("debug.sleep", 1, seconds=0.5) + _req("system.ping", 2))
        await writer.drain()
        first = json.loads(await reader.readline())
        second = json.loads(await reader.readline())
        assert (first["id"], second["id"]) == (2, 1)
        writer.close()
    finally:
        d.request_stop()
        await task


async def test_stuck_client_does_not_block_others(daemon: Daemon) -> None:
    """A client that sends half a line and stalls does not delay another client."""
    _, stuck = await asyncio.open_unix_connection(str(daemon.config.socket))
    stuck.write(b'{"jsonrpc": "2.0", "meth')
    await stuck.drain()
    [reply] = await _exchange(daemon.config.socket, _req("system.ping"))
    assert "result" in reply
    stuck.close()


async def test_many_connections_at_once(daemon: Daemon) -> None:
    """Fifty connections, each pipelining twenty calls, all get their own answers."""

    async def one(n: int) -> list[int]:
        payload = b"".join(_req("system.ping", n * 100 + i) for i in range(20))
        return sorted(r["id"] for r in await _exchange(daemon.config.socket, payload, 20))

    results = await asyncio.gather(*(one(n) for n in range(50)))
    assert results == [[n * 100 + i for i in range(20)] for n in range(50)]


async def test_stop_finishes_call_in_flight_and_removes_socket(sandbox: Sandbox) -> None:
    """SIGTERM's handler: the call in flight still gets its answer, then the socket goes."""
    d, task, started = await _slow_daemon(sandbox)
    reader, writer = await asyncio.open_unix_connection(str(sandbox.config.socket))
    writer.write(_req("debug.sleep", 9, seconds=0.3))
    await writer.drain()
    await started.wait()
    d.handle_signal(signal.SIGTERM)
    reply = json.loads(await reader.readline())
    assert reply == {"jsonrpc": "2.0", "result": {"slept": 0.3}, "id": 9}
    await task
    assert not sandbox.config.socket.exists()
    writer.close()


async def test_stop_cancels_calls_past_the_grace(sandbox: Sandbox) -> None:
    """A call that outlives the shutdown grace is cancelled and the daemon still stops."""
    d = Daemon(sandbox.config, shutdown_grace=0.2)
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    d.register("debug.forever", forever)
    task = await start_daemon(d)
    reader, writer = await asyncio.open_unix_connection(str(sandbox.config.socket))
    writer.write(_req("debug.forever"))
    await writer.drain()
    await started.wait()
    d.request_stop()
    await asyncio.wait_for(task, 10)
    assert await reader.read() == b""
    writer.close()


def test_sigterm_to_process_exits_cleanly(sandbox: Sandbox) -> None:
    """A real SIGTERM to the daemon process: exit code 0 and no socket left behind."""
    proc = spawn_daemon(sandbox.config_file, sandbox.config.socket)
    assert stop_process(proc) == 0
    assert not sandbox.config.socket.exists()


def test_stale_socket_is_replaced(sandbox: Sandbox) -> None:
    """A socket file left by a crash (nobody listening) does not stop the next start."""
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(sandbox.config.socket))
    stale.close()  # the file stays, nobody listens: what kill -9 leaves
    proc = spawn_daemon(sandbox.config_file, sandbox.config.socket)
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(sandbox.config.socket))
            s.sendall(_req("system.ping"))
            assert b"pong" in s.recv(4096)
    finally:
        stop_process(proc)


async def test_live_socket_refuses_second_daemon(daemon: Daemon, sandbox: Sandbox) -> None:
    """A second daemon on a socket a live one answers on fails with a clear message."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "xrayd",
        "serve",
        "--config",
        str(sandbox.config_file),
        stderr=subprocess.PIPE,
    )
    _, err = await proc.communicate()
    assert proc.returncode == 4
    assert b"another daemon is listening" in err
    assert sandbox.config.socket.is_socket()


def test_socket_mode_and_group(daemon_process: subprocess.Popen[bytes], sandbox: Sandbox) -> None:
    """The socket is made with the configured mode and group."""
    st = os.stat(sandbox.config.socket)
    assert st.st_mode & 0o777 == 0o660
    import grp

    assert grp.getgrgid(st.st_gid).gr_name == sandbox.config.socket_group


def test_socket_path_that_is_a_file_refuses_start(sandbox: Sandbox) -> None:
    """A regular file where the socket should be is never removed."""
    sandbox.config.socket.write_text("precious")
    from xrayd.rpc.server import _clear_stale

    with pytest.raises(SocketInUse, match="not a socket"):
        _clear_stale(sandbox.config.socket)
    assert sandbox.config.socket.read_text() == "precious"


def test_peer_outside_group_is_refused(daemon_process: subprocess.Popen[bytes], sandbox: Sandbox) -> None:
    """A client under another uid, not in the socket group, is closed before any answer."""
    other = as_other_user()
    if other is None:
        pytest.skip("needs root to run a client as another user")
    os.chmod(sandbox.config.socket, 0o666)  # let the file mode pass, so only SO_PEERCRED can refuse
    os.chmod(sandbox.config.socket.parent, 0o755)
    for parent in sandbox.config.socket.parents:
        if parent == Path("/tmp"):
            break
        os.chmod(parent, 0o755)
    code = (
        "import socket,sys\n"
        "s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
        "try:\n"  # the daemon may close before the request is even written: EPIPE
        '    s.sendall(b\'{"jsonrpc":"2.0","method":"system.ping","id":1}\\n\')\n'
        "    data=s.recv(4096)\n"
        "except (ConnectionResetError, BrokenPipeError):\n    data=b''\n"
        "print(repr(data))\n"
    )
    python = "/usr/bin/python3"  # the venv's may sit where `nobody` cannot read it
    if not os.access(python, os.X_OK):
        pytest.skip("needs /usr/bin/python3 to run a client as another user")
    out = subprocess.run(
        [python, "-c", code, str(sandbox.config.socket)],
        user=other[0],
        group=other[1],
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    assert out.stdout.strip() == "b''"


async def test_before_restart_hooks_run_and_failures_do_not_block(sandbox: Sandbox) -> None:
    """Every before-restart hook runs in order; one that fails does not stop the next."""
    d = Daemon(sandbox.config)
    seen: list[str] = []

    async def first() -> None:
        seen.append("first")
        raise RuntimeError("counters unreachable")

    async def second() -> None:
        seen.append("second")

    d.before_xray_restart(first)
    d.before_xray_restart(second)
    await d.prepare_xray_restart()
    assert seen == ["first", "second"]


async def test_reply_with_a_lone_surrogate_is_answered(sandbox: Sandbox) -> None:
    """A result holding a lone surrogate (valid in JSON input) is sent escaped, not dropped."""
    d = Daemon(sandbox.config, shutdown_grace=5)

    async def echo(value: str) -> dict[str, Any]:
        return {"value": value}

    d.register("debug.echo", echo)
    task = await start_daemon(d)
    try:
        line = b'{"jsonrpc":"2.0","method":"debug.echo","params":{"value":"a\\ud800b"},"id":1}\n'
        [reply] = await _exchange(sandbox.config.socket, line + _req("system.ping", 2))
    finally:
        d.request_stop()
        await task
    assert reply == {"jsonrpc": "2.0", "result": {"value": "a\ud800b"}, "id": 1}
