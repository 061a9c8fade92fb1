"""The age child process that both directions run, and the bot key it is
given.

The age format (`cftui.age`) runs in a small child process in both
directions: it gives the crypto the second core (tar has its own process on
create, tarfile keeps the GIL busy on restore), and its failures come back as
one line. It is `python -I -m cftui.age ARGS`, spelled as `-c` so that `-I`
(which ignores the environment and the user's site) still finds this
checkout's package: its parent directory is put on the path, so a checkout
without install works too. The identity reaches the decryptor on its stdin,
never in its arguments or environment.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import cftui
from cftui.age import identity_text, recipient_of
from cftui.botinit import read_identity
from cftui.errors import CftuiError, SnapshotError
from cftui.fleet import FleetHome

CHUNK = 1 << 20

_CHILD = (
    "import sys; sys.path[:0] = [sys.argv.pop(1)]; "
    "from cftui.age.child import main; sys.exit(main(sys.argv[1:]))"
)
_PACKAGE_PARENT = str(Path(cftui.__file__).resolve().parent.parent)


class ChildFailed(Exception):
    """The crypto child process failed; its one-line reason is the message."""


def spawn(*args: str, **kwargs) -> subprocess.Popen:
    """`python -m cftui.age ARGS` with its stderr piped."""
    return subprocess.Popen(
        [sys.executable, "-I", "-c", _CHILD, _PACKAGE_PARENT, *args],
        stderr=subprocess.PIPE,
        bufsize=0,
        **kwargs,
    )


def child_result(proc: subprocess.Popen) -> str | None:
    """Wait for a crypto child; its error line, or None if it succeeded."""
    err = proc.stderr.read().decode("utf-8", "replace").strip() if proc.stderr else ""
    code = proc.wait()
    if code == 0:
        return None
    return err or f"crypto process exited with {code}"


def widen_pipe(fd: int) -> None:
    """A 1 MB pipe instead of 64 KB: fewer wake-ups between the two processes."""
    with contextlib.suppress(OSError, AttributeError):
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, CHUNK)


def bot_recipient(home: FleetHome, bot: str) -> str:
    """The bot's `age1...` recipient."""
    try:
        return recipient_of(read_identity(home.snapshot_key(bot)))
    except CftuiError as exc:
        raise SnapshotError(str(exc)) from None


def bot_identity(home: FleetHome, bot: str) -> str:
    """The bot's `AGE-SECRET-KEY-1...` identity (never logged or shown)."""
    try:
        return identity_text(read_identity(home.snapshot_key(bot)))
    except CftuiError as exc:
        raise SnapshotError(str(exc)) from None
