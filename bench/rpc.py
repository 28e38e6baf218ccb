"""RPC round trips: (a) client → socket, (b) HTTP → gateway → socket, (c) a bare aiohttp floor.

Prints round trips per second and p50/p99 latency for each, and the ratios (b)/(c) and
(a)/(c). All three run side by side in this one script against the same sandbox.
Target: the gateway path (b) within 2.5x of the floor (c) at p50.

    .venv/bin/python bench/rpc.py [--n 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import psutil
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from client.aio import XraydClient
from xrayd.sandbox import builder
from xrayd.sandbox.demo import start_stack, stop_stack


async def measure(n: int, once: Callable[[], Awaitable[object]]) -> list[float]:
    for _ in range(min(200, n)):
        await once()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        await once()
        times.append(time.perf_counter() - t0)
    return times


def summary(name: str, times: list[float]) -> dict[str, float]:
    q = statistics.quantiles(times, n=100)
    row = {"rps": len(times) / sum(times), "p50": q[49] * 1e3, "p99": q[98] * 1e3}
    print(f"{name:<28} {row['rps']:>9.0f} rt/s   p50 {row['p50']:.3f} ms   p99 {row['p99']:.3f} ms")
    return row


async def run(n: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="xr-bench-", dir="/tmp"))
    port = builder.free_port()
    sandbox = builder.build(root, gateway_port=port)
    procs = start_stack(sandbox, port)
    try:
        auth = {"Authorization": f"Bearer {sandbox.token}"}
        async with XraydClient(str(sandbox.config.socket)) as rpc:
            body = await rpc.call("settings.get")
            direct = await measure(n, lambda: rpc.call("settings.get"))

        floor_port = builder.free_port()
        payload = root / "floor.json"
        payload.write_text(json.dumps(body, separators=(",", ":")))
        floor_cmd = [sys.executable, __file__, "--serve-floor", str(floor_port), str(payload)]
        floor_proc = subprocess.Popen(floor_cmd)
        procs.append(floor_proc)
        await wait_port(floor_port)

        async with aiohttp.ClientSession(headers=auth) as http:

            async def get(url: str) -> None:
                async with http.get(url) as resp:
                    assert resp.status == 200, resp.status
                    await resp.read()

            daemon_proc, gateway_proc = psutil.Process(procs[0].pid), psutil.Process(procs[1].pid)
            floor_ps = psutil.Process(floor_proc.pid)
            cpu_before = [cpu_seconds(p) for p in (daemon_proc, gateway_proc, floor_ps)]
            # interleaved sample by sample, so a change in the machine's load hits both alike
            gateway, floor = await measure_pair(
                n,
                lambda: get(f"http://127.0.0.1:{port}/api/settings"),
                lambda: get(f"http://127.0.0.1:{floor_port}/api/settings"),
            )
            cpu = [
                cpu_seconds(p) - b
                for p, b in zip((daemon_proc, gateway_proc, floor_ps), cpu_before, strict=True)
            ]
    finally:
        stop_stack(procs)
    print(f"settings.get, {n} sequential round trips each, after a warm-up")
    a = summary("(a) client -> xrayd", direct)
    b = summary("(b) http -> gateway -> xrayd", gateway)
    c = summary("(c) bare aiohttp (floor)", floor)
    print(f"p50 ratio (b)/(c) = {b['p50'] / c['p50']:.2f}   (target <= 2.5)")
    print(f"p50 ratio (a)/(c) = {a['p50'] / c['p50']:.2f}")
    per = [1e6 * c / n for c in cpu]
    print(
        f"CPU per request: gateway {per[1]:.0f} us + xrayd {per[0]:.0f} us, floor {per[2]:.0f} us "
        f"(ratio gateway alone / floor = {per[1] / per[2]:.2f}); the rest of (b)'s latency is the "
        "extra hop's wake-ups (two more processes to schedule on this machine's cores)"
    )


def cpu_seconds(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


async def measure_pair(
    n: int, one: Callable[[], Awaitable[object]], other: Callable[[], Awaitable[object]]
) -> tuple[list[float], list[float]]:
    for _ in range(min(200, n)):
        await one()
        await other()
    first, second = [], []
    for _ in range(n):
        for fn, times in ((one, first), (other, second)):
            t0 = time.perf_counter()
            await fn()
            times.append(time.perf_counter() - t0)
    return first, second


async def wait_port(port: int) -> None:
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def serve_floor(port: int, payload_file: str) -> None:
    """The floor: a bare aiohttp handler in its own process, like the gateway's."""
    payload = Path(payload_file).read_text()

    async def bare(request: web.Request) -> web.Response:
        return web.Response(text=payload, content_type="application/json")

    app = web.Application()
    app.router.add_get("/api/settings", bare)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=3000)
    p.add_argument("--serve-floor", nargs=2, metavar=("PORT", "PAYLOAD"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve_floor:
        serve_floor(int(args.serve_floor[0]), args.serve_floor[1])
    else:
        asyncio.run(run(args.n))


if __name__ == "__main__":
    main()
