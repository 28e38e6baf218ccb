"""Header, settings and self-test calls, each against a baseline measured beside it.

(1) Round trips over xrayd's socket of system.status, system.resources, system.ports,
    settings.get and settings.update, as ratios of system.ping (the floor of a call).
(2) A self-test run of one small file through SelfTests.run (JUnit report written, read
    back and parsed) against a bare `python -m pytest` of the same file.

    .venv/bin/python bench/header.py [--n 300] [--runs 10]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.rpc import measure
from client.aio import XraydClient
from xrayd import proc
from xrayd.sandbox import builder
from xrayd.sandbox.demo import start_stack, stop_stack
from xrayd.selftest import SelfTests


async def timed_runs(runs: int, once: Callable[[], Awaitable[object]]) -> list[float]:
    """`runs` timed calls after one untimed warm-up (a pytest run takes a second, not 200 µs)."""
    await once()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        await once()
        times.append(time.perf_counter() - t0)
    return times


def p50(times: list[float]) -> float:
    return statistics.median(times) * 1e3


def row(name: str, times: list[float], base: float) -> None:
    q = statistics.quantiles(times, n=100) if len(times) >= 2 else [times[0]] * 99
    print(f"{name:<36} p50 {p50(times):9.3f} ms   p99 {q[98] * 1e3:9.3f} ms   x{p50(times) / base:7.1f}")


async def round_trips(n: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="xr-bench-", dir="/tmp"))
    port = builder.free_port()
    sandbox = builder.build(root, gateway_port=port)
    procs = start_stack(sandbox, port)
    try:
        async with XraydClient(str(sandbox.config.socket)) as rpc:
            ping = await measure(n, lambda: rpc.call("system.ping"))
            counter = iter(range(10**9))
            rows = {
                "system.status (systemctl)": await measure(n // 10 or 2, lambda: rpc.call("system.status")),
                "system.resources (psutil)": await measure(n, lambda: rpc.call("system.resources")),
                "system.ports (3 TCP connects)": await measure(n, lambda: rpc.call("system.ports")),
                "settings.get": await measure(n, lambda: rpc.call("settings.get")),
                "settings.update (write+fsync+event)": await measure(
                    n,
                    lambda: rpc.call(
                        "settings.update", {"live": {"window_seconds": 30 + next(counter) % 3000}}
                    ),
                ),
            }
    finally:
        stop_stack(procs)
        shutil.rmtree(root, ignore_errors=True)
    print(f"(1) round trips over the socket, n={n} each (system.status n={n // 10 or 2}: it runs a program)")
    base = p50(ping)
    row("system.ping (baseline)", ping, base)
    for name, times in rows.items():
        row(name, times, base)


async def test_runs(runs: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="xr-bench-t-", dir="/tmp"))
    try:
        (folder / "test_small.py").write_text(
            "".join(f"def test_{i}():\n    assert {i} == {i}\n" for i in range(50))
        )
        tests = SelfTests(folder, python=sys.executable, timeout=lambda: 120, run_as=lambda: None)
        argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder / "test_small.py")]

        async def bare() -> None:
            done = await proc.run(argv, timeout=120, cwd=folder)
            assert done.ok, done.stdout

        async def ours() -> None:
            result = await tests.run()
            assert result["summary"]["passed"] == 50, result

        baseline = await timed_runs(runs, bare)
        selftest = await timed_runs(runs, ours)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"(2) one file of 50 tests, {runs} runs each")
    base = p50(baseline)
    row("python -m pytest (baseline)", baseline, base)
    row("SelfTests.run (JUnit, parsed)", selftest, base)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--runs", type=int, default=10)
    args = p.parse_args()
    asyncio.run(round_trips(args.n))
    asyncio.run(test_runs(args.runs))


if __name__ == "__main__":
    main()
