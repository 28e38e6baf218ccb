"""The `xray` command lines xrayd runs, and what their output means.

`xray api adu/rmu` exit 0 even when a user fails, so success is read from their lines
(`Added N user(s) in total.`, `User X already exists.`); a dial failure (`failed to dial`,
exit 1) means the API is not reachable. Each call is one argv list with the daemon's
subprocess timeout; the program path comes from the daemon config only.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xrayd import proc
from xrayd.errors import Internal, Timeout, Unprocessable

INVALID_CONFIG_EXIT = 23
_ADDED = re.compile(r"^Added (\d+) user\(s\) in total\.$", re.M)
_REMOVED = re.compile(r"^Removed (\d+) user\(s\) in total\.$", re.M)
_EXISTS = re.compile(r"User (.+?) already exists\.")
_MISSING = re.compile(r"User (.+?) not found\.")
_NOISE = re.compile(r"^(processing inbound: |add user: |remove user: |result: ok$)")


@dataclass(frozen=True)
class ApiOutcome:
    """What one `xray api adu|rmu` call did."""

    unreachable: bool = False  # nothing answered at the API address
    count: int | None = None  # the `Added/Removed N` figure, when printed
    exists: frozenset[str] = frozenset()  # emails adu refused as duplicates (lowercased)
    missing: frozenset[str] = frozenset()  # emails rmu did not find (lowercased)
    errors: tuple[str, ...] = field(default_factory=tuple)  # any other failure lines

    def reason(self) -> str:
        """Why the call did not do everything it was asked to, for an event."""
        if self.errors:
            return "; ".join(self.errors)
        if self.exists:
            return f"Xray already has {', '.join(sorted(self.exists))}"
        return "Xray's API did not confirm every user"


def parse_api(result: proc.Completed, total: re.Pattern[str]) -> ApiOutcome:
    text = result.stdout + "\n" + result.stderr
    if result.returncode != 0 and "failed to dial" in text:
        return ApiOutcome(unreachable=True, errors=(result.reason(),))
    counted = total.search(text)
    exists = {m.group(1).lower() for m in _EXISTS.finditer(text)}
    missing = {m.group(1).lower() for m in _MISSING.finditer(text)}
    errors = tuple(
        line.strip()
        for line in text.splitlines()
        if line.strip()
        and not total.match(line.strip())
        and not _NOISE.match(line.strip())
        and not _EXISTS.search(line)
        and not _MISSING.search(line)
    )
    if result.returncode != 0 and not errors:
        errors = (result.reason(),)
    return ApiOutcome(
        count=int(counted.group(1)) if counted else None,
        exists=frozenset(exists),
        missing=frozenset(missing),
        errors=errors,
    )


class XrayCommands:
    """`xray run -test`, `xray api adu`, `xray api rmu`, with the daemon's binary and API."""

    def __init__(self, xray_bin: Path, api: str, timeout: float, scratch: Path) -> None:
        self.xray_bin = xray_bin
        self.api = api
        self.timeout = timeout
        self.scratch = scratch  # private folder for adu's input files

    async def test(self, config: Path) -> None:
        """Raise 422 `xray_config_invalid` with Xray's reason when Xray would refuse `config`."""
        result = await proc.run([self.xray_bin, "run", "-test", "-config", config], timeout=self.timeout)
        if result.ok:
            return
        reason = result.reason().removeprefix("Failed to start: ")
        if result.returncode == INVALID_CONFIG_EXIT:
            raise Unprocessable(
                f"Xray refuses the config: {reason}", error="xray_config_invalid", reason=reason
            )
        raise Internal(
            f"`xray run -test` failed (exit {result.returncode}): {reason}",
            error="xray_test_failed",
            reason=reason,
        )

    async def add_users(self, inbound: dict[str, Any], clients: list[dict[str, Any]]) -> ApiOutcome:
        """`xray api adu` with a file holding the inbound's tag, protocol, port and `clients`."""
        shell = {k: inbound[k] for k in ("tag", "protocol", "listen", "port") if k in inbound}
        shell["settings"] = {"clients": clients, "decryption": "none"}
        data = json.dumps({"inbounds": [shell]}, ensure_ascii=False).encode()
        fd, name = tempfile.mkstemp(prefix=".adu-", suffix=".json", dir=self.scratch)
        try:
            with os.fdopen(fd, "wb") as f:  # mkstemp made it 0600: it holds user ids
                f.write(data)
            return await self._api(["adu", f"--server={self.api}", name], _ADDED)
        finally:
            os.unlink(name)

    async def remove_users(self, tag: str, emails: list[str]) -> ApiOutcome:
        # `--` ends Go's flags, so an email that starts with `-` is still an email
        return await self._api(["rmu", f"--server={self.api}", f"-tag={tag}", "--", *emails], _REMOVED)

    async def _api(self, args: list[str], total: re.Pattern[str]) -> ApiOutcome:
        try:
            result = await proc.run([self.xray_bin, "api", *args], timeout=self.timeout)
        except Timeout as exc:
            return ApiOutcome(unreachable=True, errors=(exc.message,))
        return parse_api(result, total)

    def remove_strays(self) -> None:
        """Delete adu input files a crash left behind."""
        for path in self.scratch.glob(".adu-*.json"):
            path.unlink(missing_ok=True)
