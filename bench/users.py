"""Users with 10,000 of them in config.json: add, delete and list through the gateway, each
measured against its floor in this one script, on one sandbox, interleaved sample by sample
(a floor run, then the real call, and so on), so that a machine whose load drifts shifts both.

- add (HTTP → gateway → xrayd: checks, `xray run -test`, backup, atomic write, `xray api adu`)
  against the floor: json load + append + atomic write + one `xray run -test` of the stand-in.
  Target: add p50 within 1.5x of the floor.
- list (GET /api/users, the body read) against one `json.loads` of config.json. Target: 3x.
- delete with xray.revoke = api_only (rmu only) and = restart (rmu, then a restart that must
  stay active for a second), against the same floor.
- for scale, the stand-in's `xray api adu` of one user: an add is a floor plus one adu, so its
  ratio cannot go below 1 + adu / floor.
- 100 adds sent at once: group commit turns them into a few writes.

    .venv/bin/python bench/users.py [--users 10000] [--n 40]
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
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xrayd import atomic
from xrayd.sandbox import builder
from xrayd.sandbox.demo import start_stack, stop_stack

Step = Callable[[int], Awaitable[object]]


async def paired(n: int, first: Step, second: Step, warm: int = 2) -> tuple[list[float], list[float]]:
    """Run `first` then `second`, n times, timing each; after `warm` untimed rounds."""
    for i in range(warm):
        await first(-1 - i)
        await second(-1 - i)
    times: tuple[list[float], list[float]] = ([], [])
    for i in range(n):
        for step, out in ((first, times[0]), (second, times[1])):
            t0 = time.perf_counter()
            await step(i)
            out.append(time.perf_counter() - t0)
    return times


def summary(name: str, times: list[float]) -> dict[str, float]:
    q = statistics.quantiles(times, n=100)
    row = {"p50": statistics.median(times) * 1e3, "p99": q[98] * 1e3}
    print(f"{name:<46} p50 {row['p50']:9.2f} ms   p99 {row['p99']:9.2f} ms   (n={len(times)})")
    return row


def floor_once(config: Path, xray_bin: Path, scratch: Path, i: int) -> None:
    """The least a durable, checked add can do: load, append, atomic write, `xray run -test`."""
    doc = json.loads(config.read_text(encoding="utf-8"))
    clients = doc["inbounds"][0]["settings"]["clients"]
    clients.append({"id": str(uuid.uuid4()), "email": f"floor{i}@example.org", "flow": "xtls-rprx-vision"})
    target = scratch / "config.json"
    atomic.write_text(target, json.dumps(doc, indent=2, ensure_ascii=False) + "\n", mode=0o644)
    subprocess.run([xray_bin, "run", "-test", "-config", target], capture_output=True, check=True)


async def run(users: int, n: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="xr-bench-", dir="/tmp"))
    port = builder.free_port()
    emails = [f"user{i:05d}@example.org" for i in range(users)]
    sandbox = builder.build(root, emails=emails, gateway_port=port)
    size = sandbox.config.xray_config.stat().st_size
    xray, server = str(sandbox.config.xray_bin), f"--server={sandbox.config.xray_api}"
    scratch = root / "floor"
    scratch.mkdir()
    text = sandbox.config.xray_config.read_text()
    procs = start_stack(sandbox, port)
    base = f"http://127.0.0.1:{port}/api"
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {sandbox.token}"}) as http:

            async def call(method: str, path: str, body: dict | None = None) -> bytes:
                async with http.request(method, base + path, json=body) as resp:
                    data = await resp.read()
                    assert resp.status == 200, (resp.status, data[:300])
                    return data

            async def add(i: int) -> None:
                await call("POST", "/users/add", {"email": f"bench{i}@example.org"})

            async def delete_first(i: int) -> None:
                await call("POST", "/users/delete", {"email": emails.pop(0)})

            async def listing(i: int) -> None:
                await call("GET", "/users")

            async def loads(i: int) -> None:
                json.loads(text)

            async def floor(i: int) -> None:
                await asyncio.to_thread(floor_once, sandbox.config.xray_config, Path(xray), scratch, i)

            async def adu(i: int) -> None:
                """One stand-in adu (timed by the caller), then an untimed rmu to undo it."""
                one = {"id": str(uuid.uuid4()), "email": f"adu{i}@x", "flow": ""}
                inbound = {"tag": "vless-reality", "protocol": "vless", "port": 443}
                inbound["settings"] = {"clients": [one], "decryption": "none"}
                (scratch / "adu.json").write_text(json.dumps({"inbounds": [inbound]}))
                argv = [xray, "api", "adu", server, str(scratch / "adu.json")]
                t0 = time.perf_counter()
                await asyncio.to_thread(subprocess.run, argv, check=True, capture_output=True)
                adu_times.append(time.perf_counter() - t0)
                rmu = [xray, "api", "rmu", server, "-tag=vless-reality", one["email"]]
                await asyncio.to_thread(subprocess.run, rmu, check=True, capture_output=True)

            adu_times: list[float] = []
            json_t, list_t = await paired(n * 3, loads, listing)
            floor_add, add_t = await paired(n, floor, add)
            for _ in range(n + 2):
                await adu(0)
            await call("POST", "/settings", {"xray": {"revoke": "api_only"}})
            floor_del, del_api = await paired(n, floor, delete_first)
            await call("POST", "/settings", {"xray": {"revoke": "restart"}})
            _, del_restart = await paired(max(5, n // 4), floor, delete_first, warm=1)
            t0 = time.perf_counter()
            await asyncio.gather(*(add(100_000 + i) for i in range(100)))
            burst = time.perf_counter() - t0
            backups = json.loads(await call("GET", "/backups"))["backups"]
    finally:
        stop_stack(procs)

    print(f"{users} users, config.json {size / 1e6:.2f} MB, xray = the stand-in (a Python process)")
    j = summary("json.loads(config.json)", json_t)
    lst = summary("GET /api/users (list)", list_t)
    fa = summary("floor (beside add)", floor_add)
    ad = summary("POST /api/users/add", add_t)
    ap = summary("stand-in `xray api adu`, one user", adu_times[2:])
    fd = summary("floor (beside delete)", floor_del)
    da = summary("POST /api/users/delete (revoke=api_only)", del_api)
    dr = summary("POST /api/users/delete (revoke=restart)", del_restart)
    print(f"100 concurrent adds: {burst:.2f} s, {100 / burst:.0f} adds/s ({len(backups)} backups kept)")
    print(f"add p50 / floor p50        = {ad['p50'] / fa['p50']:.2f}   (target <= 1.5)")
    print(f"add p99 / floor p99        = {ad['p99'] / fa['p99']:.2f}")
    print(f"(floor + adu) / floor, p50 = {(fa['p50'] + ap['p50']) / fa['p50']:.2f}   (an add at least)")
    print(f"delete api_only / floor    = {da['p50'] / fd['p50']:.2f}")
    print(f"delete restart / floor     = {dr['p50'] / fd['p50']:.2f}")
    print(f"list p50 / json.loads p50  = {lst['p50'] / j['p50']:.2f}   (target <= 3)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--n", type=int, default=40)
    args = p.parse_args()
    asyncio.run(run(args.users, args.n))


if __name__ == "__main__":
    main()
