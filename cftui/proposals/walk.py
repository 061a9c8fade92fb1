"""The proposals tree, walked without following anything.

Each directory is opened with O_NOFOLLOW relative to its parent's descriptor
(one swapped for a link between the listing and the open is not entered),
entries are judged on their lstat, and the walk is bounded in depth. The
tree's own `.git` at the top is skipped (`agent_git` reads it, bounded);
a `.git` anywhere below is refused.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cftui.proposals.hostile import GIT_NAMES, GIT_REFUSAL
from cftui.securefs import DIR_FLAGS, MAX_DEPTH


@dataclass(frozen=True, slots=True)
class Entry:
    """A non-directory entry (or a refused directory), with its parent's
    descriptor and its name there: valid until the walk moves on."""

    rel: str
    st: os.stat_result
    dir_fd: int
    name: str
    refused: str | None = None  # set for a directory the walk refused to enter


def walk(root_fd: int) -> Iterator[Entry]:
    """Every file, link and special file under the open directory `root_fd`."""
    yield from _walk(root_fd, "", 0)


def _walk(dfd: int, rel: str, depth: int) -> Iterator[Entry]:
    try:
        with os.scandir(dfd) as it:
            entries = list(_lstats(it))
    except OSError as exc:
        st = os.fstat(dfd)
        yield Entry(rel or ".", st, dfd, "", f"cannot be listed: {exc.strerror or exc}")
        return
    for name, st in entries:
        path = f"{rel}/{name}" if rel else name
        if not stat.S_ISDIR(st.st_mode):
            if name in GIT_NAMES:
                yield Entry(path, st, dfd, name, GIT_REFUSAL)
            else:
                yield Entry(path, st, dfd, name)
            continue
        if name in GIT_NAMES:
            if rel:  # the top one is the tree's own git, read by agent_git
                yield Entry(path, st, dfd, name, GIT_REFUSAL)
            continue
        if depth >= MAX_DEPTH:
            yield Entry(path, st, dfd, name, f"nested more than {MAX_DEPTH} directories deep")
            continue
        try:
            child = os.open(name, DIR_FLAGS, dir_fd=dfd)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                continue
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                continue  # swapped for something else since the listing: the next scan sees it
            yield Entry(path, st, dfd, name, f"cannot be opened: {exc.strerror or exc}")
            continue
        try:
            yield from _walk(child, path, depth + 1)
        finally:
            os.close(child)


def _lstats(it: Iterator[os.DirEntry]) -> Iterator[tuple[str, os.stat_result]]:
    for entry in it:
        try:
            yield entry.name, entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue  # gone since the listing


def open_tree(root: Path) -> int | None:
    """A descriptor on the tree's top (None when it does not exist); a link
    in its place is refused by O_NOFOLLOW."""
    try:
        return os.open(root, DIR_FLAGS)
    except FileNotFoundError:
        return None
