"""Live ingest: (a) scan + aggregate vs mawk, (b) append-to-live.now, (c) live.now latency, (d) RSS.

(a) A generated log (1,000 users, 24 h ending now, sessions with favourite destinations) is
    counted by Scanner + Aggregates in 1 MiB chunks on one core, beside mawk counting the same
    per-user and per-domain totals over the same file. Prints lines/s, the ratio, and whether
    the per-user totals agree. Target: at least 0.5x mawk.
(b) A real xrayd (sandbox, stand-ins) and a client: lines appended to access.log until
    live.now shows them, beside a bare watchfiles watcher noticing the same append (the floor).
(c) live.now's computation after 10^3 and after 10^7 ingested lines (the same 1,000 lines of
    its window, ingested again and again): the ratio must stay near 1, whatever the log's
    length; its cost follows the keys in the window, not the lines.
(d) RSS of a process holding 10,000 users active in every minute of 24 h of buckets, beside
    the same process with empty aggregates. Target: under 200 MB.

    .venv/bin/python bench/ingest.py [--lines 2000000] [--skip b,c,d]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xrayd.live.aggregates import Aggregates
from xrayd.live.scan import Scanner
from xrayd.sandbox.traffic import Crowd

MAWK = """
$5 == "accepted" && $(NF-1) == "email:" {
    users[$NF]++; d = $6; sub(/^(tcp|udp):/, "", d); sub(/:[0-9]+$/, "", d); hosts[d]++
}
END { for (u in users) print "u", u, users[u]; for (h in hosts) print "h", h, hosts[h] }
"""
CHUNK = 1 << 20


def chunks(path: Path):
    with path.open("rb") as f:
        rest = b""
        while data := f.read(CHUNK):
            data = rest + data
            cut = data.rfind(b"\n") + 1
            rest = data[cut:]
            yield data[:cut]


def ingest(path: Path, aggregates: Aggregates, scanner: Scanner, now: int) -> dict[str, int]:
    """Scan and aggregate a whole file, then read the connections per user back out of the
    buckets (as mawk prints its totals at the end)."""
    for data in chunks(path):
        tally = scanner.scan(data, now - 60)
        aggregates.add_tally(tally, now)
        latest = tally.pairs.latest()
        aggregates.seal(min(now if latest is None else latest, now) - 1, now)
    return dict(aggregates.top_users("conns", now - aggregates.retention + 1, now + 1))


def bench_a(n_lines: int, root: Path) -> None:
    log = root / "access.log"
    crowd = Crowd([f"user{i}@example.org" for i in range(1000)], seed=7)
    t0 = time.perf_counter()
    per_minute = max(1, n_lines // 1440)
    with log.open("wb") as f:
        batch = []
        for line in crowd.log(datetime.now(), 1440, per_minute):
            batch.append(line)
            if len(batch) >= 50_000:
                f.write(b"".join(batch))
                batch.clear()
        f.write(b"".join(batch))
    size = log.stat().st_size
    count = log.read_bytes().count(b"\n")
    print(f"(a) generated {count:,} lines, {size / 1e6:.0f} MB in {time.perf_counter() - t0:.1f} s")

    mawk = shutil.which("mawk")
    runs_py, runs_awk = [], []
    mawk_users: dict[str, int] = {}
    for _ in range(3):
        now = int(time.time() // 60)
        t = time.perf_counter()
        per_user = ingest(log, Aggregates(1440 + 60), Scanner(), now)  # slack: the log ends at generation
        runs_py.append(time.perf_counter() - t)
        if mawk:
            t = time.perf_counter()
            out = subprocess.run([mawk, MAWK, str(log)], capture_output=True, text=True, check=True).stdout
            runs_awk.append(time.perf_counter() - t)
            mawk_users = {f[1]: int(f[2]) for f in (ln.split() for ln in out.splitlines()) if f[0] == "u"}
    lines = count
    py = lines / min(runs_py)
    print(f"    scan + aggregate  {py:12,.0f} lines/s   (best of 3, one core)")
    if mawk:
        awk = lines / min(runs_awk)
        print(f"    mawk              {awk:12,.0f} lines/s")
        print(f"    ratio             {py / awk:12.2f} x mawk   (target >= 0.5)")
        print(f"    per-user totals agree with mawk: {per_user == mawk_users}")
    else:
        print("    mawk not installed: no baseline")


async def bench_b(root: Path, rounds: int = 20) -> None:
    from watchfiles import awatch

    from client.aio import XraydClient
    from xrayd.sandbox import builder

    sb = builder.build(root / "sb", gateway_port=builder.free_port())
    proc = subprocess.Popen([sys.executable, "-m", "xrayd", "serve", "--config", str(sb.config_file)])
    try:
        while not sb.config.socket.exists():
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        e2e, floor = [], []
        async with XraydClient(str(sb.config.socket)) as rpc:
            stop = asyncio.Event()
            seen = asyncio.Event()

            async def watch() -> None:
                async for _ in awatch(sb.config.access_log.parent, debounce=50, step=10, stop_event=stop):
                    seen.set()

            watcher = asyncio.create_task(watch())
            await asyncio.sleep(0.5)
            total = 0
            for n in range(rounds):
                line = datetime.now().strftime("%Y/%m/%d %H:%M:%S.%f").encode() + (
                    b" from 203.0.113.%d:5000 accepted tcp:example.com:443 [vless-reality >> direct]"
                    b" email: alice@example.org\n" % (n % 250)
                )
                seen.clear()
                t = time.perf_counter()
                with sb.config.access_log.open("ab") as f:
                    f.write(line * 10)
                total += 10
                await seen.wait()
                floor.append(time.perf_counter() - t)
                while (await rpc.call("live.now"))["total"]["conns"] < total:
                    await asyncio.sleep(0.002)
                e2e.append(time.perf_counter() - t)
            stop.set()
            await watcher
        p50, f50 = statistics.median(e2e) * 1e3, statistics.median(floor) * 1e3
        print(
            f"(b) append -> live.now shows it: p50 {p50:.0f} ms, max {max(e2e) * 1e3:.0f} ms, {rounds} rounds"
        )
        print(f"    bare watchfiles notices it:  p50 {f50:.0f} ms;  ratio {p50 / f50:.1f} x the floor")
    finally:
        proc.terminate()
        proc.wait(30)


def bench_c(root: Path) -> None:
    crowd = Crowd([f"user{i}@example.org" for i in range(1000)], seed=9)
    window = b"".join(crowd.log(datetime.now(), 5, 200))  # 1,000 lines in live.now's window
    now = int(time.time() // 60)

    def live_now_ms(agg: Aggregates) -> float:
        times = []
        for _ in range(30):
            t = time.perf_counter()
            agg.now(now - 4, now + 1)
            times.append(time.perf_counter() - t)
        return statistics.median(times) * 1e3

    scanner = Scanner()
    small, big = Aggregates(1440), Aggregates(1440)
    small.add_tally(scanner.scan(window, now - 60), now)
    lines, ingested = window.count(b"\n"), 0
    t = time.perf_counter()
    while ingested < 10**7:  # the same window again and again: counts grow, keys do not
        big.add_tally(scanner.scan(window, now - 60), now)
        ingested += lines
    a, b = live_now_ms(small), live_now_ms(big)
    print(
        f"(c) live.now after {lines:,} lines: {a:.2f} ms; after {ingested:.1e}: {b:.2f} ms; ratio {b / a:.2f}"
    )
    print(f"    (ingesting those took {time.perf_counter() - t:.0f} s)")


RSS_CHILD = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
import xrayd.daemon, xrayd.methods  # what xrayd loads
from xrayd.live.aggregates import Aggregates
from xrayd.live.pairs import Pairs
from xrayd.live.scan import Tally
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096
users, full = int(sys.argv[2]), sys.argv[3] == "full"
now = int(time.time() // 60)
agg = Aggregates(1440)
if full:
    emails = [f"user{i}@example.org" for i in range(users)]
    hosts = [f"cdn{i}.example.net" for i in range(2000)]
    for m in range(now - 1439, now + 1):
        pairs = {(m, e, hosts[(i * 7 + m) % 2000]): 1 + (i + m) % 5 for i, e in enumerate(emails)}
        tally = Tally(pairs=Pairs.from_counter(pairs))
        agg.add_tally(tally, now)
        agg.add_traffic({e: (40_000 + i, 900_000 + m % 1000) for i, e in enumerate(emails)}, m, m * 60.0)
        agg.seal(m, now)
print(json.dumps({"rss": rss()}))
"""


def bench_d(users: int = 10_000) -> None:
    root = str(Path(__file__).resolve().parents[1])
    out = {}
    for kind in ("empty", "full"):
        t = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", RSS_CHILD, root, str(users), kind],
            capture_output=True,
            text=True,
            check=True,
        )
        out[kind] = json.loads(done.stdout)["rss"] / 1e6
        out[kind + "_s"] = time.perf_counter() - t
    print(
        f"(d) RSS, {users:,} users active in every minute of 24 h: {out['full']:.0f} MB "
        f"(empty aggregates: {out['empty']:.0f} MB; built in {out['full_s']:.0f} s; target < 200 MB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--skip", default="")
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    root = Path(tempfile.mkdtemp(prefix="xr-ingest-", dir="/tmp"))
    try:
        if "a" not in skip:
            bench_a(args.lines, root)
        if "b" not in skip:
            asyncio.run(bench_b(root))
        if "c" not in skip:
            bench_c(root)
        if "d" not in skip:
            bench_d()
    finally:
        shutil.rmtree(root, ignore_errors=True)
        os.sync()


if __name__ == "__main__":
    main()
