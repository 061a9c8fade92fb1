"""The file part of a restore: a safety snapshot, the new state extracted
beside `state/`, then swapped in (in one step where Linux allows it), and
the crash recovery of a restore that died half-way. On any failure the old
`state/` is left exactly as it was.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import stat
import time
from pathlib import Path

from cftui import locks
from cftui.errors import SnapshotError
from cftui.fleet import FleetHome
from cftui.progress import Progress, no_progress
from cftui.securefs import fsync_dir, make_private_dirs
from cftui.snapshots.catalog import resolve
from cftui.snapshots.create import create_snapshot
from cftui.snapshots.decrypt import check_key, extract_snapshot
from cftui.snapshots.reasons import os_message

SAFETY_LABEL = "pre-restore"


def restore_state(
    home: FleetHome, bot: str, name: str, *, progress: Progress = no_progress
) -> tuple[str, str | None]:
    """The file part of a restore, without the gateway: safety snapshot,
    extract beside `state/`, swap. Returns (restored name, safety snapshot).
    On any failure the old `state/` is left exactly as it was."""
    path = resolve(home, bot, name)
    check_key(home, bot, path)
    state = home.state_dir(bot)
    repo = home.bot_repo(bot)
    make_private_dirs(repo)
    _recover_interrupted(repo, state)
    safety = None
    if state.is_dir():
        safety = create_snapshot(
            home, bot, SAFETY_LABEL, progress=progress, record=False, point_latest=False
        ).name
    stamp = f"{os.getpid()}-{time.monotonic_ns()}"
    new = repo / f".state-restore-{stamp}"
    old = repo / f".state-old-{stamp}"
    mode = stat.S_IMODE(state.stat().st_mode) if state.is_dir() else 0o700
    os.mkdir(new, mode)
    with contextlib.suppress(OSError):
        if state.is_dir() and os.geteuid() == 0:
            st = state.stat()
            os.chown(new, st.st_uid, st.st_gid)
    try:
        extract_snapshot(home, bot, path, new, progress=progress)
        _fsync_tree(new)
        if state.exists() and _exchange(new, state):
            old = new  # after the exchange, `new` holds the previous state
        else:
            if state.exists():
                os.rename(state, old)
            try:
                os.rename(new, state)
            except OSError:
                if old.exists():
                    os.rename(old, state)
                raise
        fsync_dir(repo)
    except OSError as exc:
        shutil.rmtree(new, ignore_errors=True)
        raise SnapshotError(f"cannot restore {path.name}: {os_message(exc)}") from None
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return path.name, safety


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directories in one step (Linux renameat2 RENAME_EXCHANGE), so
    there is no instant without a `state/`. False where it is not supported."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code))


def _recover_interrupted(repo: Path, state: Path) -> None:
    """Tidy what a restore that died left: its half-extracted directory, and,
    if it died between the two renames of the fallback swap, the old state."""
    for entry in os.scandir(repo):
        m = re.fullmatch(r"\.state-(restore|old)-(\d+)-\d+", entry.name)
        if not m or locks.pid_alive(int(m[2])):
            continue
        if m[1] == "old" and not state.exists():
            os.rename(entry.path, state)
        else:
            shutil.rmtree(entry.path, ignore_errors=True)


def _fsync_tree(root: Path) -> None:
    """Make the restored files durable before the old state goes: a sync of the
    filesystem is one call instead of one per file."""
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.syncfs(fd) if hasattr(os, "syncfs") else os.sync()
    finally:
        os.close(fd)
