"""Files on the host that must not leak: private files and directories
created with their final modes, and every read or write inside a tree the
gateway can write (see the second half).

Secrets are never written world-readable and then chmod-ed: the mode is
given to `open`/`mkdir` so there is no window in which another user could
read them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from cftui.errors import CftuiError

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def make_private_dirs(path: Path) -> list[Path]:
    """Create `path` and any missing parents at 0700; return what was created."""
    created: list[Path] = []
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        os.mkdir(d, PRIVATE_DIR)
        created.append(d)
    return created


def write_new_private_file(path: Path, data: bytes | str, *, durable: bool = True) -> None:
    """Write a file that must not exist yet, created at 0600 (fsynced unless
    `durable=False`: a file that need not outlive a crash)."""
    raw = data.encode() if isinstance(data, str) else data
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE)
    with os.fdopen(fd, "wb") as f:
        f.write(raw)
        f.flush()
        if durable:
            os.fsync(f.fileno())


def atomic_write_private(path: Path, data: bytes | str) -> None:
    """Replace `path` atomically: temp file at 0600 beside it, fsync, rename."""
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- trees the gateway can write ----------------------------------------------
#
# `state/` and `code/` (and the proposals tree) are written by the agent,
# which may put a symbolic link, a fifo or a hard link where cftui expects
# a plain file: a host process running as root that opens such a path by
# name reads or writes whatever the agent pointed it at. So every host read
# or write there goes through these helpers: each path component is opened
# relative to its parent's descriptor with O_NOFOLLOW (no link is ever
# followed, even one swapped in between two calls), the file is checked on
# its own descriptor (a regular file, one link, bounded size), and a write is
# a temp file in the same directory renamed over the name, owned and
# chmod-ed on its descriptor.

AGENT_FILE_MAX = 16 << 20
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafeFile(CftuiError):
    """A path in a tree the gateway can write is a link, a special file, a
    hard link or too large: cftui refuses to touch it."""


def kind_of(st: os.stat_result) -> str:
    """What an entry is that is not a plain single-named file, in words
    (refusals of agent-written trees say it the same way everywhere)."""
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a fifo"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISREG(mode) and st.st_nlink > 1:
        return f"a hard link ({st.st_nlink} names for one file)"
    return "not a regular file"


def _refuse(path: Path, what: str) -> UnsafeFile:
    return UnsafeFile(
        f"refusing {path}: it is {what}, in a tree the gateway can write "
        "(cftui never follows links or reads special files there): "
        "remove it, or restore a snapshot, and try again"
    )


def _split(relpath: str) -> list[str]:
    parts = [p for p in relpath.split("/") if p not in ("", ".")]
    if not parts or relpath.startswith("/") or ".." in parts:
        raise ValueError(f"not a relative path inside the tree: {relpath!r}")
    return parts


def _open_root(root: Path) -> int:
    """The tree's top. Its own path is the host's (the gateway cannot rename
    its mount point), but a link there is still refused."""
    try:
        return os.open(root, DIR_FLAGS)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise _refuse(root, kind_of(os.lstat(root))) from None
        raise


def _open_dirs(root: Path, parts: list[str]) -> int | None:
    """A descriptor on root/parts..., each step refusing a link; None when a
    component is missing (or is a plain file, so the path cannot exist)."""
    fd = _open_root(root)
    for i, part in enumerate(parts):
        try:
            child = os.open(part, DIR_FLAGS, dir_fd=fd)
        except OSError as exc:
            here = root.joinpath(*parts[: i + 1])
            code = exc.errno
            try:
                st = os.stat(part, dir_fd=fd, follow_symlinks=False)
            except OSError:
                st = None
            os.close(fd)
            if code == errno.ENOENT:
                return None
            if st is not None and stat.S_ISLNK(st.st_mode):
                raise _refuse(here, "a symbolic link") from None
            if code == errno.ENOTDIR and st is not None and stat.S_ISREG(st.st_mode):
                return None
            if code in (errno.ELOOP, errno.ENOTDIR) and st is not None:
                raise _refuse(here, kind_of(st)) from None
            raise
        os.close(fd)
        fd = child
    return fd


@contextlib.contextmanager
def agent_dir(root: Path, reldir: str = "") -> Iterator[int | None]:
    """A descriptor on the directory `root/reldir`, reached without following
    any link (None when it does not exist); closed on exit."""
    fd = _open_dirs(root, _split(reldir) if reldir else [])
    try:
        yield fd
    finally:
        if fd is not None:
            os.close(fd)


def list_agent_dir(root: Path, reldir: str) -> list[str]:
    """The names in `root/reldir` (links included, not followed); [] when absent."""
    with agent_dir(root, reldir) as fd:
        return [] if fd is None else sorted(os.listdir(fd))


def _check_regular(path: Path, st: os.stat_result, max_bytes: int) -> None:
    if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
        raise _refuse(path, kind_of(st))
    if st.st_size > max_bytes:
        raise _refuse(path, f"larger than {max_bytes} bytes ({st.st_size})")


def read_agent_file(root: Path, relpath: str, max_bytes: int = AGENT_FILE_MAX) -> bytes | None:
    """The bytes of the regular file `root/relpath`, or None when it does not
    exist. UnsafeFile for a link (anywhere on the path), a fifo, a socket, a
    device, a hard link or a file over `max_bytes`; OSError otherwise."""
    parts = _split(relpath)
    path = root.joinpath(*parts)
    with agent_dir(root, "/".join(parts[:-1])) as dfd:
        if dfd is None:
            return None
        try:
            # O_NONBLOCK: opening a fifo must not wait for a writer.
            fd = os.open(parts[-1], READ_FLAGS, dir_fd=dfd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise _refuse(path, "a symbolic link") from None
            raise
        try:
            _check_regular(path, os.fstat(fd), max_bytes)
            chunks = []
            left = max_bytes + 1
            while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
                chunks.append(chunk)
                left -= len(chunk)
        finally:
            os.close(fd)
    data = b"".join(chunks)
    if len(data) > max_bytes:  # it grew while we read
        raise _refuse(path, f"larger than {max_bytes} bytes")
    return data


def write_agent_file(
    root: Path,
    relpath: str,
    data: bytes | str,
    *,
    mode: int = PRIVATE_FILE,
    owner: tuple[int, int] | None = None,
) -> None:
    """Replace `root/relpath` atomically (its directory must exist): a temp
    file beside it, owned and chmod-ed on its descriptor, fsync-ed, renamed
    over the name. An existing link, special file or hard link there is
    refused, not replaced. When cftui runs as root the file is given to
    `owner`, by default the owner of its directory (the gateway's user in a
    tree handed to it)."""
    raw = data.encode() if isinstance(data, str) else data
    parts = _split(relpath)
    path = root.joinpath(*parts)
    name = parts[-1]
    with agent_dir(root, "/".join(parts[:-1])) as dfd:
        if dfd is None:
            raise FileNotFoundError(errno.ENOENT, "no such directory", str(path.parent))
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            pass
        else:
            _check_regular(path, st, 1 << 62)
        if owner is None and os.geteuid() == 0:
            dst = os.fstat(dfd)
            owner = (dst.st_uid, dst.st_gid)
        tmp = f".{name}.{secrets.token_hex(6)}.tmp"
        fd = os.open(tmp, _TEMP_FLAGS, PRIVATE_FILE, dir_fd=dfd)
        try:
            try:
                view = memoryview(raw)
                while view:
                    view = view[os.write(fd, view) :]
                if owner is not None and os.geteuid() == 0:
                    os.fchown(fd, *owner)
                os.fchmod(fd, mode)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=dfd)
            raise
        os.fsync(dfd)


MAX_DEPTH = 128


def own_tree(
    root: Path,
    uid: int,
    gid: int,
    *,
    top: tuple[int, int] | None = None,
    skip_top: frozenset[str] = frozenset(),
    reldir: str = "",
) -> list[str]:
    """Give `root` (or `root/reldir`, reached without following a link) and
    everything under it to uid:gid, never through a link.

    The walk holds each directory's descriptor and changes each entry by
    name relative to it; a directory is entered with O_NOFOLLOW, so one
    swapped for a link mid-walk is not entered (nor a fifo waited on), and
    links are re-owned as links. A file with several names is left as it is
    (another of its names may be outside): those are returned. `skip_top`
    names entries of `root` left alone (`.git`), `top` the owner of `root`
    itself (default uid:gid). A tree nested deeper than MAX_DEPTH is refused
    rather than exhausting descriptors."""
    left: list[str] = []
    with agent_dir(root, reldir) as fd:
        if fd is None:
            raise FileNotFoundError(errno.ENOENT, "no such directory", str(root / reldir))
        st = os.fstat(fd)
        if (st.st_uid, st.st_gid) != (top or (uid, gid)):
            os.fchown(fd, *(top or (uid, gid)))
        _own_dir(fd, str(root / reldir if reldir else root), uid, gid, left, 0, skip_top)
    return left


def _own_dir(
    dfd: int, path: str, uid: int, gid: int, left: list[str], depth: int, skip: frozenset[str]
) -> None:
    if depth > MAX_DEPTH:
        raise _refuse(Path(path), f"nested more than {MAX_DEPTH} directories deep")
    with os.scandir(dfd) as it:
        entries = [e for e in it if e.name not in skip]
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(st.st_mode):
            try:
                child = os.open(entry.name, DIR_FLAGS, dir_fd=dfd)
            except OSError:
                continue  # gone, or swapped for something else since the listing
            try:
                if (st.st_uid, st.st_gid) != (uid, gid):
                    os.fchown(child, uid, gid)
                _own_dir(
                    child, os.path.join(path, entry.name), uid, gid, left, depth + 1, frozenset()
                )
            finally:
                os.close(child)
            continue
        if (st.st_uid, st.st_gid) == (uid, gid):
            continue
        if not stat.S_ISLNK(st.st_mode) and st.st_nlink > 1:
            left.append(os.path.join(path, entry.name))
            continue
        with contextlib.suppress(FileNotFoundError):
            os.chown(entry.name, uid, gid, dir_fd=dfd, follow_symlinks=False)


def make_agent_dirs(root: Path, reldir: str, mode: int = 0o755) -> None:
    """Create `root/reldir` and its missing parents, each made relative to
    its parent's descriptor: a link planted on the way is refused, never
    followed. When cftui runs as root each new directory goes to the owner
    of its parent (the gateway's user in a tree handed to it)."""
    parts = _split(reldir)
    fd = _open_root(root)
    try:
        for i, part in enumerate(parts):
            try:
                os.mkdir(part, mode, dir_fd=fd)
                made = True
            except FileExistsError:
                made = False
            try:
                child = os.open(part, DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    st = os.stat(part, dir_fd=fd, follow_symlinks=False)
                    raise _refuse(root.joinpath(*parts[: i + 1]), kind_of(st)) from None
                raise
            if made and os.geteuid() == 0:
                parent = os.fstat(fd)
                os.fchown(child, parent.st_uid, parent.st_gid)
            os.close(fd)
            fd = child
    finally:
        os.close(fd)


def remove_agent_entry(root: Path, relpath: str) -> bool:
    """Remove the name `root/relpath` (a file, a link or any special file,
    never what a link points at; a directory with all it holds), reaching it
    without following links; whether there was anything to remove."""
    parts = _split(relpath)
    with agent_dir(root, "/".join(parts[:-1])) as dfd:
        if dfd is None:
            return False
        try:
            st = os.stat(parts[-1], dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            # rmtree with dir_fd walks by descriptor and never follows a link.
            shutil.rmtree(parts[-1], dir_fd=dfd)
        else:
            os.unlink(parts[-1], dir_fd=dfd)
        return True
