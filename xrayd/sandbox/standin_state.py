"""The fake Xray server behind the stand-ins: one JSON file in a state folder.

Every stand-in call is a fresh process, so what the "running Xray" holds in memory (its users,
counters, online lists) lives in `state.json`. Each read-modify-write holds an exclusive flock on
`state.lock` (the state file itself is replaced by rename on every write), so concurrent calls
never lose an update. Tests and the demo use the functions here to set the scene and turn knobs.

State keys: config_path, xray_unit, running, started_config (the config Xray last started with),
unit_states {unit: active|inactive|failed}, pids {unit: MainPID}, next_pid, knobs (api_up,
fail_test, fail_start, string_values), inbounds {tag: {email_lower: client}}, counters
{name: int}, online {email: {ip: last_seen_unix}}, calls (systemctl argv lists, the last 1000),
restarts.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from client import wirejson
from xrayd.atomic import write_bytes
from xrayd.config import Units
from xrayd.sandbox.xray_config import (
    XrayError,
    checked_config,
    config_users,
    inbound_stats,
    user_stats,
)

ENV = "XRAY_STANDIN_STATE"
STATE_FILE = "state.json"
LOCK_FILE = "state.lock"
CALLS_KEPT = 1000
DEFAULT_UNITS = (Units.xray, Units.ui, Units.nextjs)
FAIL_START = "the fail_start knob is set"

T = TypeVar("T")
State = dict[str, Any]


class StandinError(Exception):
    """The stand-in cannot answer at all (no state folder); not something Xray would say."""


@dataclass(frozen=True)
class Reply:
    """What one stand-in call prints and returns."""

    code: int = 0
    out: str = ""
    err: str = ""


def state_dir_from_env() -> Path:
    value = os.environ.get(ENV)
    if not value:
        raise StandinError(f"{ENV} is not set: it names the stand-ins' state folder")
    return Path(value)


@contextmanager
def _locked(state_dir: Path, operation: int) -> Iterator[None]:
    with open(state_dir / LOCK_FILE, "a") as lock:
        fcntl.flock(lock, operation)
        yield


def _load(state_dir: Path) -> State:
    try:
        return wirejson.loads((state_dir / STATE_FILE).read_bytes())
    except FileNotFoundError:
        raise StandinError(f"no stand-in state in {state_dir}: call init_state first") from None


def _write(state_dir: Path, state: State) -> None:
    """Compact JSON through orjson: with 10,000 users the state is megabytes, and the real
    Xray's API answers in a millisecond, so the stand-in should not be the slow part."""
    write_bytes(state_dir / STATE_FILE, wirejson.dumps(state))


def read_state(state_dir: Path) -> State:
    if not state_dir.is_dir():
        raise StandinError(f"no stand-in state folder {state_dir}: call init_state first")
    with _locked(state_dir, fcntl.LOCK_SH):
        return _load(state_dir)


def update_state(state_dir: Path, fn: Callable[[State], T]) -> T:
    """Run `fn` on the state under the lock, save what it changed, and return its result."""
    if not state_dir.is_dir():
        raise StandinError(f"no stand-in state folder {state_dir}: call init_state first")
    with _locked(state_dir, fcntl.LOCK_EX):
        state = _load(state_dir)
        result = fn(state)
        _write(state_dir, state)
        return result


def activate(state: State, unit: str) -> None:
    state["unit_states"][unit] = "active"
    state["pids"][unit] = state["next_pid"]
    state["next_pid"] += 1


def stop_xray(state: State, unit_state: str = "inactive") -> None:
    """Xray exits: the unit takes `unit_state`, and everything it held in memory is gone."""
    state.update(running=False, started_config=None, inbounds={}, counters={}, online={})
    state["unit_states"][state["xray_unit"]] = unit_state
    state["pids"].pop(state["xray_unit"], None)


def start_xray(state: State) -> str | None:
    """Start Xray from `config_path` as `xray run` would; return why it failed, or None."""
    stop_xray(state)
    try:
        config = checked_config(Path(state["config_path"]), state["fail_test"])
    except XrayError as exc:
        stop_xray(state, "failed")
        return str(exc)
    if state["fail_start"]:
        stop_xray(state, "failed")
        return FAIL_START
    state.update(running=True, started_config=config, inbounds=config_users(config))
    activate(state, state["xray_unit"])
    return None


def init_state(
    state_dir: Path,
    config_path: Path,
    xray_unit: str = Units.xray,
    units: tuple[str, ...] = DEFAULT_UNITS,
) -> State:
    """Create the state folder with every unit active and Xray started from `config_path`
    (users loaded, no counters yet). Raises ValueError when Xray would refuse the config."""
    state: State = {
        "config_path": str(config_path.resolve()),
        "xray_unit": xray_unit,
        "running": False,
        "started_config": None,
        "unit_states": {},
        "pids": {},
        "next_pid": 1000,
        "api_up": True,
        "fail_test": None,
        "fail_start": False,
        "string_values": False,
        "inbounds": {},
        "counters": {},
        "online": {},
        "calls": [],
        "restarts": 0,
    }
    for unit in dict.fromkeys((*units, xray_unit)):
        activate(state, unit)
    error = start_xray(state)
    if error:
        raise ValueError(f"Failed to start: {error}")
    state_dir.mkdir(parents=True, exist_ok=True)
    with _locked(state_dir, fcntl.LOCK_EX):
        _write(state_dir, state)
    return state


def find_user(state: State, email: str) -> tuple[str, dict[str, Any]] | None:
    """(inbound tag, client) of a user the running Xray has, matched case-insensitively."""
    for tag, users in state["inbounds"].items():
        if email.lower() in users:
            return tag, users[email.lower()]
    return None


def add_traffic(state_dir: Path, email: str, up: int, down: int) -> bool:
    """Count a user's traffic as Xray would: the counters the config's stats policy asks for
    appear on first traffic and grow. False when Xray would count nothing (not running,
    no such user, stats off)."""

    def count(state: State) -> bool:
        found = find_user(state, email) if state["running"] else None
        if found is None:
            return False
        tag, client = found
        config = state["started_config"]
        up_on, down_on, _ = user_stats(config, client.get("level", 0))
        in_up, in_down = inbound_stats(config)
        user = f"user>>>{client['email']}>>>traffic>>>"
        inbound = f"inbound>>>{tag}>>>traffic>>>"
        for on, counter, n in (
            (up_on, user + "uplink", up),
            (down_on, user + "downlink", down),
            (in_up, inbound + "uplink", up),
            (in_down, inbound + "downlink", down),
        ):
            if on:
                state["counters"][counter] = state["counters"].get(counter, 0) + n
        return up_on or down_on

    return update_state(state_dir, count)


def set_online(state_dir: Path, email: str, ips: Mapping[str, int]) -> bool:
    """Set a user's online list {ip: last_seen_unix} (empty: known but offline). False when
    Xray would keep no list (not running, no such user, statsUserOnline off)."""

    def put(state: State) -> bool:
        found = find_user(state, email) if state["running"] else None
        if found is None or not user_stats(state["started_config"], found[1].get("level", 0))[2]:
            return False
        state["online"][found[1]["email"]] = dict(ips)
        return True

    return update_state(state_dir, put)
