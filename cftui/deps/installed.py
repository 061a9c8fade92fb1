"""`state/installed/`: where the approved dependencies are installed, swapped
in whole, and the marker that says which approved list it holds.

An install writes into a fresh directory beside it (`state/.installed-new`)
and only a successful one is renamed into place, so a failed install leaves
the previous `installed/` as it was. The marker
(`installed/.cftui-deps.json`, the digest of the approved package.json,
lockfile and .npmrc) makes an unchanged list cost nothing at the next
start. The gateway can write `state/`, so the marker is read as hostile
input (bounded, no link followed); forging it gains the agent nothing it
could not do by writing `installed/` itself, which it can.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

from cftui.errors import CftuiError
from cftui.securefs import UnsafeFile, read_agent_file, write_agent_file

INSTALLED = "installed"
STAGING = ".installed-new"
PREVIOUS = ".installed-old"
MARKER = ".cftui-deps.json"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class InstallError(CftuiError):
    """The declared dependencies could not be installed."""


def installed_digest(state: Path) -> str | None:
    """The digest the marker records; None when absent or unreadable."""
    try:
        raw = read_agent_file(state, f"{INSTALLED}/{MARKER}", 4096)
    except (UnsafeFile, OSError):
        return None
    return marker_digest(raw)


def marker_digest(raw: bytes | str | None) -> str | None:
    """The digest a marker's bytes record; None when absent or not one."""
    if raw is None:
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    digest = doc.get("digest") if isinstance(doc, dict) else None
    return digest if isinstance(digest, str) else None


def marker_bytes(digest: str, commit: str) -> bytes:
    """What a successful install writes as its marker."""
    return json.dumps({"digest": digest, "commit": commit}).encode()


def is_current(state: Path, digest: str) -> bool:
    return installed_digest(state) == digest


def new_staging(state: Path, files: dict[str, bytes], owner: tuple[int, int] | None) -> Path:
    """A fresh, empty `state/.installed-new` holding the approved files
    (any leftover of an interrupted install removed first)."""
    with _state_fd(state) as fd:
        _remove(fd, STAGING)
        os.mkdir(STAGING, 0o755, dir_fd=fd)
        if owner is not None:
            os.chown(STAGING, *owner, dir_fd=fd, follow_symlinks=False)
    staging = state / STAGING
    for name, data in files.items():
        write_agent_file(state, f"{STAGING}/{name}", data, mode=0o644)
        if owner is not None:
            os.chown(staging / name, *owner, follow_symlinks=False)
    return staging


def swap_in(state: Path, digest: str, commit: str, owner: tuple[int, int] | None) -> None:
    """The staging directory becomes `installed/` (the previous one removed),
    with its marker; only a successful install calls this."""
    write_agent_file(state, f"{STAGING}/{MARKER}", marker_bytes(digest, commit), mode=0o644)
    if owner is not None:
        os.chown(state / STAGING / MARKER, *owner, follow_symlinks=False)
    with _state_fd(state) as fd:
        _remove(fd, PREVIOUS)
        with contextlib.suppress(FileNotFoundError):
            os.rename(INSTALLED, PREVIOUS, src_dir_fd=fd, dst_dir_fd=fd)
        os.rename(STAGING, INSTALLED, src_dir_fd=fd, dst_dir_fd=fd)
        _remove(fd, PREVIOUS)


def discard_staging(state: Path) -> None:
    """What a failed install leaves: nothing but the previous `installed/`."""
    with contextlib.suppress(OSError), _state_fd(state) as fd:
        _remove(fd, STAGING)


@contextlib.contextmanager
def _state_fd(state: Path):
    try:
        fd = os.open(state, _DIR_FLAGS)
    except OSError as exc:
        raise InstallError(f"cannot open {state}: {exc.strerror or exc}") from None
    try:
        yield fd
    finally:
        os.close(fd)


def _remove(fd: int, name: str) -> None:
    """Remove `name` under the directory `fd` (a link itself, never its target)."""
    try:
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    import stat

    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=fd)
    else:
        os.unlink(name, dir_fd=fd)
