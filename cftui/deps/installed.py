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

The steps are written once, here, over a `StateTree`: the few operations
on the names directly under a `state/`, none of which follows a link. A
bot on this machine has `LocalState` (descriptors, `O_NOFOLLOW`); a bot on
another host `ShellState`, each operation one short `sh` script run there
in its `state/` as the gateway's user. Of the three names an install uses
(`installed`, `.installed-new`, `.installed-old`) each is absent or a
directory cftui made; anything else there (a link the agent planted, a
file) refuses the install in one line, before anything is touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from cftui.errors import CftuiError
from cftui.securefs import UnsafeFile, kind_of, read_agent_file, write_agent_file

INSTALLED = "installed"
STAGING = ".installed-new"
PREVIOUS = ".installed-old"
MARKER = ".cftui-deps.json"
MARKER_MAX = 4096
ABSENT, DIRECTORY = "absent", "dir"
_NAMES = (INSTALLED, STAGING, PREVIOUS)
_FILE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class InstallError(CftuiError):
    """The declared dependencies could not be installed."""


class StateTree(Protocol):
    """A bot's `state/` as an install touches it: the names directly under
    it (`name`, one of INSTALLED, STAGING, PREVIOUS) and the files in them,
    none ever reached through a link. What it makes is the gateway's."""

    where: str  # how a message names the tree: "farbot's state/ on host h2"

    def path(self, name: str) -> str:
        """`state/<name>` as the engine sees it (the installer's mount)."""
        ...

    def kind(self, name: str) -> str:
        """ABSENT, DIRECTORY (a real one), or what else is there ("a
        symbolic link"), not followed."""
        ...

    def read(self, name: str, file: str, max_bytes: int) -> bytes | None:
        """The regular file `state/<name>/<file>`; None when absent, a link
        (on either part), anything but a regular file, or too large."""
        ...

    def write(self, name: str, file: str, data: bytes) -> None:
        """Replace `state/<name>/<file>` (the directory a real one; a link
        there is refused, never written through), mode 0644."""
        ...

    def make_dir(self, name: str) -> None:
        """Make `state/<name>` (absent), mode 0755."""
        ...

    def remove(self, name: str) -> None:
        """Remove the real directory `state/<name>` and all in it (no link
        in it followed)."""
        ...

    def rename(self, src: str, dst: str) -> None:
        """`state/<src>` becomes `state/<dst>` (absent)."""
        ...


def installed_digest(tree: StateTree) -> str | None:
    """The digest the marker records; None when absent or unreadable."""
    return marker_digest(tree.read(INSTALLED, MARKER, MARKER_MAX))


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


def is_current(tree: StateTree, digest: str) -> bool:
    return installed_digest(tree) == digest


def new_staging(tree: StateTree, files: dict[str, bytes]) -> str:
    """A fresh, empty `state/.installed-new` holding the approved files
    (any leftover of an interrupted install removed first); its path."""
    refuse_planted(tree)
    if tree.kind(STAGING) == DIRECTORY:
        tree.remove(STAGING)
    tree.make_dir(STAGING)
    for name, data in files.items():
        tree.write(STAGING, name, data)
    return tree.path(STAGING)


def swap_in(tree: StateTree, digest: str, commit: str) -> None:
    """The staging directory becomes `installed/` (the previous one removed),
    with its marker; only a successful install calls this."""
    refuse_planted(tree)
    tree.write(STAGING, MARKER, marker_bytes(digest, commit))
    if tree.kind(PREVIOUS) == DIRECTORY:
        tree.remove(PREVIOUS)
    if tree.kind(INSTALLED) == DIRECTORY:
        tree.rename(INSTALLED, PREVIOUS)
    tree.rename(STAGING, INSTALLED)
    if tree.kind(PREVIOUS) == DIRECTORY:
        tree.remove(PREVIOUS)


def discard_staging(tree: StateTree) -> None:
    """What a failed install leaves: nothing but the previous `installed/`."""
    with contextlib.suppress(CftuiError, OSError):
        if tree.kind(STAGING) == DIRECTORY:
            tree.remove(STAGING)


def refuse_planted(tree: StateTree) -> None:
    """Each name an install uses is absent or a real directory: a link the
    agent planted (`installed -> /etc`) or anything else refuses the install."""
    for name in _NAMES:
        kind = tree.kind(name)
        if kind not in (ABSENT, DIRECTORY):
            raise InstallError(
                f"{tree.where}{name} is {kind}, not an install of cftui's: refused, "
                f"nothing touched (remove {tree.path(name)}, then start again)"
            )


def _checked(name: str, file: str | None = None) -> None:
    """Only the install's own names reach a tree (a bug, never the agent's)."""
    if name not in _NAMES or (file is not None and not _FILE.match(file)) or file in (".", ".."):
        raise ValueError(f"not a name of the install: {name!r}/{file!r}")


