"""The build context of a gateway image, made from a tree the agent can write.

docker-py's own context tar follows links (`open(path)` after an `lstat`,
`.dockerignore` read through a link) and `os.walk(followlinks=True)` loops on
a link to a parent. Here every directory is opened with `O_NOFOLLOW` under
its parent's descriptor and every file with `O_NOFOLLOW | O_NONBLOCK`, and
checked on the descriptor: a file swapped for a link, a fifo or a device
between the listing and the read is skipped or refused, never followed.
Links go into the tar as links (the engine resolves them inside the context
only); fifos, sockets and devices are left out; modes keep only the
permission bits; owners are 0. The Dockerfile goes in as the bytes that were
checked, read once. The same walk gives the content hash that decides
whether the image must be rebuilt.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from docker.utils.build import PatternMatcher

from cftui.errors import RuntimeOperationError
from cftui.securefs import DIR_FLAGS, MAX_DEPTH, READ_FLAGS

DOCKERFILE = "Dockerfile"
DOCKERIGNORE = ".dockerignore"
MAX_DOCKERFILE_BYTES = 1 << 20
MAX_DOCKERIGNORE_BYTES = 1 << 16
# Left out of every gateway context: the operator's git metadata (remotes
# may hold credentials) and caches that would only slow the build.
EXCLUDED_NAMES = frozenset({".git", "__pycache__", ".pytest_cache", ".ruff_cache"})
_CHUNK = 1 << 20


def _max_context_bytes() -> int:
    return int(os.environ.get("CFTUI_MAX_BUILD_CONTEXT_MB", "4096")) << 20


@dataclass(frozen=True)
class Entry:
    """One member of the context: a directory, a regular file (read through
    `open`) or a link."""

    rel: str
    kind: str  # "dir", "file", "link"
    mode: int
    size: int = 0
    target: str = ""
    open: Callable[[], IO[bytes]] | None = None


def _small_regular_file(dir_fd: int, name: str, limit: int, shown: str) -> bytes | None:
    """A file's bytes, None when it does not exist; refused when it is a
    link, not a regular file, or larger than `limit`."""
    try:
        fd = os.open(name, READ_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RuntimeOperationError(
            f"{shown} must be a regular file inside the bot's code/, not a link: "
            f"{exc.strerror.lower() if exc.strerror else exc}"
        ) from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise RuntimeOperationError(f"{shown} must be a regular file inside the bot's code/")
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise RuntimeOperationError(f"{shown} is larger than {limit >> 10} KiB: refused")
    return data


def open_code_dir(code_dir: Path) -> int:
    """A descriptor on code/ itself, refusing a link in its place."""
    try:
        return os.open(code_dir, DIR_FLAGS)
    except OSError as exc:
        raise RuntimeOperationError(
            f"cannot read {code_dir}: {exc.strerror or exc} (code/ must be a directory, not a link)"
        ) from None


def read_dockerfile(code_dir: Path) -> bytes:
    """code/Dockerfile's bytes: a regular file directly in code/, never a link."""
    fd = open_code_dir(code_dir)
    try:
        data = _small_regular_file(fd, DOCKERFILE, MAX_DOCKERFILE_BYTES, f"{code_dir}/Dockerfile")
    finally:
        os.close(fd)
    if data is None:
        raise RuntimeOperationError(f"{code_dir} has no Dockerfile")
    return data


def _ignore_matcher(dir_fd: int, shown: str) -> PatternMatcher | None:
    data = _small_regular_file(dir_fd, DOCKERIGNORE, MAX_DOCKERIGNORE_BYTES, shown)
    if data is None:
        return None
    lines = [ln.strip() for ln in data.decode("utf-8", errors="replace").splitlines()]
    patterns = [ln for ln in lines if ln and not ln.startswith("#")]
    return PatternMatcher([*patterns, f"!{DOCKERFILE}"])


def _walk(dir_fd: int, rel: str, ignore: PatternMatcher | None, depth: int = 0) -> Iterator[Entry]:
    """The entries under an open directory, in name order; each file's
    `open` is valid until the next entry is taken. A tree nested deeper than
    securefs.MAX_DEPTH is refused (each level holds a descriptor open)."""
    if depth > MAX_DEPTH:
        raise RuntimeOperationError(
            f"code/{rel} is nested more than {MAX_DEPTH} directories deep: refused"
        )
    with os.scandir(dir_fd) as it:
        names = sorted(e.name for e in it)
    for name in names:
        if name in EXCLUDED_NAMES or name.endswith((".pyc", ".pyo")):
            continue
        path = f"{rel}/{name}" if rel else name
        ignored = ignore is not None and ignore.matches(path)  # type: ignore[arg-type]  # any str path
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(st.st_mode):
            if ignored and not _reincluded_under(ignore, path):
                continue
            try:
                sub = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
                    continue  # swapped for a link, or gone: not followed
                raise RuntimeOperationError(
                    f"cannot read code/{path}: {exc.strerror or exc}"
                ) from None
            try:
                if not ignored:
                    yield Entry(path, "dir", stat.S_IMODE(st.st_mode) & 0o777)
                yield from _walk(sub, path, ignore, depth + 1)
            finally:
                os.close(sub)
        elif ignored:
            continue
        elif stat.S_ISLNK(st.st_mode):
            try:
                target = os.readlink(name, dir_fd=dir_fd)
            except OSError:
                continue
            yield Entry(path, "link", 0o777, target=target)
        elif stat.S_ISREG(st.st_mode):
            mode = stat.S_IMODE(st.st_mode) & 0o777
            yield Entry(path, "file", mode, st.st_size, open=_opener(dir_fd, name, path))
        # fifos, sockets and devices are left out


