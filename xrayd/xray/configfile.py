"""config.json on disk: a stat key for caching, and a write in two phases with a check between.

`stage` writes the candidate as a temp file beside the target (the target's mode and owner,
fsync'd), so `xray run -test` checks exactly the bytes that `commit` then renames into place.
A crash at any moment leaves the old file or the new one, plus at most a stray temp file that
`remove_strays` clears at the next start.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from xrayd.atomic import fsync_dir

Key = tuple[int, int, int, int]  # (device, inode, size, mtime_ns)


def key_of(st: os.stat_result) -> Key:
    """What changes whenever the file's content may have: a cheap stand-in for reading it."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass(frozen=True)
class Staged:
    path: Path  # the temp file, in the target's folder
    key: Key  # the key the target will have once the temp file is renamed over it


def read(path: Path) -> tuple[bytes, Key]:
    """The file's bytes and the key of exactly what was read."""
    with open(path, "rb") as f:
        key = key_of(os.fstat(f.fileno()))
        return f.read(), key


def current_key(path: Path) -> Key | None:
    try:
        return key_of(os.stat(path))
    except FileNotFoundError:
        return None


def stage(target: Path, data: bytes) -> Staged:
    """Write `data` to a temp file beside `target`, with its mode and owner, durably."""
    st = os.stat(target)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), stat.S_IMODE(st.st_mode))
            if os.geteuid() == 0:
                os.fchown(f.fileno(), st.st_uid, st.st_gid)
            os.fsync(f.fileno())
            key = key_of(os.fstat(f.fileno()))  # a rename keeps inode, size and mtime
    except BaseException:
        discard(Path(name))
        raise
    return Staged(Path(name), key)


def commit(staged: Staged, target: Path) -> None:
    """Rename the staged file over `target` and make the rename durable."""
    os.replace(staged.path, target)
    fsync_dir(target.parent)


def discard(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def remove_strays(target: Path) -> list[str]:
    """Delete temp files a crash left beside `target` (only names `stage` makes)."""
    pattern = re.compile(re.escape(f".{target.name}.") + r"[a-z0-9_]{8}\.tmp", re.ASCII)
    removed = []
    with contextlib.suppress(FileNotFoundError), os.scandir(target.parent) as entries:
        for entry in entries:
            if pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                discard(Path(entry.path))
                removed.append(entry.name)
    return removed
