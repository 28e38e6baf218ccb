"""Structured logs: the JSON line format, and xrayd writing the request id it was given."""

from __future__ import annotations

import io
import json
import logging
import signal

from conftest import spawn_daemon

from client import jsonlog
from client.sync import SyncXraydClient
from xrayd.sandbox.builder import Sandbox


def test_a_record_is_one_json_line_with_context_and_extras() -> None:
    """ts, level, logger, msg, the context's non-null fields, extras and the traceback."""
    stream = io.StringIO()
    logger = logging.getLogger("xr.test.jsonlog")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(jsonlog.JsonFormatter(lambda: {"request_id": "r1", "actor": None}))
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("hello %s\nworld", "you", extra={"status": 200})
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["ts"].endswith("Z") and first["level"] == "warning" and first["logger"] == "xr.test.jsonlog"
    assert first["msg"] == "hello you\nworld" and first["request_id"] == "r1" and first["status"] == 200
    assert "actor" not in first
    assert second["level"] == "error" and "RuntimeError: boom" in second["exc"]


def test_xrayd_logs_each_call_with_its_request_id(sandbox: Sandbox) -> None:
    """A real xrayd writes JSON lines on stderr; a call's line names its method, actor and id."""
    proc = spawn_daemon(sandbox.config_file, sandbox.config.socket)
    try:
        with SyncXraydClient(str(sandbox.config.socket)) as client:
            client.call("events.list", {"limit": 1, "_rid": "req-42", "_actor": "token:ci"})
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    log_text = sandbox.config_file.with_name("xrayd-test.log").read_text()
    lines = [json.loads(line) for line in log_text.splitlines()]
    calls = [ln for ln in lines if ln.get("request_id") == "req-42"]
    assert calls and calls[0]["method"] == "events.list" and calls[0]["actor"] == "token:ci"
    assert calls[0]["outcome"] == "ok" and calls[0]["ms"] >= 0


def test_one_request_id_in_both_logs(short_tmp) -> None:  # type: ignore[no-untyped-def]
    """The gateway's X-Request-Id is in its JSON access log and in xrayd's line for the call."""
    import urllib.request

    from xrayd.sandbox import builder
    from xrayd.sandbox.demo import start_stack, stop_stack

    port = builder.free_port()
    sandbox = builder.build(short_tmp / "sb", gateway_port=port)
    procs = start_stack(sandbox, port)
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/events?limit=1",
            headers={"Authorization": f"Bearer {sandbox.token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            rid = answer.headers["X-Request-Id"]
    finally:
        stop_stack(procs)
    logs = {
        name: (sandbox.root / "log" / f"{name}.log").read_text().splitlines() for name in ("gateway", "xrayd")
    }
    access = [json.loads(ln) for ln in logs["gateway"] if rid in ln]
    assert access and access[0]["path"] == "/api/events" and access[0]["status"] == 200
    assert access[0]["credential"] == "token:file"
    calls = [json.loads(ln) for ln in logs["xrayd"] if rid in ln]
    assert calls and calls[0]["method"] == "events.list" and calls[0]["actor"] == "token:file"
