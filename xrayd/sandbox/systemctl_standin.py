"""A `systemctl` look-alike over the fake Xray's state folder ($XRAY_STANDIN_STATE).

Restarting the xray unit starts the fake Xray from its config file, checked by the same code as
`xray run -test`, so a restart loses counters and API-added users exactly as a real one does.
As with Xray's real unit (Type=simple), `restart` exits 0 even when Xray dies at once on a bad
config: the caller learns it from `is-active`, which then says `failed`. `enable`/`disable
[--now]` and `daemon-reload` serve the installer. Every call is recorded in the state's `calls`
for tests to assert on.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from xrayd.sandbox.standin_state import (
    CALLS_KEPT,
    Reply,
    StandinError,
    State,
    activate,
    start_xray,
    state_dir_from_env,
    stop_xray,
    update_state,
)

_SUB_STATES = {"active": "running", "inactive": "dead", "failed": "failed"}
_PROPERTIES = ("Id", "MainPID", "LoadState", "ActiveState", "SubState")
_UNIT_TYPES = (".service", ".socket", ".timer", ".target", ".mount", ".path", ".slice", ".scope")
_IGNORED = {"--no-pager", "--no-block", "--no-ask-password", "--system", "--no-legend"}


def unit_name(name: str) -> str:
    """systemctl's reading of a unit argument: `xray` means `xray.service`."""
    return name if name.endswith(_UNIT_TYPES) else f"{name}.service"


def _options(argv: Sequence[str]) -> tuple[set[str], list[str], list[str]] | Reply:
    """Split argv into flags, `-p` properties and words, as getopt_long would."""
    flags: set[str] = set()
    properties: list[str] = []
    words: list[str] = []
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg in ("-p", "--property"):
            if not args:
                return Reply(1, err=f"systemctl: option requires an argument -- '{arg}'\n")
            properties += args.pop(0).split(",")
        elif arg.startswith("--property="):
            properties += arg.removeprefix("--property=").split(",")
        elif arg.startswith("-p"):
            properties += arg[2:].split(",")
        elif arg in ("-q", "--quiet", "--value", "--now") or arg in _IGNORED:
            flags.add("quiet" if arg in ("-q", "--quiet") else arg)
        elif arg.startswith("-"):
            return Reply(1, err=f"systemctl: unrecognized option '{arg}'\n")
        else:
            words.append(arg)
    return flags, properties, words


def _is_active(state: State, units: list[str], quiet: bool) -> Reply:
    if not units:
        return Reply(1, err="Too few arguments.\n")
    states = [state["unit_states"].get(unit, "inactive") for unit in units]
    out = "" if quiet else "".join(f"{s}\n" for s in states)
    return Reply(0 if all(s == "active" for s in states) else 3, out=out)


def _show(state: State, units: list[str], properties: list[str], value_only: bool) -> Reply:
    blocks = []
    for unit in units:
        active = state["unit_states"].get(unit, "inactive")
        values = {
            "Id": unit,
            "MainPID": str(state["pids"].get(unit, 0) if active == "active" else 0),
            "LoadState": "loaded" if unit in state["unit_states"] else "not-found",
            "ActiveState": active,
            "SubState": _SUB_STATES[active],
        }
        shown = [p for p in _PROPERTIES if not properties or p in properties]
        blocks.append("".join(f"{values[p]}\n" if value_only else f"{p}={values[p]}\n" for p in shown))
    return Reply(out="\n".join(blocks))


def _change(state: State, verb: str, units: list[str]) -> Reply:
    """start, restart or stop: the xray unit starts or stops the fake Xray."""
    if not units:
        return Reply(1, err="Too few arguments.\n")
    for unit in units:
        if unit not in state["unit_states"]:
            why = "not loaded" if verb == "stop" else "not found"
            return Reply(5, err=f"Failed to {verb} {unit}: Unit {unit} {why}.\n")
    for unit in units:
        already = state["unit_states"][unit] == "active"
        if verb == "stop":
            if unit == state["xray_unit"]:
                stop_xray(state)
            else:
                state["unit_states"][unit] = "inactive"
        elif verb == "start" and already:
            continue
        elif unit == state["xray_unit"]:
            if start_xray(state) is None:
                state["restarts"] += 1
        else:
            activate(state, unit)
    return Reply()


def _enable(state: State, verb: str, units: list[str], now: bool) -> Reply:
    """enable or disable (with --now: and start or stop); the units become known, as after
    an installer wrote their files and ran daemon-reload."""
    if not units:
        return Reply(1, err="Too few arguments.\n")
    enabled = state.setdefault("enabled", [])
    for unit in units:
        state["unit_states"].setdefault(unit, "inactive")
        if verb == "enable" and unit not in enabled:
            enabled.append(unit)
        elif verb == "disable" and unit in enabled:
            enabled.remove(unit)
    return _change(state, "start" if verb == "enable" else "stop", units) if now else Reply()


def _answer(state: State, argv: Sequence[str]) -> Reply:
    state["calls"] = [*state["calls"], list(argv)][-CALLS_KEPT:]
    parsed = _options(argv)
    if isinstance(parsed, Reply):
        return parsed
    flags, properties, words = parsed
    if not words:
        return Reply(1, err="systemctl stand-in: give a command verb\n")
    verb, units = words[0], [unit_name(w) for w in words[1:]]
    if verb == "is-active":
        return _is_active(state, units, "quiet" in flags)
    if verb == "show":
        return _show(state, units, properties, "--value" in flags)
    if verb in ("start", "restart", "stop"):
        return _change(state, verb, units)
    if verb in ("enable", "disable"):
        return _enable(state, verb, units, "--now" in flags)
    if verb == "daemon-reload":
        return Reply()
    return Reply(1, err=f"Unknown command verb '{verb}'.\n")


def main(argv: Sequence[str]) -> int:
    """Answer one `systemctl` command line (without the program name); return the exit status."""
    try:
        reply = update_state(state_dir_from_env(), lambda state: _answer(state, argv))
    except StandinError as exc:
        reply = Reply(1, err=f"systemctl stand-in: {exc}\n")
    sys.stdout.write(reply.out)
    sys.stderr.write(reply.err)
    return reply.code
