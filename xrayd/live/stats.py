"""Xray's per-user traffic counters, read (and reset) with `xray api statsquery`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from xrayd import proc
from xrayd.config import Config
from xrayd.errors import Unavailable

PREFIX = "user>>>"
MAX_COUNTER = 2**63 - 1


def statsquery_argv(config: Config) -> list[str]:
    return [
        str(config.xray_bin),
        "api",
        "statsquery",
        f"--server={config.xray_api}",
        "-pattern",
        PREFIX,
        "-reset",
    ]


def parse(stdout: str) -> dict[str, tuple[int, int]]:
    """{email: (uplink, downlink)} from statsquery's JSON. A counter at 0 has no `value`;
    builds up to v1.8.23 print values as strings; names come JSON-escaped (`\\u003e`)."""
    try:
        doc = json.loads(stdout or "{}")
    except ValueError:
        raise Unavailable(
            "xray api statsquery printed something that is not JSON.", error="stats_unreadable"
        ) from None
    stats = doc.get("stat", []) if isinstance(doc, dict) else None
    if not isinstance(stats, list):
        raise Unavailable("xray api statsquery printed an unexpected document.", error="stats_unreadable")
    traffic: dict[str, list[int]] = {}
    for stat in stats:
        if not isinstance(stat, Mapping) or not isinstance(stat.get("name"), str):
            continue
        email, sep, direction = stat["name"].removeprefix(PREFIX).rpartition(">>>traffic>>>")
        if (
            not stat["name"].startswith(PREFIX)
            or not sep
            or not email
            or direction not in ("uplink", "downlink")
        ):
            continue
        row = traffic.setdefault(email, [0, 0])
        row[direction == "downlink"] += _value(stat.get("value", 0))
    return {email: (up, down) for email, (up, down) in traffic.items()}


def _value(raw: Any) -> int:
    if isinstance(raw, str) and raw.isdigit():
        raw = int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= MAX_COUNTER:
        return 0
    return raw


async def read_and_reset(config: Config) -> dict[str, tuple[int, int]]:
    """The traffic each user made since the last call (Xray's counters restart at zero).
    Raises Unavailable when Xray's API does not answer."""
    try:
        done = await proc.run(statsquery_argv(config), timeout=config.subprocess_timeout)
    except OSError as exc:  # no xray binary where the config says
        raise Unavailable(
            f"cannot run {config.xray_bin}: {exc.strerror}", error="stats_unavailable"
        ) from None
    if not done.ok:
        raise Unavailable(f"Xray's stats API did not answer: {done.reason()}", error="stats_unavailable")
    return parse(done.stdout)
