"""The proposals tree, walked without following anything, a directory at a time.

Each directory is opened with O_NOFOLLOW relative to its parent's descriptor
(one swapped for a link between the listing and the open is not entered),
entries are judged on their lstat, and the walk is bounded in depth. The
tree's own `.git` at the top is skipped (`agent_git` reads it, bounded);
a `.git` anywhere below is refused.

It yields one `Dir` per directory, with plain lists of what it holds, so
that a scan of 50,000 files spends its time on the 50,000 lstat calls and
not on an object and a generator frame per file.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cftui.proposals.hostile import GIT_NAMES, GIT_REFUSAL
from cftui.securefs import DIR_FLAGS, MAX_DEPTH


@dataclass(slots=True)
class Dir:
    """One directory as listed: valid until the walk moves on (its
    descriptor is closed then).

    `names`/`stats` are every entry in the order the filesystem lists them
    (directories included, by type only); `files` indexes the entries that
    are not directories; `refused` holds entries refused by name or depth
    (`.git` below the top, a directory nested too deep, one that cannot be
    opened). `refused_self` is set when the directory itself could not be
    listed or entered: then it holds nothing."""

    prefix: str  # its path with a trailing slash; "" for the top
    fd: int
    names: list[str] = field(default_factory=list)
    stats: list[os.stat_result] = field(default_factory=list)
    values: list[int] = field(default_factory=list)  # stat_cache.fields of each, flat
    files: list[int] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)
    refused_self: str | None = None
    gone: bool = False  # vanished or swapped since its parent was listed


_DIR_FIELDS = (stat.S_IFDIR, 0, 0, 0, 0, 0)
_IFMT, _IFDIR = 0o170000, stat.S_IFDIR


def walk(root_fd: int) -> Iterator[Dir]:
    """Every directory under (and including) the open directory `root_fd`."""
    yield from _walk(root_fd, "", 0)


def _walk(dfd: int, prefix: str, depth: int) -> Iterator[Dir]:
    here = Dir(prefix, dfd)
    # One loop a file, so its body is kept short: locals, no calls but lstat.
    names, stats, files, dirs = here.names, here.stats, here.files, here.dirs
    add_name, add_stat, add_file, add = names.append, stats.append, files.append, here.values.extend
    try:
        with os.scandir(dfd) as it:
            for entry in it:
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # gone since the listing
                name = entry.name
                mode = st.st_mode
                if mode & _IFMT != _IFDIR:
                    # stat_cache.fields, inline
                    add((mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_nlink))
                    if name in GIT_NAMES:
                        here.refused.append((name, GIT_REFUSAL))
                    else:
                        add_file(len(names))
                else:
                    add(_DIR_FIELDS)
                    if name not in GIT_NAMES:
                        dirs.append(name)
                    elif prefix:  # the top one is the tree's own git, read by agent_git
                        here.refused.append((name, GIT_REFUSAL))
                add_name(name)
                add_stat(st)
    except OSError as exc:
        yield Dir(prefix, dfd, refused_self=f"cannot be listed: {exc.strerror or exc}")
        return
    yield here
    for name in dirs:
        path = f"{prefix}{name}/"
        if depth >= MAX_DEPTH:
            yield Dir(path, dfd, refused_self=f"nested more than {MAX_DEPTH} directories deep")
            continue
        try:
            child = os.open(name, DIR_FLAGS, dir_fd=dfd)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR):
                # Gone, or swapped for something else since the listing:
                # seen as empty now; the next scan sees what is there.
                yield Dir(path, dfd, gone=True)
                continue
            yield Dir(path, dfd, refused_self=f"cannot be opened: {exc.strerror or exc}")
            continue
        try:
            yield from _walk(child, path, depth + 1)
        finally:
            os.close(child)


def open_tree(root: Path) -> int | None:
    """A descriptor on the tree's top (None when it does not exist); a link
    in its place is refused by O_NOFOLLOW."""
    try:
        return os.open(root, DIR_FLAGS)
    except FileNotFoundError:
        return None
