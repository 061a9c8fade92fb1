"""One controller per fleet home: an exclusive flock on
`controller/serve.lock`, which also holds the pid of the one that runs.

The flock, not the pid, is what decides: a controller that died (even with
SIGKILL) releases it, so a stale file never blocks the next start, and the
TUI asks "does one run?" with a non-blocking shared lock attempt, which
cannot be fooled by a recycled pid.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cftui.audit.events import utc_now_iso
from cftui.errors import CftuiError
from cftui.fleet import FleetHome
from cftui.securefs import PRIVATE_FILE, make_private_dirs

_MAX_LOCK_BYTES = 4096


def controller_dir(home: FleetHome) -> Path:
    """The controller's own files: its lock, the deliveries it has seen,
    when each schedule last ran. 0700, outside every tree an agent writes."""
    return home.root / "controller"


def lock_file(home: FleetHome) -> Path:
    return controller_dir(home) / "serve.lock"


class ControllerRunning(CftuiError):
    """Another controller holds this fleet home."""


@dataclass(frozen=True)
class ControllerInfo:
    """What a running controller wrote into its lock file."""

    pid: int
    listen: str
    started: str


def _read_info(fd: int) -> ControllerInfo | None:
    try:
        raw = os.pread(fd, _MAX_LOCK_BYTES, 0)
        data = json.loads(raw)
        return ControllerInfo(int(data["pid"]), str(data.get("listen", "")), str(data["started"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


class ServeLock:
    """Held for the controller's whole life; `release()` (or process exit)
    lets the next one start."""

    def __init__(self, home: FleetHome, listen: str) -> None:
        make_private_dirs(controller_dir(home))
        path = lock_file(home)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, PRIVATE_FILE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            info = _read_info(fd)
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            who = f"pid {info.pid}" if info else "another process"
            raise ControllerRunning(
                f"a controller already runs for {home.root} ({who}): stop it first"
            ) from None
        body = json.dumps({"pid": os.getpid(), "listen": listen, "started": utc_now_iso()})
        os.ftruncate(fd, 0)
        os.pwrite(fd, body.encode() + b"\n", 0)
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None


def running_controller(home: FleetHome) -> ControllerInfo | None:
    """The controller that runs for this home, or None. Cheap (an open and a
    non-blocking flock attempt), never blocks, creates nothing: what the
    TUI's header asks."""
    try:
        fd = os.open(lock_file(home), os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return _read_info(fd) or ControllerInfo(0, "", "")
        return None
    finally:
        os.close(fd)
