"""users.*: list, add, delete, kick, rename and link the users of the managed inbound.

Registered by xrayd.methods.xray with the shared XrayStack (users.stats is the live module's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xrayd.daemon import Daemon
    from xrayd.xray.stack import XrayStack


ACTIONS = ("list", "add", "delete", "kick", "update_alias", "link")  # methods of UsersService


def register(d: Daemon, stack: XrayStack) -> None:
    for action in ACTIONS:
        d.register(f"users.{action}", getattr(stack.users, action))
