"""cftui's record of what each file of the proposals tree held, so a scan
of 50,000 files hashes only those that changed (git's index, kept by us).

It lives beside the tree, where the gateway cannot write: nothing the agent
controls vouches for content. An entry is trusted only while the file's
size, mtime, ctime, inode and mode are all as recorded; the agent can set
mtime but not ctime, which moves on every write. As in git, an entry whose
ctime is close to when it was recorded is "racy" (a write in the same clock
tick would not show) and is hashed again.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from cftui.securefs import atomic_write_private

VERSION = 1
RACY_NS = 100_000_000  # well above any filesystem's timestamp granularity


def key(st: os.stat_result) -> tuple[int, int, int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode)


@dataclass
class StatCache:
    """Path -> (stat key, blob id); `base` is the approved commit the tree
    was seeded from (where the agent's own commits start)."""

    base: str | None = None
    files: dict[str, list] = field(default_factory=dict)
    stamp: int = 0  # time.time_ns() when the entries were taken
    dirty: bool = False

    def lookup(self, rel: str, st: os.stat_result) -> str | None:
        """The recorded blob id if the file is provably unchanged since."""
        entry = self.files.get(rel)
        if (
            entry is None
            or entry[2] != st.st_ctime_ns
            or entry[1] != st.st_mtime_ns
            or entry[0] != st.st_size
            or entry[3] != st.st_ino
            or entry[4] != st.st_mode
            or st.st_ctime_ns + RACY_NS > self.stamp
        ):
            return None
        return entry[5]

    def record(self, rel: str, st: os.stat_result, sha: str, taken_ns: int) -> None:
        """Remember a file hashed with `st` stable around the read; only
        once it is old enough not to be racy at `taken_ns`."""
        if st.st_ctime_ns + RACY_NS > taken_ns:
            return
        self.files[rel] = [*key(st), sha]
        self.dirty = True


def load(path: Path) -> StatCache:
    """The cache, or an empty one when absent or unreadable (it is only a cache)."""
    try:
        with open(path, "rb") as f:
            raw = orjson.loads(f.read())
        if raw.get("v") != VERSION:
            return StatCache()
        return StatCache(raw.get("base"), dict(raw.get("files", {})), int(raw.get("stamp", 0)))
    except (OSError, ValueError, TypeError, AttributeError):
        return StatCache()


def save(path: Path, cache: StatCache, *, stamp: int | None = None) -> None:
    """Write it back (0600, atomically); `stamp` moves the racy line forward."""
    if stamp is not None:
        cache.stamp = stamp
    body = orjson.dumps(
        {"v": VERSION, "base": cache.base, "stamp": cache.stamp, "files": cache.files}
    )
    atomic_write_private(path, body)
    cache.dirty = False


def drop(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def now_ns() -> int:
    return time.time_ns()