class LocalState:
    """A `state/` on this machine: every step on a descriptor of it, no link
    followed, what it makes given to `owner` (None: left to cftui's uid)."""

    def __init__(self, state: Path, owner: tuple[int, int] | None, where: str = "") -> None:
        self.state, self.owner = state, owner
        self.where = where or "state/"

    def path(self, name: str) -> str:
        _checked(name)
        return str(self.state / name)

    def kind(self, name: str) -> str:
        _checked(name)
        with self._fd() as fd:
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                return ABSENT
        if stat.S_ISDIR(st.st_mode):
            return DIRECTORY
        return "a regular file" if stat.S_ISREG(st.st_mode) and st.st_nlink == 1 else kind_of(st)

    def read(self, name: str, file: str, max_bytes: int) -> bytes | None:
        _checked(name, file)
        try:
            return read_agent_file(self.state, f"{name}/{file}", max_bytes)
        except (UnsafeFile, OSError):
            return None

    def write(self, name: str, file: str, data: bytes) -> None:
        _checked(name, file)
        try:
            write_agent_file(self.state, f"{name}/{file}", data, mode=0o644, owner=self.owner)
        except UnsafeFile as exc:
            raise InstallError(f"{self.where}{name}/{file}: {exc}") from None

    def make_dir(self, name: str) -> None:
        _checked(name)
        with self._fd() as fd:
            os.mkdir(name, 0o755, dir_fd=fd)
            if self.owner is not None:
                os.chown(name, *self.owner, dir_fd=fd, follow_symlinks=False)

    def remove(self, name: str) -> None:
        _checked(name)
        with self._fd() as fd:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                raise InstallError(f"{self.where}{name} is {kind_of(st)}: not removed")
            shutil.rmtree(name, dir_fd=fd)  # descriptor-walking: no link in it followed

    def rename(self, src: str, dst: str) -> None:
        _checked(src)
        _checked(dst)
        with self._fd() as fd:
            with contextlib.suppress(FileNotFoundError):
                os.stat(dst, dir_fd=fd, follow_symlinks=False)
                raise InstallError(f"{self.where}{dst} is there: {src} not renamed over it")
            os.rename(src, dst, src_dir_fd=fd, dst_dir_fd=fd)

    @contextlib.contextmanager
    def _fd(self):
        try:
            fd = os.open(self.state, _DIR_FLAGS)
        except OSError as exc:
            raise InstallError(f"cannot open {self.state}: {exc.strerror or exc}") from None
        try:
            yield fd
        finally:
            os.close(fd)


# Runs an `sh` script in the bot's `state/`, as the gateway's user, with
# `stdin`: its exit status, stdout and stderr (the host's link, the VM's shell).
ShellRunner = Callable[[str, bytes | None], tuple[int, bytes, str]]
_REFUSED = 3  # a script's "not touched: a link or a special file is there"


class ShellState:
    """A `state/` reached by a shell on the machine that holds it (another
    Docker host): each step one `sh` script run there in `state/` as the
    gateway's user, so what it makes is the gateway's and a link the agent
    planted could steer no more than the agent itself; the scripts test
    for links before they touch a name (`[ -L ]`), and `rm -rf` and `mv -T`
    never follow one."""

    def __init__(self, run: ShellRunner, state: str, where: str) -> None:
        self._run, self.state, self.where = run, state, where

    def path(self, name: str) -> str:
        _checked(name)
        return f"{self.state.rstrip('/')}/{name}"

    def _sh(
        self, script: str, what: str, stdin: bytes | None = None, ok: tuple[int, ...] = (0,)
    ) -> tuple[int, bytes]:
        code, out, err = self._run(script, stdin)
        if code == _REFUSED:
            raise InstallError(f"{self.where}{what}: a link or a special file is there: refused")
        if code not in ok:
            tail = " | ".join(ln.strip() for ln in err.strip().splitlines()[-2:])
            raise InstallError(f"{self.where}{what} failed: {tail or f'exit status {code}'}")
        return code, out

    def kind(self, name: str) -> str:
        _checked(name)
        n = shlex.quote(name)
        _, out = self._sh(
            f"if [ -L {n} ]; then echo link; elif [ -d {n} ]; then echo dir; "
            f"elif [ -f {n} ]; then echo file; elif [ -e {n} ]; then echo special; "
            "else echo absent; fi",
            f"reading {name}",
        )
        said = out.decode(errors="replace").strip()
        return {
            "dir": DIRECTORY,
            "absent": ABSENT,
            "link": "a symbolic link",
            "file": "a regular file",
        }.get(said, "a special file")

    def read(self, name: str, file: str, max_bytes: int) -> bytes | None:
        _checked(name, file)
        d, f = shlex.quote(name), shlex.quote(f"{name}/{file}")
        code, out = self._sh(
            f"[ -d {d} ] && [ ! -L {d} ] && [ -f {f} ] && [ ! -L {f} ] || exit 1; "
            f"head -c {max_bytes + 1} -- {f}",
            f"reading {name}/{file}",
            ok=(0, 1),
        )
        return out if code == 0 and len(out) <= max_bytes else None

    def write(self, name: str, file: str, data: bytes) -> None:
        _checked(name, file)
        d, f = shlex.quote(name), shlex.quote(f"{name}/{file}")
        self._sh(
            f"umask 022; {{ [ -d {d} ] && [ ! -L {d} ]; }} || exit {_REFUSED}; "
            f"if [ -L {f} ] || {{ [ -e {f} ] && [ ! -f {f} ]; }}; then exit {_REFUSED}; fi; "
            # the name just emptied, and noclobber: an absent name is opened O_EXCL
            f"rm -f -- {f} && set -C && cat > {f}",
            f"writing {name}/{file}",
            stdin=data,
        )

    def make_dir(self, name: str) -> None:
        _checked(name)
        self._sh(f"mkdir -m 0755 -- {shlex.quote(name)}", f"making {name}")

    def remove(self, name: str) -> None:
        _checked(name)
        n = shlex.quote(name)
        self._sh(f"{{ [ -d {n} ] && [ ! -L {n} ]; }} || exit {_REFUSED}; rm -rf -- {n}",
                 f"removing {name}")  # fmt: skip

    def rename(self, src: str, dst: str) -> None:
        _checked(src)
        _checked(dst)
        s, d = shlex.quote(src), shlex.quote(dst)
        self._sh(
            f"{{ [ -d {s} ] && [ ! -L {s} ] && [ ! -e {d} ] && [ ! -L {d} ]; }} || exit {_REFUSED}; "
            f"mv -T -- {s} {d}",
            f"renaming {src} to {dst}",
        )
