"""Tests for xrayd.sandbox.traffic: the demo's made-up traffic is real input for the live view."""

from __future__ import annotations

from datetime import datetime

from xrayd.live.parser import parse_line
from xrayd.sandbox.builder import DEMO_USERS, Sandbox
from xrayd.sandbox.standin_state import read_state
from xrayd.sandbox.traffic import Crowd, DemoTraffic


def test_generated_lines_parse_and_are_in_time_order() -> None:
    """Every generated line is a record, stamped in the minute asked for, oldest first."""
    crowd = Crowd(["a@x", "b@x", "c@x"], seed=3, sites=50)
    end = datetime(2026, 3, 1, 12, 0)
    lines = list(crowd.log(end, 3, 100))
    records = [parse_line(line) for line in lines]
    assert len(lines) >= 290 and all(r is not None for r in records)
    stamps = [r.ts for r in records if r is not None]
    assert stamps == sorted(stamps) and stamps[0] >= datetime(2026, 3, 1, 11, 57)
    emails = {r.email for r in records if r is not None} - {None}
    assert emails and emails <= {"a@x", "b@x", "c@x"}


def test_a_demo_tick_appends_lines_and_moves_counters(sandbox: Sandbox) -> None:
    """One tick writes access lines for the sandbox users and gives them traffic in the stand-in."""
    traffic = DemoTraffic(sandbox.config.access_log, sandbox.state_dir, DEMO_USERS)
    for n in range(5):
        traffic.tick(1_000_000.0 + n * traffic.every)
    lines = sandbox.config.access_log.read_bytes().splitlines()
    assert lines and all(parse_line(line) is not None for line in lines)
    counters = read_state(sandbox.state_dir)["counters"]
    assert any(name.startswith("user>>>") and value > 0 for name, value in counters.items())
