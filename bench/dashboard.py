"""usage.dashboard over a year of a large server: cold and warm, beside a csv.reader floor.

Data: 365 daily usage files, each with 1,000 users and 50 domains per user (drawn from a
long-tailed pool of 20,000 domains), written once by the real writer (`files.render`) into
`--data` and reused by later runs.

For each window (30 and 365 days):
- floor: read the window's files with `csv.reader` and sum uplink, downlink, connections;
- cold: a fresh xrayd process (empty cache) answers `usage.dashboard(days=N)` over its socket;
- warm: the same xrayd answers it again (every file cached, each one stat'ed).
The OS page cache is warm for all three (the files were just read), so "cold" is xrayd's
cache only. The three are interleaved run by run, so load on a shared machine hits them
alike. Prints medians and the ratios cold/floor (target <= 1.5) and warm/floor (<= 0.1).

    .venv/bin/python bench/dashboard.py [--repeat 3] [--data build/bench-dashboard]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import dataclasses
import datetime as dt
import itertools
import random
import shutil
import socket as so
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from client.aio import XraydClient
from xrayd import atomic
from xrayd.config import to_toml
from xrayd.sandbox import builder
from xrayd.usage import files
from xrayd.usage.files import UserDay

DAYS, USERS, DOMAINS_PER_USER, POOL = 365, 1000, 50, 20_000
END = dt.date(2026, 11, 30)
MARKER = f"bench-{DAYS}x{USERS}x{DOMAINS_PER_USER}x{POOL}-v2"


def generate(folder: Path) -> None:
    """The year of files, unless `folder` already holds this very data set."""
    marker = folder / "MARKER"
    if marker.exists() and marker.read_text() == MARKER:
        return
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = random.Random(20260120)
    kinds = ("cdn", "api", "www", "img", "static")
    pool = [f"{rng.choice(kinds)}{i}.example{i % 97}.com" for i in range(POOL)]
    cum = list(itertools.accumulate(1 / (rank + 1) for rank in range(POOL)))
    emails = [f"user{n:04d}@example.org" for n in range(USERS)]
    for k in range(DAYS):
        date = END - dt.timedelta(days=k)
        users = {}
        for email in emails:
            domains: dict[str, int] = {}
            while len(domains) < DOMAINS_PER_USER:
                for d in rng.choices(pool, cum_weights=cum, k=DOMAINS_PER_USER):
                    if len(domains) < DOMAINS_PER_USER:
                        domains[d] = int(rng.paretovariate(1.2)) + 1
            first = dt.datetime.combine(date, dt.time()) + dt.timedelta(seconds=rng.randrange(0, 40_000))
            users[email] = UserDay(
                email,
                uplink=rng.randrange(10**6, 10**9),
                downlink=rng.randrange(10**7, 10**10),
                connections=sum(domains.values()),
                ips={f"10.0.{n}.1" for n in range(rng.randrange(1, 5))},
                first_seen=first,
                last_seen=first + dt.timedelta(seconds=rng.randrange(0, 46_000)),
                domains=domains,
            )
        atomic.write_bytes(files.path_for(folder, date), files.render(users))
        if k % 30 == 0:
            print(f"  generated {k + 1}/{DAYS} days", file=sys.stderr, flush=True)
    marker.write_text(MARKER)


def floor(folder: Path, days: int) -> tuple[int, int, int]:
    """Read the window's files with csv.reader and sum the user rows' figures."""
    up = down = conns = 0
    for k in range(days):
        with open(files.path_for(folder, END - dt.timedelta(days=k)), newline="") as f:
            rows = csv.reader(f)
            next(rows)
            for row in rows:
                if not row[1]:
                    up += int(row[2])
                    down += int(row[3])
                    conns += int(row[4])
    return up, down, conns


def seconds(fn) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def spawn(config_file: Path, socket: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "xrayd", "serve", "--config", str(config_file), "--log-level", "WARNING"]
    )
    for _ in range(400):
        with so.socket(so.AF_UNIX) as probe:
            if probe.connect_ex(str(socket)) == 0:
                return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("xrayd did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(30)


async def call(socket: Path, days: int) -> tuple[float, dict]:  # type: ignore[type-arg]
    async with XraydClient(str(socket), call_timeout=600) as rpc:
        t0 = time.perf_counter()
        body = await rpc.call("usage.dashboard", {"days": days})
        return time.perf_counter() - t0, body


async def warm_times(socket: Path, days: int, repeat: int) -> list[float]:
    async with XraydClient(str(socket), call_timeout=600) as rpc:
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            await rpc.call("usage.dashboard", {"days": days})
            times.append(time.perf_counter() - t0)
        return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3, help="runs of each measurement (median shown)")
    p.add_argument("--data", type=Path, default=Path("build/bench-dashboard"), help="where the files live")
    args = p.parse_args()
    generate(args.data)
    size = sum(f.stat().st_size for f in args.data.glob("*.csv"))
    print(f"{DAYS} files, {USERS} users x {DOMAINS_PER_USER} domains a day, {size / 2**20:.0f} MiB of CSV")

    root = Path(tempfile.mkdtemp(prefix="xr-bench-", dir="/tmp"))
    try:
        sandbox = builder.build(root / "sb", gateway_port=builder.free_port())
        config = dataclasses.replace(sandbox.config, usage_dir=args.data.resolve())
        config_file = root / "xrayd.toml"
        config_file.write_text(to_toml(config))
        print(f"{'window':>7} {'floor':>9} {'cold':>9} {'warm':>9} {'cold/floor':>11} {'warm/floor':>11}")
        for days in (30, 365):
            expected = floor(args.data, days)
            floors, colds, warms = [], [], []
            for _ in range(args.repeat):  # interleaved, so a busy moment hits all three alike
                floors.append(seconds(lambda days=days: floor(args.data, days)))
                proc = spawn(config_file, config.socket)
                try:
                    cold, body = asyncio.run(call(config.socket, days))
                    totals = body["totals"]
                    assert (totals["uplink"], totals["downlink"], totals["connections"]) == expected
                    colds.append(cold)
                    warms += asyncio.run(warm_times(config.socket, days, 5))
                finally:
                    stop(proc)
            floor_s, cold_s, warm_s = map(statistics.median, (floors, colds, warms))
            print(
                f"{days:>5} d {floor_s * 1e3:>7.0f}ms {cold_s * 1e3:>7.0f}ms {warm_s * 1e3:>7.0f}ms "
                f"{cold_s / floor_s:>11.2f} {warm_s / floor_s:>11.3f}"
            )
        print("targets: cold/floor <= 1.5, warm/floor <= 0.1")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
