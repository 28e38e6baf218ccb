"""Failed logins per address in a sliding window: after `limit` failures, refuse until the
oldest of them leaves the window. IPv6 addresses count per /64, as one host usually has one.

In memory only (a restart forgets, which favours the operator, never an attacker much), and
bounded: at most `MAX_KEYS` addresses are tracked; the stalest go first (the dict is kept in
order of each address's last failure).
"""

from __future__ import annotations

import ipaddress
import time
from collections import deque
from collections.abc import Callable

MAX_KEYS = 10_000


def address_key(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class FailureLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, window: float) -> deque[float]:
        times = self._failures.get(key, deque())
        horizon = self._clock() - window
        while times and times[0] <= horizon:
            times.popleft()
        if not times:
            self._failures.pop(key, None)
        return times

    def retry_after(self, address: str, *, limit: int, window: float) -> float:
        """Seconds until `address` may try again; 0 when it may now."""
        times = self._recent(address_key(address), window)
        if len(times) < limit:
            return 0.0
        return max(0.0, times[-limit] + window - self._clock())

    def fail(self, address: str, *, limit: int, window: float) -> bool:
        """Count a failure; True when this one reaches the limit (the address is now blocked)."""
        key = address_key(address)
        times = self._recent(key, window)
        times.append(self._clock())
        self._failures.pop(key, None)
        self._failures[key] = times
        if len(self._failures) > MAX_KEYS:
            del self._failures[next(iter(self._failures))]
        return len(times) == limit

    def clear(self, address: str) -> None:
        self._failures.pop(address_key(address), None)
