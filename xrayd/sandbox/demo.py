"""`xrayd demo`: the whole product on a laptop. Build a sandbox, start xrayd and the gateway.

Both run as child processes with the sandbox's config; Ctrl-C (or SIGTERM) stops both.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from xrayd.sandbox.builder import DEMO_USERS, Sandbox, open_or_build
from xrayd.sandbox.traffic import DemoTraffic


def start_stack(sandbox: Sandbox, port: int, *, timeout: float = 20.0) -> list[subprocess.Popen[bytes]]:
    """Start xrayd and the gateway for `sandbox`; return once /api/ping answers."""
    log_dir = sandbox.root / "log"
    with (log_dir / "xrayd.log").open("ab") as log:  # the child keeps its own copy of the fd
        daemon = subprocess.Popen(
            [sys.executable, "-m", "xrayd", "serve", "--config", str(sandbox.config_file)], stderr=log
        )
    gateway_argv = [
        sys.executable,
        "-m",
        "gateway",
        "--socket",
        str(sandbox.config.socket),
        "--listen",
        f"127.0.0.1:{port}",
        "--token-file",
        str(sandbox.token_file),
    ]
    with (log_dir / "gateway.log").open("ab") as log:
        gateway = subprocess.Popen(gateway_argv, stderr=log)
    procs = [daemon, gateway]
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{port}/api/ping"
    while True:
        for proc in procs:
            if proc.poll() is not None:
                stop_stack(procs)
                raise RuntimeError(f"a process exited at start; see {log_dir}/*.log")
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if b'"daemon":{"ok":true}' in answer.read():
                    return procs
        except OSError:
            pass
        if time.monotonic() > deadline:
            stop_stack(procs)
            raise RuntimeError(f"the stack did not come up within {timeout:.0f}s; see {log_dir}/*.log")
        time.sleep(0.1)


def stop_stack(procs: list[subprocess.Popen[bytes]], timeout: float = 15.0) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_demo(root: Path, *, port: int) -> int:
    sandbox = open_or_build(root, gateway_port=port)
    try:
        procs = start_stack(sandbox, port)
    except RuntimeError as exc:
        print(f"xrayd demo: {exc}", file=sys.stderr)
        return 1
    base = f"http://127.0.0.1:{port}"
    print(
        f"""
xray-report demo is running in {sandbox.root}
  URL:    {base}/
  token:  {sandbox.token}
  try:    curl -H 'Authorization: Bearer {sandbox.token}' {base}/api/events
  client: XRAYD_SOCKET={sandbox.config.socket} xrayctl events list
Press Ctrl-C to stop.""",
        flush=True,
    )
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    traffic = DemoTraffic(sandbox.config.access_log, sandbox.state_dir, DEMO_USERS)
    try:
        while not stopping and all(p.poll() is None for p in procs):
            traffic.tick(time.time())
            time.sleep(0.2)
    finally:
        stop_stack(procs)
    print("stopped.")
    return 0 if stopping else 1
