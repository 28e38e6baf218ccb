"""systemd units through `systemctl` (the program named in the daemon config).

States come from `systemctl show`, not `is-active`: for a unit that is not installed
`is-active` prints `inactive` just as for a stopped one, while `show` says `LoadState=not-found`.
`systemctl restart` exits 0 even when the unit dies right after starting, so a restart is
always followed by a fresh look at the unit's state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xrayd import proc
from xrayd.errors import Internal, NotFound, Unavailable

_PROPERTIES = "LoadState,ActiveState,SubState"
# systemctl's exit status when the unit is not installed (LSB "program is not installed")
EXIT_NOT_INSTALLED = 5
# states after a restart that are not a failure: the unit runs or is still on its way up
UP_STATES = frozenset({"active", "activating", "reloading"})


@dataclass(frozen=True)
class UnitState:
    unit: str
    installed: bool
    state: str  # ActiveState: active, inactive, failed, activating, deactivating, reloading
    sub_state: str

    @property
    def active(self) -> bool:
        return self.state == "active"

    def as_dict(self) -> dict[str, Any]:
        return {
            "active": self.active,
            "state": self.state,
            "sub_state": self.sub_state,
            "installed": self.installed,
            "unit": self.unit,
        }


def parse_show(output: str, units: Sequence[str]) -> list[UnitState]:
    """`systemctl show -p …` of several units: one block of KEY=VALUE lines per unit, in the
    order asked, separated by blank lines."""
    blocks = [b for b in output.strip("\n").split("\n\n") if b.strip()]
    if len(blocks) != len(units):
        raise Internal(
            f"systemctl show answered {len(blocks)} blocks for {len(units)} units.", error="systemctl_failed"
        )
    states = []
    for unit, block in zip(units, blocks, strict=True):
        props = dict(line.partition("=")[::2] for line in block.splitlines())
        states.append(
            UnitState(
                unit=unit,
                installed=props.get("LoadState", "not-found") != "not-found",
                state=props.get("ActiveState", "unknown"),
                sub_state=props.get("SubState", "unknown"),
            )
        )
    return states


class Systemctl:
    """Look at and restart units. Unit names come from the daemon config only, which refuses
    a name that starts with `-`, so none can be read as an option."""

    def __init__(self, program: Path, timeout: float) -> None:
        self.program = program
        self.timeout = timeout

    async def _run(self, *args: str) -> proc.Completed:
        try:
            return await proc.run([self.program, *args], timeout=self.timeout)
        except OSError as exc:
            raise Unavailable(
                f"Cannot run {self.program}: {exc.strerror}.", error="systemctl_unavailable"
            ) from None

    async def states(self, units: Sequence[str]) -> list[UnitState]:
        """The state of each unit (one `systemctl show` for all of them)."""
        done = await self._run("show", "--no-pager", "-p", _PROPERTIES, *units)
        if not done.ok:
            raise Internal(f"systemctl show failed: {done.reason()}", error="systemctl_failed")
        return parse_show(done.stdout, units)

    async def restart(self, unit: str) -> UnitState:
        """Restart `unit` and return the state it is in right after."""
        done = await self._run("restart", "--no-ask-password", unit)
        if done.returncode == EXIT_NOT_INSTALLED:
            raise NotFound(f"The unit {unit} is not installed.", error="unit_not_installed", unit=unit)
        if not done.ok:
            raise Internal(
                f"systemctl restart {unit} failed: {done.reason()}", error="restart_failed", unit=unit
            )
        [state] = await self.states([unit])
        return state
