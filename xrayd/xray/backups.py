"""Config backups in `data_dir/backups/`: one file per write of config.json, newest kept.

A backup's name is all a caller may give, so a name must match exactly the pattern this
module makes (`config-20260104T120000.123456Z-user_added.json`): no separators, no `..`, no
absolute paths. Files are opened relative to the folder's descriptor with O_NOFOLLOW and
checked to be regular files, and the folder itself must be a real directory that only we can
write; nothing outside it is ever read or removed. Backups hold the REALITY private key: 0600.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from xrayd import atomic
from xrayd.errors import BadRequest, Internal, NotFound, TooLarge

NAME = re.compile(r"config-([0-9]{8}T[0-9]{6}\.[0-9]{6}Z)-([a-z0-9_]{1,40})\.json", re.ASCII)
REASON = re.compile(r"[a-z0-9_]{1,40}", re.ASCII)
MAX_BYTES = 64 * 1024 * 1024
_STAMP = "%Y%m%dT%H%M%S.%fZ"


@dataclass(frozen=True)
class Backup:
    name: str
    size: int
    mtime: float

    @property
    def reason(self) -> str:
        match = NAME.fullmatch(self.name)
        assert match is not None  # only listed or created names become Backups
        return match.group(2)

    def to_json(self) -> dict[str, Any]:
        moment = datetime.fromtimestamp(self.mtime, UTC)
        return {
            "name": self.name,
            "size": self.size,
            "mtime": moment.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "reason": self.reason,
        }


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise BadRequest(
            "name must be a backup name as xrayd makes them, "
            "e.g. config-20260104T120000.123456Z-manual.json.",
            error="invalid_backup_name",
        )
    return name


def check_reason(reason: Any) -> str:
    if not isinstance(reason, str) or not REASON.fullmatch(reason):
        raise BadRequest(
            "reason must be 1 to 40 lowercase letters, digits or underscores.", error="invalid_reason"
        )
    return reason


def _not_found(name: str) -> NotFound:
    return NotFound(f"There is no backup {name}.", error="backup_not_found")


class BackupStore:
    """The backups folder. Calls are blocking: run them in a thread."""

    def __init__(self, folder: Path, keep: Callable[[], int], clock: Callable[[], datetime]) -> None:
        self.folder = folder
        self._keep = keep
        self._clock = clock

    @contextlib.contextmanager
    def _dir(self) -> Iterator[int]:
        """The folder's descriptor, after checking that it is a directory only we can write."""
        try:
            fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise Internal(
                f"The backups folder {self.folder} is not a plain directory ({exc.strerror}).",
                error="backups_folder_unsafe",
            ) from None
        try:
            st = os.fstat(fd)
            if st.st_uid != os.geteuid() or st.st_mode & 0o022:
                raise Internal(
                    f"The backups folder {self.folder} must be owned by xrayd's user "
                    "and writable by no one else.",
                    error="backups_folder_unsafe",
                )
            yield fd
        finally:
            os.close(fd)

    def _entries(self, dir_fd: int) -> list[Backup]:
        found = []
        for name in os.listdir(dir_fd):
            if not NAME.fullmatch(name):
                continue
            with contextlib.suppress(FileNotFoundError):
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                if stat.S_ISREG(st.st_mode):
                    found.append(Backup(name, st.st_size, st.st_mtime))
        return sorted(found, key=lambda b: b.name, reverse=True)

    def list(self) -> list[Backup]:
        """Every backup, newest first (symlinks and other odd entries are not backups)."""
        with self._dir() as dir_fd:
            return self._entries(dir_fd)

    def save(self, data: bytes, reason: str) -> Backup:
        """Keep `data` as a new backup (durable before this returns), then apply retention."""
        check_reason(reason)
        with self._dir() as dir_fd:
            taken = {b.name for b in self._entries(dir_fd)}
            moment = self._clock().astimezone(UTC)
            name = f"config-{moment.strftime(_STAMP)}-{reason}.json"
            while name in taken:  # two writes in one microsecond: take the next one
                moment += timedelta(microseconds=1)
                name = f"config-{moment.strftime(_STAMP)}-{reason}.json"
            atomic.write_bytes(self.folder / name, data, mode=0o600)
            self._prune(dir_fd)
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            return Backup(name, st.st_size, st.st_mtime)

    def _prune(self, dir_fd: int) -> None:
        for old in self._entries(dir_fd)[self._keep() :]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(old.name, dir_fd=dir_fd)

    def read(self, name: str) -> bytes:
        check_name(name)
        with self._dir() as dir_fd:
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dir_fd)
            except OSError as exc:
                if exc.errno in (errno.ENOENT, errno.ELOOP, errno.ENXIO, errno.EISDIR):
                    raise _not_found(name) from None
                raise
            with os.fdopen(fd, "rb") as f:
                st = os.fstat(f.fileno())
                if not stat.S_ISREG(st.st_mode):
                    raise _not_found(name)
                if st.st_size > MAX_BYTES:
                    raise TooLarge(f"Backup {name} is over {MAX_BYTES >> 20} MiB.", error="backup_too_large")
                return f.read(MAX_BYTES + 1)

    def delete(self, name: str) -> None:
        check_name(name)
        with self._dir() as dir_fd:
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                raise _not_found(name) from None
            if not stat.S_ISREG(st.st_mode):
                raise _not_found(name)
            os.unlink(name, dir_fd=dir_fd)
