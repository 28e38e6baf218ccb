"""backups.*: config backups in data_dir/backups (list, preview, create, restore, delete).

Registered by xrayd.methods.xray with the shared XrayStack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xrayd.daemon import Daemon
    from xrayd.xray.stack import XrayStack


ACTIONS = ("list", "preview", "create", "restore", "delete")  # methods of BackupService


def register(d: Daemon, stack: XrayStack) -> None:
    for action in ACTIONS:
        d.register(f"backups.{action}", getattr(stack.backups, action))
