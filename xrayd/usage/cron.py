"""The collector's cron file (`cron_file` in the daemon config, `/etc/cron.d/…` by default).

Present means on. It holds one job: at the operator's schedule, root runs the installed
entry point (`xrayd collect`) with the daemon's own config file, so the collector runs even
while xrayd is down. The program and the config path come from the running daemon, never
from a request; cron hands the line to /bin/sh, so every word is shell-quoted, and a `%`
(a line break to cron) or a control character in a path is refused.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

from xrayd import atomic

MARKER = "# xray-report: the daily usage collector, written by xrayd (collector.toggle)."
_FIELD = re.compile(r"[0-9*,/-]{1,40}")
_UNSAFE = re.compile(r"[%\x00-\x1f\x7f]")


def command(config_file: Path) -> list[str]:
    """The collector's command line: this interpreter runs `xrayd collect` on this config."""
    return [sys.executable, "-m", "xrayd", "collect", "--quiet", "--config", str(config_file)]


def render(schedule: str, argv: list[str]) -> str:
    fields = schedule.split()
    if len(fields) != 5 or not all(_FIELD.fullmatch(f) for f in fields):
        raise ValueError(f"not a 5-field cron schedule: {schedule!r}")
    for word in argv:
        if _UNSAFE.search(word):
            raise ValueError(f"cannot put {word!r} in a cron line (a '%' or a control character)")
    return "\n".join(
        [
            MARKER,
            '# Edits are overwritten; turn it off with POST /api/collector/toggle {"enabled": false}.',
            "SHELL=/bin/sh",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            f"{' '.join(fields)} root {shlex.join(argv)}",
            "",
        ]
    )


def write(path: Path, schedule: str, argv: list[str]) -> bool:
    """Install the job (mode 0644, as cron wants); False when the file already says exactly this."""
    text = render(schedule, argv)
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except FileNotFoundError:
        pass
    atomic.write_text(path, text, mode=0o644)
    return True


def remove(path: Path) -> bool:
    """Remove the job; False when there was none."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    atomic.fsync_dir(path.parent)
    return True


def installed_schedule(path: Path) -> str | None:
    """The schedule of the installed job, or None when the collector is off."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    for line in text.splitlines():
        words = line.split()
        if len(words) > 6 and not line.startswith("#") and "=" not in words[0]:
            return " ".join(words[:5])
    return ""