def _reincluded_under(ignore: PatternMatcher | None, path: str) -> bool:
    """Whether a `!pattern` may bring back something under an ignored
    directory (docker-py's rule), so the walk must look inside it."""
    assert ignore is not None
    return any(p.exclusion and p.cleaned_pattern.startswith(path) for p in ignore.patterns)


def _opener(dir_fd: int, name: str, rel: str) -> Callable[[], IO[bytes]]:
    def open_it() -> IO[bytes]:
        try:
            fd = os.open(name, READ_FLAGS, dir_fd=dir_fd)
        except OSError as exc:
            raise RuntimeOperationError(
                f"code/{rel} cannot be read for the build ({exc.strerror or exc}): "
                "it changed while the image was being built, or is a link"
            ) from None
        fh = os.fdopen(fd, "rb")
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            fh.close()
            raise RuntimeOperationError(
                f"code/{rel} is no longer a regular file: it changed during the build"
            )
        return fh

    return open_it


class _HashingReader(io.RawIOBase):
    """Reads exactly `size` bytes of a file into the hash (and the tar)."""

    def __init__(self, fh: IO[bytes], size: int, h: Any, rel: str) -> None:
        self._fh, self._left, self._h, self._rel = fh, size, h, rel

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        want = self._left if n < 0 else min(n, self._left)
        data = self._fh.read(want)
        if not data:
            raise RuntimeOperationError(
                f"code/{self._rel} shrank while the image was being built: start again"
            )
        self._left -= len(data)
        self._h.update(data)
        return data


def _hash_header(h: Any, e: Entry) -> None:
    extra = e.target if e.kind == "link" else str(e.size)
    h.update(f"{e.kind}\0{e.rel}\0{e.mode:o}\0{extra}\0".encode())


def context_digest(
    code_dir: Path, dockerfile: bytes, salt: str, out: IO[bytes] | None = None
) -> str:
    """The content hash of the context code/ gives, writing it as a tar to
    `out` when given. `dockerfile` is put in as given (the checked bytes)."""
    h = hashlib.sha256(f"context\0{salt}\0".encode())
    h.update(f"file\0{DOCKERFILE}\0{len(dockerfile)}\0".encode() + dockerfile)
    limit = _max_context_bytes()
    total = 0
    with contextlib.ExitStack() as stack:
        tar = None
        if out is not None:
            tar = stack.enter_context(
                tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT)
            )
            info = tarfile.TarInfo(DOCKERFILE)
            info.size, info.mode = len(dockerfile), 0o644
            tar.addfile(info, io.BytesIO(dockerfile))
        root = open_code_dir(code_dir)
        stack.callback(os.close, root)
        ignore = _ignore_matcher(root, f"{code_dir}/{DOCKERIGNORE}")
        for e in _walk(root, "", ignore):
            if e.rel == DOCKERFILE:
                continue
            total += e.size
            if total > limit:
                raise RuntimeOperationError(
                    f"the build context of {code_dir} is over {limit >> 20} MiB: "
                    "add a .dockerignore, or raise CFTUI_MAX_BUILD_CONTEXT_MB"
                )
            _hash_header(h, e)
            _add(tar, e, h)
    return h.hexdigest()[:24]


def _add(tar: tarfile.TarFile | None, e: Entry, h: Any) -> None:
    """Hash one entry's bytes and, with a tar, add the entry to it."""
    info = tarfile.TarInfo(e.rel)
    info.mode = e.mode
    if e.kind != "file":
        info.type = tarfile.DIRTYPE if e.kind == "dir" else tarfile.SYMTYPE
        info.linkname = e.target
        if tar is not None:
            tar.addfile(info)
        return
    assert e.open is not None
    with e.open() as fh:
        reader = _HashingReader(fh, e.size, h, e.rel)
        if tar is None:
            while reader.read(_CHUNK):
                pass
        else:
            info.size = e.size
            tar.addfile(info, reader)
