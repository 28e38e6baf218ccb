"""Builds the Xray pieces once per daemon, so users.*, xray.* and backups.* share one lock."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from xrayd.xray import configfile
from xrayd.xray.aliases import AliasStore
from xrayd.xray.backup_service import BackupService
from xrayd.xray.backups import BackupStore
from xrayd.xray.commands import XrayCommands
from xrayd.xray.repository import ConfigRepository
from xrayd.xray.restart import Restarter
from xrayd.xray.users import UsersService

if TYPE_CHECKING:
    from xrayd.daemon import Daemon

log = logging.getLogger(__name__)


class XrayStack:
    def __init__(self, d: Daemon) -> None:
        config = d.config
        self.commands = XrayCommands(
            config.xray_bin, config.xray_api, config.subprocess_timeout, config.data_dir
        )
        self.store = BackupStore(
            config.backups_dir,
            keep=lambda: d.settings.get("backups", "keep"),
            clock=lambda: datetime.now(UTC),
        )
        self.repo = ConfigRepository(config.xray_config, self.commands, self.store)
        self.aliases = AliasStore(config.data_dir / "aliases.json")
        self.restarter = Restarter(d, self.repo)
        self.users = UsersService(d, self.repo, self.aliases, self.commands, self.restarter)
        self.backups = BackupService(d, self.repo, self.store, self.restarter)

    async def lifespan(self) -> AsyncIterator[None]:
        """Clear what a crash left behind, load aliases; at the end, finish queued changes."""
        for name in configfile.remove_strays(self.repo.path.resolve()):
            log.warning("removed %s, a temp file left by an interrupted write", name)
        self.commands.remove_strays()
        self.aliases.load()
        try:
            yield
        finally:
            await self.users.aclose()
