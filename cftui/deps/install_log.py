"""The last dependency install's output, kept where the operator reads it
(`FleetHome.installer_log`: `logs/<bot>/installer.log`, 0600): the
installer container is removed when npm exits, and the VM's install is a
one-shot command, so neither runtime has a log to ask for afterwards.

Each line is `<RFC 3339 UTC time> <text>`, as Docker's timestamped logs
are; the first is cftui's own (what was installed, how it ended). The text
is npm's, which quotes the registry's answers: faces show it inert. The
file is replaced whole by each install and bounded (the newest lines kept).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from cftui.fleet import FleetHome
from cftui.securefs import atomic_write_private, make_private_dirs

MAX_BYTES = 1 << 20  # npm's output of a large tree is a few hundred KiB


def now_stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def keep(home: FleetHome, bot: str, header: str, lines: Iterable[str]) -> Path:
    """Write the install's output: `header` stamped now, then `lines`
    (each already `<time> <text>`, or stamped now when it has no time)."""
    path = home.installer_log(bot)
    make_private_dirs(path.parent)
    body = [f"{now_stamp()} cftui: {header}"]
    for line in lines:
        stamp, _, rest = line.partition(" ")
        body.append(line if rest and _parse(stamp) else f"{now_stamp()} {line}")
    data = ("\n".join(body) + "\n").encode("utf-8", "replace")
    if len(data) > MAX_BYTES:  # the newest lines, from a line start
        cut = data[-MAX_BYTES:]
        data = cut[cut.find(b"\n") + 1 :]
    atomic_write_private(path, data)
    return path


def text_of(line: str) -> str:
    """A line without its leading time, if it has one."""
    stamp, _, rest = line.partition(" ")
    return rest if rest and _parse(stamp) else line


def read(home: FleetHome, bot: str, tail: int | None) -> list[tuple[datetime | None, str]]:
    """The last `tail` lines (None: all) of the last install, with their
    times; empty when no install has run."""
    path = home.installer_log(bot)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return []
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        f.seek(max(0, size - MAX_BYTES))
        raw = f.read(MAX_BYTES)
    lines = raw.decode("utf-8", "replace").splitlines()
    out: list[tuple[datetime | None, str]] = []
    for line in lines if tail is None else lines[len(lines) - tail :] if tail else []:
        stamp, _, rest = line.partition(" ")
        ts = _parse(stamp)
        out.append((ts, rest) if ts else (None, line))
    return out


def version(home: FleetHome, bot: str) -> tuple[int, int] | None:
    """What changes when a new install's log replaces the last (inode,
    mtime); None when there is none."""
    try:
        st = os.stat(home.installer_log(bot))
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns)


def _parse(stamp: str) -> datetime | None:
    if not stamp.endswith("Z") or "T" not in stamp:
        return None
    try:
        # Docker gives nanoseconds: fromisoformat takes at most microseconds.
        head, dot, frac = stamp[:-1].partition(".")
        when = datetime.fromisoformat(head + (dot + frac[:6] if dot else ""))
    except ValueError:
        return None
    return when.replace(tzinfo=UTC)
