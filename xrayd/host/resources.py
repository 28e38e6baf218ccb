"""CPU, memory, disk, uptime and network figures from psutil; no call ever sleeps.

CPU percentages are measured between two readings of the kernel's counters. `prime()`
takes the first reading at start-up; each later `snapshot()` measures from the previous
one, but not over less than `MIN_CPU_WINDOW` seconds: requests that come closer together
get the last figures again instead of a noisy figure over a few milliseconds.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from xrayd.events import format_ts

MIN_CPU_WINDOW = 1.0  # seconds


def _disk(path: Path) -> dict[str, Any]:
    usage = psutil.disk_usage(str(path))
    return {
        "path": str(path),
        "total": usage.total,
        "used": usage.used,
        "free": usage.free,
        "percent": usage.percent,
    }


def _network() -> dict[str, int]:
    """Bytes through every interface but loopback (xrayd's own local traffic is not use)."""
    loopback = {name for name, st in psutil.net_if_stats().items() if "loopback" in st.flags.split(",")}
    sent = recv = 0
    for name, counters in psutil.net_io_counters(pernic=True).items():
        if name not in loopback:
            sent += counters.bytes_sent
            recv += counters.bytes_recv
    return {"bytes_sent": sent, "bytes_recv": recv}


class ResourceMeter:
    """The figures of `system.resources`, for this machine and this process."""

    def __init__(self, data_dir: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.data_dir = data_dir
        self._clock = clock
        self._process = psutil.Process(os.getpid())
        self._cpu: dict[str, Any] | None = None
        self._cpu_at = 0.0

    def prime(self) -> None:
        """Take the first CPU reading, so that the first request has something to compare."""
        psutil.cpu_percent(interval=None)
        psutil.cpu_percent(interval=None, percpu=True)
        self._cpu, self._cpu_at = None, self._clock()

    def _cpu_figures(self) -> dict[str, Any]:
        now = self._clock()
        if self._cpu is None or now - self._cpu_at >= MIN_CPU_WINDOW:
            self._cpu = {
                "percent": psutil.cpu_percent(interval=None),
                "per_core": psutil.cpu_percent(interval=None, percpu=True),
                "window_seconds": round(now - self._cpu_at, 3),
            }
            self._cpu_at = now
        return {
            **self._cpu,
            "load_avg": [round(x, 2) for x in psutil.getloadavg()],
            "count": psutil.cpu_count(logical=True),
            "count_physical": psutil.cpu_count(logical=False),
        }

    def snapshot(self) -> dict[str, Any]:
        """Every figure at once (a few reads of /proc; run it in a thread: statvfs may block)."""
        memory = psutil.virtual_memory()
        swap = psutil.swap_memory()
        boot = psutil.boot_time()
        booted = format_ts(dt.datetime.fromtimestamp(boot, dt.UTC))
        me = self._process
        with me.oneshot():
            rss, started = me.memory_info().rss, me.create_time()
        return {
            "cpu": self._cpu_figures(),
            "memory": {
                "total": memory.total,
                "used": memory.used,
                "available": memory.available,
                "percent": memory.percent,
                "swap": {"total": swap.total, "used": swap.used, "free": swap.free, "percent": swap.percent},
            },
            "disk": {**_disk(Path("/")), "data_dir": _disk(self.data_dir)},
            "uptime": {"seconds": int(time.time() - boot), "boot_time": booted},
            "network": _network(),
            "xrayd": {"pid": me.pid, "rss": rss, "uptime_seconds": int(time.time() - started)},
        }
