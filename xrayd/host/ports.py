"""Which local ports answer: a TCP connect to 127.0.0.1, all ports at once, a short timeout.

A connect says only that something listens on the loopback address; a service bound to a
public address alone shows as closed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any

CONNECT_TIMEOUT = 1.0  # seconds; a local listener answers in well under a millisecond
# The seed's ports and what listens there; other ports from the daemon config have no name.
KNOWN_SERVICES = {3000: "nextjs", 8787: "ui", 443: "xray"}


async def accepts(port: int, timeout: float = CONNECT_TIMEOUT) -> bool:
    """True when a TCP connect to 127.0.0.1:port succeeds within `timeout`."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def check(ports: Iterable[int], timeout: float = CONNECT_TIMEOUT) -> list[dict[str, Any]]:
    """`[{port, status: running|closed, service}]` in the order given."""
    ports = list(ports)
    answers = await asyncio.gather(*(accepts(p, timeout) for p in ports))
    return [
        {"port": p, "status": "running" if ok else "closed", "service": KNOWN_SERVICES.get(p)}
        for p, ok in zip(ports, answers, strict=True)
    ]
