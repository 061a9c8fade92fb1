"""Encrypted snapshots of a bot's `state/` (CONTRACTS §5).

A snapshot is a tar of `state/` (caches left out) encrypted with age to the
bot's X25519 recipient, so the stock tool reads it:
`age -d -i secrets/BOT/snapshot.key FILE | tar -t`.

Both directions stream, so memory stays flat whatever the state's size, and
`cftui.agestream` does the age format in a small child process (see `_CHILD`):
- create: GNU tar archives the names our walk chose (`_walk`: caches left
  out, sorted, symlinks not followed) and pipes the archive straight into
  the encryptor, which writes a temporary name with write-behind (so the
  fsync that follows has little left); it is then linked to its final name;
  a partial file never carries a final name.
- restore: the decryptor pipes plaintext to tarfile, which reads it forward
  only and extracts each member through `tarfile.data_filter` plus the checks
  it lacks (setuid bits refused rather than cleared, devices and fifos
  refused with a clear reason, no writes through symlinks, link targets
  checked lexically so that a long symlink chain cannot fool `realpath`),
  into a fresh directory beside `state/`. Only when everything (decryption,
  authentication, extraction) succeeded is it swapped in; otherwise the old
  state was never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import select
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import cftui
from cftui import locks
from cftui.agestream import (
    AgeError,
    NotAgeFileError,
    WrongKeyError,
    check_first_chunk,
    identity_text,
    open_payload,
    parse_identity,
    recipient_of,
)
from cftui.audit.events import record_event
from cftui.errors import CftuiError, SnapshotError, UsageError
from cftui.fleet import BotConfig, FleetHome
from cftui.identity import read_identity
from cftui.runtime.base import Progress, ProgressEvent, no_progress
from cftui.securefs import PRIVATE_FILE, fsync_dir, make_private_dirs
from cftui.tarheader import FastTarInfo

if TYPE_CHECKING:
    from cftui.runtime.base import Runtime

SUFFIX = ".tar.age"
LATEST = "latest" + SUFFIX
TS_FORMAT = "%Y-%m-%dT%H-%M-%SZ"
NAME_RE = re.compile(
    r"^(?P<label>[a-z0-9](?:[a-z0-9_-]{0,62}[a-z0-9])?)--"
    r"(?P<ts>\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ)\.tar\.age$"
)
PARTIAL_RE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.partial$")
ARC_ROOT = "state"
SAFETY_LABEL = "pre-restore"

# What a snapshot leaves out: caches and things rebuilt or rewritten at run time.
EXCLUDED_DIRS = frozenset(
    {"installed", "node_modules", "__pycache__", ".venv", "venv", ".cache", "logs", "tmp"}
)
EXCLUDED_SUFFIXES = (
    ".sqlite-wal",
    ".sqlite-shm",
    ".tmp",
    ".temp",
    ".swp",
    ".log",
    ".partial",
    "~",
)
EXCLUDED_PREFIXES = (".#",)

CHUNK = 1 << 20

# The age format runs in a small child process in both directions: it gives
# the crypto the second core (tar has its own process on create, tarfile
# keeps the GIL busy on restore), and its failures come back as one line.
# `-I` ignores the environment and the user's site; the package's own parent
# directory is put on the path so that a checkout without install works too.
# The identity reaches the decryptor on its stdin, never in its arguments or
# environment. Set `_WRITE_BEHIND` false to leave the whole write-out to the
# final fsync (bench/snapshots.py's like-for-like row).
_CHILD = (
    "import sys; sys.path[:0] = [sys.argv.pop(1)]; "
    "from cftui.agestream import main; sys.exit(main(sys.argv[1:]))"
)
_PACKAGE_PARENT = str(Path(cftui.__file__).resolve().parent.parent)
_WRITE_BEHIND = True


@dataclass(frozen=True)
class SnapshotInfo:
    """One snapshot file as `list` shows it."""

    name: str
    label: str
    created: datetime
    size: int
    latest: bool = False


@dataclass
class CreateStats:
    files: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)


@dataclass
class RestoreResult:
    """What a restore did, for the CLI and the TUI to say."""

    name: str
    safety: str | None = None
    gateway_was_running: bool = False
    gateway_restarted: bool = False
    notes: list[str] = field(default_factory=list)


# --- names -----------------------------------------------------------------


def sanitize_label(label: str | None) -> str:
    """A label safe in a file name: lowercase letters, digits, '_' and single '-'."""
    text = (label or "").strip().lower()
    text = re.sub(r"[^a-z0-9_-]+", "-", text)
    text = re.sub(r"-{2,}", "-", text)
    text = text.strip("-_")[:64].strip("-_")
    return text or "snapshot"


def snapshot_name(label: str, when: datetime) -> str:
    return f"{sanitize_label(label)}--{when.astimezone(UTC).strftime(TS_FORMAT)}{SUFFIX}"


def parse_name(name: str) -> tuple[str, datetime] | None:
    m = NAME_RE.match(name)
    if not m:
        return None
    created = datetime.strptime(m["ts"], TS_FORMAT).replace(tzinfo=UTC)
    return m["label"], created


def _latest_target(folder: Path) -> str | None:
    try:
        target = os.readlink(folder / LATEST)
    except OSError:
        return None
    return target if parse_name(target) else None


def resolve(home: FleetHome, bot: str, name: str) -> Path:
    """The file of a snapshot named by the user: `latest`, a full file name or
    one without `.tar.age`. Anything with a slash or not ours is refused."""
    folder = home.snapshots_dir(bot)
    if name in ("latest", LATEST):
        target = _latest_target(folder)
        if target is None:
            raise SnapshotError(f"{bot} has no snapshot yet: run `cftui snapshot create {bot}`")
        name = target
    if not name.endswith(SUFFIX):
        name += SUFFIX
    if parse_name(name) is None:
        raise UsageError(
            f"{name!r} is not a snapshot name (LABEL--YYYY-MM-DDTHH-MM-SSZ{SUFFIX}); "
            f"see `cftui snapshot list {bot}`"
        )
    path = folder / name
    if not path.is_file():
        raise SnapshotError(f"no snapshot {name} for {bot}: see `cftui snapshot list {bot}`")
    return path


def list_snapshots(home: FleetHome, bot: str) -> list[SnapshotInfo]:
    """The bot's snapshots, newest first."""
    folder = home.snapshots_dir(bot)
    latest = _latest_target(folder)
    out = []
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return []
    for entry in entries:
        parsed = parse_name(entry.name)
        if parsed is None or not entry.is_file(follow_symlinks=False):
            continue
        out.append(
            SnapshotInfo(
                entry.name,
                parsed[0],
                parsed[1],
                entry.stat(follow_symlinks=False).st_size,
                entry.name == latest,
            )
        )
    out.sort(key=lambda s: (s.created, s.name), reverse=True)
    return out


def _point_latest(folder: Path, name: str | None) -> None:
    """Swap `latest.tar.age` atomically: a new symlink under a temp name, renamed."""
    link = folder / LATEST
    if name is None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(link)
    else:
        tmp = folder / f".{LATEST}.{os.getpid()}.{threading.get_ident()}.tmp"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.symlink(name, tmp)
        os.replace(tmp, link)
    fsync_dir(folder)


def _repoint_latest_to_newest(home: FleetHome, bot: str) -> None:
    remaining = list_snapshots(home, bot)
    _point_latest(home.snapshots_dir(bot), remaining[0].name if remaining else None)


def rename(home: FleetHome, bot: str, old: str, new_label: str) -> str:
    """Give a snapshot a new label, keeping its time; returns the new name."""
    if old in ("latest", LATEST):
        raise UsageError("name the snapshot itself, not `latest` (see `cftui snapshot list`)")
    src = resolve(home, bot, old)
    _label, created = parse_name(src.name)  # type: ignore[misc]
    new = snapshot_name(new_label, created)
    if new == src.name:
        return new
    folder = src.parent
    try:
        os.link(src, folder / new)  # refuses to overwrite, unlike rename
    except FileExistsError:
        raise SnapshotError(f"a snapshot named {new} already exists") from None
    os.unlink(src)
    if _latest_target(folder) == src.name:
        _point_latest(folder, new)
    else:
        fsync_dir(folder)
    record_event(home, "snapshot", bot, op="rename", name=src.name, to=new)
    return new


def delete(home: FleetHome, bot: str, name: str) -> None:
    """Delete one snapshot; `latest` moves to the newest that is left."""
    if name in ("latest", LATEST):
        raise UsageError(
            "`latest` cannot be deleted directly: delete the snapshot it points to by name"
        )
    path = resolve(home, bot, name)
    was_latest = _latest_target(path.parent) == path.name
    os.unlink(path)
    if was_latest:
        _repoint_latest_to_newest(home, bot)
    else:
        fsync_dir(path.parent)
    record_event(home, "snapshot", bot, op="delete", name=path.name)


def delete_all(home: FleetHome, bot: str) -> int:
    """Delete every snapshot of a bot; returns how many."""
    snaps = list_snapshots(home, bot)
    folder = home.snapshots_dir(bot)
    for snap in snaps:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(folder / snap.name)
    if folder.exists():
        _point_latest(folder, None)
    record_event(home, "snapshot", bot, op="delete-all", count=len(snaps))
    return len(snaps)


# --- create ----------------------------------------------------------------


def is_excluded(name: str, is_dir: bool) -> bool:
    """Caches, temp files and logs, which a snapshot leaves out (CONTRACTS §5)."""
    if is_dir:
        return name in EXCLUDED_DIRS
    return name.endswith(EXCLUDED_SUFFIXES) or name.startswith(EXCLUDED_PREFIXES)


def _walk(root: str, rel: str = "") -> Iterator[tuple[str, os.DirEntry]]:
    """Every entry to archive, depth first, parents before children, sorted so
    that archives of the same state are alike. Symlinks are never followed."""
    try:
        entries = sorted(os.scandir(os.path.join(root, rel) if rel else root), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        is_dir = entry.is_dir(follow_symlinks=False)
        if is_excluded(entry.name, is_dir):
            continue
        child = f"{rel}/{entry.name}" if rel else entry.name
        if is_dir:
            if os.path.exists(os.path.join(entry.path, "pyvenv.cfg")):
                continue  # a virtualenv, whatever its name
            yield child, entry
            yield from _walk(root, child)
        else:
            yield child, entry


class _ChildFailed(Exception):
    """The crypto child process failed; its one-line reason is the message."""


def _child(*args: str, **kwargs) -> subprocess.Popen:
    """`python -m cftui.agestream ARGS` with its stderr piped."""
    return subprocess.Popen(
        [sys.executable, "-I", "-c", _CHILD, _PACKAGE_PARENT, *args],
        stderr=subprocess.PIPE,
        bufsize=0,
        **kwargs,
    )


def _child_result(proc: subprocess.Popen) -> str | None:
    """Wait for a crypto child; its error line, or None if it succeeded."""
    err = proc.stderr.read().decode("utf-8", "replace").strip() if proc.stderr else ""
    code = proc.wait()
    if code == 0:
        return None
    return err or f"crypto process exited with {code}"


# GNU tar archives the names `_walk` chose, one by one (`--no-recursion`), so
# the exclusion rules stay ours (a directory named `logs` but not a file, any
# virtualenv) and the order is the walk's sorted one: archives of the same
# state are alike. Symlinks are archived as links (no `-h`); hard links as
# plain copies, as restore expects; numeric ids and no user/group names.
# `--verbatim-files-from`: a file named like an option is still a file name.
_TAR_CREATE = (
    "tar",
    "--create",
    "--file=-",
    "--format=gnu",
    "--numeric-owner",
    "--no-recursion",
    "--hard-dereference",
    "--no-acls",
    "--no-xattrs",
    "--no-selinux",
    "--null",
    "--verbatim-files-from",
)
# Lines of tar's that mean a file changed or vanished after the walk listed
# it: archived as tar found it (or left out) and counted in `stats.skipped`.
_TAR_RACES = ("file changed as we read it", "No such file or directory", "File shrank by")


def _feed_names(pipe: BinaryIO, root: str, stats: CreateStats) -> None:
    """Write the walk's names, NUL-terminated, to tar's stdin (a thread). Only
    directories, regular files and symlinks go in; sockets, fifos and devices
    are counted as skipped, as before."""
    batch: list[bytes] = [ARC_ROOT.encode() + b"\0"]
    size = 0
    try:
        for rel, entry in _walk(root):
            if entry.is_symlink() or entry.is_dir(follow_symlinks=False):
                pass
            elif not entry.is_file(follow_symlinks=False):
                stats.skipped.append(f"{rel} (not a regular file)")
                continue
            name = os.fsencode(f"{ARC_ROOT}/{rel}") + b"\0"
            batch.append(name)
            size += len(name)
            if size >= 1 << 16:
                pipe.write(b"".join(batch))
                batch.clear()
                size = 0
        pipe.write(b"".join(batch))
    except (BrokenPipeError, ValueError):
        pass  # tar stopped (or was stopped); its exit status says why
    finally:
        with contextlib.suppress(OSError):
            pipe.close()


def _archive_into(
    out_fd: int, recipient: str, root: Path, stats: CreateStats, progress: Progress
) -> None:
    """`tar -c` of `root` piped straight into the age encryptor, which writes
    `out_fd`: the plaintext never passes through Python, memory stays flat.
    The files and bytes to archive (the progress bar's total) are counted
    while tar and the encryptor already run. Progress is the encrypted size
    written so far (age adds ~0.1 %)."""
    if root.name != ARC_ROOT:  # pragma: no cover - FleetHome.state_dir ends in state/
        raise SnapshotError(f"a snapshot archives a directory named {ARC_ROOT}/, not {root}")
    with tempfile.TemporaryFile() as tar_errors:
        crypt, tar = _run_pipeline(out_fd, recipient, root, stats, progress, tar_errors)
        error = _child_result(crypt)
        tar_errors.seek(0)
        lines = tar_errors.read().decode("utf-8", "replace").splitlines()
    if error is not None:
        raise _ChildFailed(error)
    failures = []
    for line in lines:
        text = line.removeprefix("tar: ")
        if any(race in text for race in _TAR_RACES):
            stats.skipped.append(text)
        elif "Exiting with failure" not in text:
            failures.append(text)
    if tar.returncode not in (0, 1) and (failures or tar.returncode < 0):
        raise _ChildFailed(failures[0] if failures else f"tar exited with {tar.returncode}")
    progress(
        ProgressEvent("snapshot", stats.bytes, stats.bytes or None, f"{stats.files} files archived")
    )


def _run_pipeline(
    out_fd: int,
    recipient: str,
    root: Path,
    stats: CreateStats,
    progress: Progress,
    tar_errors: BinaryIO,
) -> tuple[subprocess.Popen, subprocess.Popen]:
    """Start tar and the encryptor, feed tar the names, report progress until
    the encryptor ends; both are killed if anything (progress too) raises."""
    read_end, write_end = os.pipe()
    _widen_pipe(write_end)
    procs: list[subprocess.Popen] = []
    feeder: threading.Thread | None = None
    try:
        tar = subprocess.Popen(
            [*_TAR_CREATE, f"--directory={root.parent}", "--files-from=-"],
            stdin=subprocess.PIPE,
            stdout=write_end,
            stderr=tar_errors,
            env={**os.environ, "LC_ALL": "C"},
        )
        procs.append(tar)
        flags = ["--write-behind"] if _WRITE_BEHIND else []
        crypt = _child("encrypt", *flags, recipient, stdin=read_end, stdout=out_fd)
        procs.append(crypt)
        os.close(write_end)
        os.close(read_end)
        write_end = read_end = -1
        assert tar.stdin is not None
        feeder = threading.Thread(
            target=_feed_names, args=(tar.stdin, str(root), stats), daemon=True
        )
        feeder.start()
        stats.files, stats.bytes = _measure(root)
        total = stats.bytes or None
        progress(ProgressEvent("snapshot", 0, total, f"{stats.files} files to archive"))
        with _exit_waiter(crypt) as exited:
            while not exited(0.1):
                progress(ProgressEvent("snapshot", os.fstat(out_fd).st_size, total))
    except BaseException:
        for proc in procs:  # never let an encryptor finish a file from a partial tar
            with contextlib.suppress(OSError):
                proc.kill()
        # The pipes nobody will read or close now: the feeder closes tar's
        # stdin once started, and the caller reads the encryptor's stderr.
        unread = [p.stderr for p in procs[1:]] + [p.stdin for p in procs[:1] if feeder is None]
        for pipe in unread:
            if pipe is not None:
                pipe.close()
        raise
    finally:
        for fd in (read_end, write_end):
            if fd >= 0:
                os.close(fd)
        for proc in procs:
            proc.wait()
        if feeder is not None:
            feeder.join()
    return crypt, tar


@contextlib.contextmanager
def _exit_waiter(proc: subprocess.Popen) -> Iterator[Callable[[float], bool]]:
    """`exited(timeout)`: whether `proc` has ended, waiting at most `timeout`
    seconds. A pidfd wakes the moment it ends (`Popen.wait`'s timeout polls
    in steps of up to 50 ms, which a short snapshot would wait out)."""
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        pidfd = -1

    def exited(timeout: float) -> bool:
        if pidfd >= 0:
            select.select([pidfd], [], [], timeout)
            return proc.poll() is not None
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    try:
        yield exited
    finally:
        if pidfd >= 0:
            os.close(pidfd)


def _widen_pipe(fd: int) -> None:
    """A 1 MB pipe instead of 64 KB: fewer wake-ups between the two processes."""
    with contextlib.suppress(OSError, AttributeError):
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, CHUNK)


def _measure(root: Path) -> tuple[int, int]:
    """Files and bytes a snapshot will hold, for the progress bar's total."""
    files = size = 0
    for _rel, entry in _walk(str(root)):
        with contextlib.suppress(OSError):
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(st.st_mode):
                files += 1
                size += st.st_size
    return files, size


def _clean_partials(folder: Path) -> None:
    """Remove temp files left by a create that died (its process is gone)."""
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(folder):
            m = PARTIAL_RE.match(entry.name)
            if not m:
                continue
            alive = locks.pid_alive(int(m["pid"]))
            if not alive:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)


def _recipient(home: FleetHome, bot: str) -> str:
    """The bot's `age1...` recipient."""
    try:
        return recipient_of(read_identity(home.snapshot_key(bot)))
    except CftuiError as exc:
        raise SnapshotError(str(exc)) from None


def _identity(home: FleetHome, bot: str) -> str:
    """The bot's `AGE-SECRET-KEY-1...` identity (never logged or shown)."""
    try:
        return identity_text(read_identity(home.snapshot_key(bot)))
    except CftuiError as exc:
        raise SnapshotError(str(exc)) from None


def _os_message(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "disk full"
    return exc.strerror or str(exc)


def create_snapshot(
    home: FleetHome,
    bot: str,
    label: str | None = None,
    *,
    progress: Progress = no_progress,
    now: datetime | None = None,
    record: bool = True,
    point_latest: bool = True,
) -> SnapshotInfo:
    """Archive and encrypt `state/` into a new snapshot; point `latest` at it.

    Blocking; the TUI calls it from a thread worker (or through `snapshot`),
    and `progress` is called from that thread.
    """
    state = home.state_dir(bot)
    if not state.is_dir():
        raise SnapshotError(f"{bot} has no state directory ({state}): nothing to snapshot")
    recipient = _recipient(home, bot)
    folder = home.snapshots_dir(bot)
    make_private_dirs(folder)
    _clean_partials(folder)
    when = (now or datetime.now(UTC)).replace(microsecond=0)
    final = snapshot_name(label or "manual", when)
    tmp = folder / f".{final}-{threading.get_ident()}.{os.getpid()}.partial"
    stats = CreateStats()
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE)
        with open(fd, "wb") as out:
            _archive_into(out.fileno(), recipient, state, stats, progress)
            os.fsync(out.fileno())
        # Link, not rename: never replace an existing snapshot of the same second.
        for _ in range(60):
            try:
                os.link(tmp, folder / final)
                break
            except FileExistsError:
                when += timedelta(seconds=1)
                final = snapshot_name(label or "manual", when)
        else:  # pragma: no cover - 60 snapshots of one label in one minute
            raise SnapshotError(f"too many snapshots named {final}")
        os.unlink(tmp)
        if point_latest or _latest_target(folder) is None:
            _point_latest(folder, final)
        else:
            fsync_dir(folder)
    except OSError as exc:
        raise SnapshotError(f"cannot write snapshot of {bot}: {_os_message(exc)}") from None
    except _ChildFailed as exc:
        raise SnapshotError(f"cannot write snapshot of {bot}: {exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    size = (folder / final).stat().st_size
    info = SnapshotInfo(
        final, sanitize_label(label or "manual"), when, size, _latest_target(folder) == final
    )
    if record:
        record_event(
            home,
            "snapshot",
            bot,
            op="create",
            name=final,
            files=stats.files,
            bytes=stats.bytes,
            size=size,
        )
    return info


async def snapshot(
    home: FleetHome,
    bot: BotConfig,
    label: str | None = None,
    *,
    runtime: Runtime | None = None,
    progress: Progress = no_progress,
) -> SnapshotInfo:
    """Create a snapshot, first bringing `state/` to the host if the runtime keeps
    it elsewhere (Lima), with the gateway held still while it is read (the
    agent must not change links under the walk). The work runs in a thread
    so no event loop waits."""
    if runtime is None:
        return await asyncio.to_thread(create_snapshot, home, bot.name, label, progress=progress)
    await runtime.pull_state(bot)
    async with runtime.held_still(bot):
        return await asyncio.to_thread(create_snapshot, home, bot.name, label, progress=progress)


# --- restore ---------------------------------------------------------------


class _Refused(SnapshotError):
    """An archive member the restore filter refuses."""


class _MemberFilter:
    """tarfile's `data` filter plus what it lacks.

    Members are renamed from `state/...` to paths relative to the new state
    directory so that every check (and the data filter's) is against it.
    """

    def __init__(self, dest: str, owner: tuple[int, int] | None) -> None:
        self.dest = dest
        self.owner = owner
        self.real_dirs: set[str] = {""}
        self.links: set[str] = set()  # symlinks this restore created
        self.members = 0

    def _rel(self, name: str, what: str) -> str:
        if name.startswith("/") or os.path.isabs(name):
            raise _Refused(f"{what} {name!r} is an absolute path")
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise _Refused(f"{what} {name!r} contains '..'")
        if not parts or parts[0] != ARC_ROOT:
            raise _Refused(f"{what} {name!r} is outside {ARC_ROOT}/")
        return "/".join(parts[1:])

    def _check_parents(self, rel: str, name: str) -> None:
        """Nothing is ever written through a symlink, whatever realpath says."""
        parts = rel.split("/")[:-1]
        prefix = ""
        for part in parts:
            prefix = f"{prefix}/{part}" if prefix else part
            if prefix in self.real_dirs:
                continue
            try:
                st = os.lstat(os.path.join(self.dest, prefix))
            except FileNotFoundError:
                return  # tarfile creates the rest as real directories
            if not stat.S_ISDIR(st.st_mode):
                raise _Refused(f"member {name!r} would be written through a link or file")
            self.real_dirs.add(prefix)

    def _check_symlink(self, rel: str, name: str, target: str) -> None:
        if target.startswith("/"):
            raise _Refused(f"link {name!r} points to the absolute path {target!r}")
        parts = [p for p in target.split("/") if p not in ("", ".")]
        ups = 0
        while ups < len(parts) and parts[ups] == "..":
            ups += 1
        if ".." in parts[ups:]:
            raise _Refused(f"link {name!r} -> {target!r} goes up after going down")
        if ups > rel.count("/"):
            raise _Refused(f"link {name!r} -> {target!r} leads out of the state")

    def __call__(self, member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
        name = member.name
        rel = self._rel(name, "member")
        if not rel:
            return None  # the state directory itself: the new one is already there
        if member.ischr() or member.isblk() or member.isfifo() or member.isdev():
            raise _Refused(f"member {name!r} is a device or fifo")
        if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
            raise _Refused(f"member {name!r} has unsupported type {member.type!r}")
        if member.mode & (stat.S_ISUID | stat.S_ISGID):
            raise _Refused(f"member {name!r} has a setuid or setgid bit")
        self._check_parents(rel, name)
        # The member is ours alone (the extraction loop forgets it next), so it
        # is renamed in place rather than copied.
        member.name = rel
        if member.issym():
            self._check_symlink(rel, name, member.linkname)
        elif member.islnk():
            target = self._rel(member.linkname, "hard link target")
            self._check_parents(target, name)  # its parents; lstat below checks it
            full = os.path.join(self.dest, target)
            try:
                if not stat.S_ISREG(os.lstat(full).st_mode):
                    raise _Refused(f"hard link {name!r} must point to a regular file")
            except FileNotFoundError:
                raise _Refused(f"hard link {name!r} points to a missing member") from None
            member.linkname = target
        if member.isdir():
            self.real_dirs.discard(rel)  # checked again when used as a parent
        if member.issym() or member.islnk() or rel in self.links:
            if member.issym():
                self.links.add(rel)
            try:
                filtered = tarfile.data_filter(member, path)
            except tarfile.FilterError as exc:
                raise _Refused(f"member {name!r} refused: {exc}") from None
        else:
            filtered = _data_attrs(member)
        if self.owner is not None:
            filtered.uid, filtered.gid = self.owner
            filtered.uname = filtered.gname = ""
        self.members += 1
        return filtered


def _data_attrs(member: tarfile.TarInfo) -> tarfile.TarInfo:
    """What `tarfile.data_filter` makes of a regular file or directory whose
    path `_MemberFilter` has already proven to be under the destination:
    relative, no `..`, every existing parent a real directory, and the name
    itself not a symlink this restore created. There `data_filter`'s two
    `realpath` walks can only find the lexical path, so only its attribute
    rules are left, applied here in place (the member is ours alone)."""
    mode = member.mode
    if member.isdir():
        mode = None
    elif mode is not None:
        mode &= 0o755
        if not mode & 0o100:
            mode &= ~0o111
        mode |= 0o600
    member.mode = mode  # type: ignore[assignment]
    member.uid = member.gid = member.uname = member.gname = None  # type: ignore[assignment]
    return member


class _ForwardReader:
    """The read end of the plaintext pipe as a file that tarfile can "seek"
    forward in (by reading), so it reads headers and data straight from a
    C-buffered pipe instead of its stream mode's buffer, which copies the
    whole buffer on every header read. Counts bytes for the progress bar."""

    def __init__(self, raw: BinaryIO, progress: Progress, total: int) -> None:
        self.raw = raw
        self.progress = progress
        self.total = total
        self.pos = 0
        self._last = 0.0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.pos += len(data)
        now = time.monotonic()
        if now - self._last > 0.1:
            self._last = now
            self.progress(ProgressEvent("restore", min(self.pos, self.total), self.total))
        return data

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence != os.SEEK_SET or offset < self.pos:
            raise OSError(errno.ESPIPE, "the snapshot stream only moves forward")
        while self.pos < offset:
            if not self.read(min(CHUNK, offset - self.pos)):
                break
        return self.pos


def check_key(home: FleetHome, bot: str, path: Path) -> None:
    """Fail fast, before stopping anything, if the key cannot open this file:
    authenticate its header and first chunk only."""
    identity = parse_identity(_identity(home, bot))
    try:
        with path.open("rb") as f:
            check_first_chunk(f, open_payload(f, identity))
    except OSError as exc:
        raise SnapshotError(f"cannot read {path.name}: {_os_message(exc)}") from None
    except (WrongKeyError, NotAgeFileError) as exc:
        raise SnapshotError(
            f"{path.name} cannot be decrypted with {bot}'s key "
            f"(wrong key, or not an age file): {exc}"
        ) from None
    except AgeError as exc:
        raise SnapshotError(
            f"{path.name} failed to decrypt: wrong key, truncated or tampered ({exc})"
        ) from None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:160] or type(exc).__name__


def _extract_all(tar: tarfile.TarFile, dest: Path, member_filter: _MemberFilter) -> None:
    """`extractall`, member by member, forgetting each member once extracted
    (tarfile keeps them all otherwise: memory would grow with the file count).
    Small regular files whose path the filter proved are written directly
    (`_write_small`); everything else goes through `tar.extract`. Directory
    attributes are set last, as extractall does, so a read-only directory
    does not block its own contents."""
    tar.errorlevel = 2
    directories: list[tuple[tarfile.TarInfo, str]] = []
    while (member := tar.next()) is not None:
        tar.members.clear()
        filtered = member_filter(member, str(dest))
        if filtered is None:
            continue
        if _is_small_regular(filtered, member_filter):
            _write_small(tar, filtered, dest, member_filter.real_dirs, member_filter.owner)
            continue
        is_dir = filtered.isdir()
        tar.extract(
            filtered, dest, set_attrs=not is_dir, numeric_owner=True, filter="fully_trusted"
        )
        if is_dir and (filtered.mode is not None or member_filter.owner is not None):
            directories.append((filtered, os.path.join(dest, filtered.name)))
    for info, dirpath in reversed(directories):
        tar.chown(info, dirpath, True)
        tar.utime(info, dirpath)
        tar.chmod(info, dirpath)


# Regular files up to SMALL bytes are read whole and written with a few calls
# on one descriptor: tarfile's `extract` costs ~40 us of Python a member, most
# of a restore of many small files. Measured against a writer thread fed by
# this one (the kernel work releases the GIL): 1 GB / 50,000 files on tmpfs,
# 2 shared cores, direct 1.66-2.22 s, one writer thread 2.65-3.08 s (the GIL
# handoff after every syscall), tarfile's extract 2.60-3.26 s, tar 1.46-2.48 s.
# Larger files are streamed by tarfile, so memory stays flat.
SMALL = 256 << 10
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW


def _is_small_regular(member: tarfile.TarInfo, member_filter: _MemberFilter) -> bool:
    """A small regular file that `_data_attrs` handled: no link involved."""
    return (
        member.isreg()
        and not member.issparse()
        and member.size <= SMALL
        and member.mode is not None
        and member.name not in member_filter.links
    )


def _write_small(
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    dest: Path,
    real_dirs: set[str],
    owner: tuple[int, int] | None,
) -> None:
    """What `tar.extract` does for a regular file (parents, data, owner, mode,
    time), on one descriptor that also refuses a symlink as the last
    component."""
    parent = member.name.rpartition("/")[0]
    if parent not in real_dirs:  # the filter found it missing: made as tarfile would
        os.makedirs(os.path.join(dest, parent), exist_ok=True)
    source = tar.fileobj
    source.seek(member.offset_data)
    # The data and its padding in one read: `tar.next` then finds the stream
    # at the next header and has nothing to skip.
    data = source.read(tar.offset - member.offset_data)
    if len(data) < member.size:
        raise tarfile.ReadError("unexpected end of data")
    fd = os.open(os.path.join(dest, member.name), _CREATE, 0o600)
    try:
        view = memoryview(data)[: member.size]
        while view:
            view = view[os.write(fd, view) :]
        if owner is not None:
            os.fchown(fd, *owner)
        os.fchmod(fd, member.mode)
        if member.mtime is not None:
            os.utime(fd, (member.mtime, member.mtime))
    finally:
        os.close(fd)


def extract_snapshot(
    home: FleetHome, bot: str, path: Path, dest: Path, *, progress: Progress = no_progress
) -> int:
    """Decrypt and extract `path` into the empty directory `dest`; returns the
    number of members. Raises SnapshotError, leaving `dest` for the caller to
    remove, on a wrong key, a truncated or tampered file, a refused member or
    a full disk."""
    identity = _identity(home, bot)
    total = path.stat().st_size
    try:
        owner_st = os.stat(home.state_dir(bot))
        owner = (owner_st.st_uid, owner_st.st_gid) if os.geteuid() == 0 else None
    except FileNotFoundError:
        owner = None
    member_filter = _MemberFilter(os.path.realpath(dest), owner)
    proc = _child("decrypt", str(path), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    _widen_pipe(proc.stdout.fileno())
    try:
        proc.stdin.write(f"{identity}\n".encode())
    except BrokenPipeError:
        pass
    finally:
        proc.stdin.close()
    reader = open(proc.stdout.fileno(), "rb", buffering=CHUNK, closefd=False)  # noqa: SIM115
    extract_error: BaseException | None = None
    try:
        stream = _ForwardReader(reader, progress, total)
        with tarfile.open(fileobj=stream, mode="r:", tarinfo=FastTarInfo) as tar:  # type: ignore[call-overload]
            _extract_all(tar, dest, member_filter)
        while reader.read(CHUNK):  # the rest, so the decryptor reaches its final check
            pass
        progress(ProgressEvent("restore", total, total))
    except BaseException as exc:
        extract_error = exc
    finally:
        reader.close()
        proc.stdout.close()  # a decryptor still writing gets EPIPE and stops
    error = _child_result(proc)
    if error is not None and not (proc.returncode == 3 and extract_error is not None):
        if error.startswith("age: "):
            raise SnapshotError(
                f"{path.name} failed to decrypt: wrong key, truncated or tampered "
                f"({error.removeprefix('age: ')})"
            ) from None
        raise SnapshotError(f"cannot read {path.name}: {error}") from None
    if extract_error is not None:
        exc = extract_error
        if isinstance(exc, SnapshotError):
            raise SnapshotError(f"{path.name}: {exc}") from None
        if isinstance(exc, OSError):
            raise SnapshotError(f"cannot extract {path.name}: {_os_message(exc)}") from None
        if isinstance(exc, tarfile.TarError):
            raise SnapshotError(f"{path.name} is not a valid archive: {_one_line(exc)}") from None
        raise exc
    return member_filter.members


def restore_state(
    home: FleetHome, bot: str, name: str, *, progress: Progress = no_progress
) -> tuple[str, str | None]:
    """The file part of a restore, without the gateway: safety snapshot,
    extract beside `state/`, swap. Returns (restored name, safety snapshot).
    On any failure the old `state/` is left exactly as it was."""
    path = resolve(home, bot, name)
    check_key(home, bot, path)
    state = home.state_dir(bot)
    repo = home.bot_repo(bot)
    make_private_dirs(repo)
    _recover_interrupted(repo, state)
    safety = None
    if state.is_dir():
        safety = create_snapshot(
            home, bot, SAFETY_LABEL, progress=progress, record=False, point_latest=False
        ).name
    stamp = f"{os.getpid()}-{time.monotonic_ns()}"
    new = repo / f".state-restore-{stamp}"
    old = repo / f".state-old-{stamp}"
    mode = stat.S_IMODE(state.stat().st_mode) if state.is_dir() else 0o700
    os.mkdir(new, mode)
    with contextlib.suppress(OSError):
        if state.is_dir() and os.geteuid() == 0:
            st = state.stat()
            os.chown(new, st.st_uid, st.st_gid)
    try:
        extract_snapshot(home, bot, path, new, progress=progress)
        _fsync_tree(new)
        if state.exists() and _exchange(new, state):
            old = new  # after the exchange, `new` holds the previous state
        else:
            if state.exists():
                os.rename(state, old)
            try:
                os.rename(new, state)
            except OSError:
                if old.exists():
                    os.rename(old, state)
                raise
        fsync_dir(repo)
    except OSError as exc:
        shutil.rmtree(new, ignore_errors=True)
        raise SnapshotError(f"cannot restore {path.name}: {_os_message(exc)}") from None
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return path.name, safety


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directories in one step (Linux renameat2 RENAME_EXCHANGE), so
    there is no instant without a `state/`. False where it is not supported."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code))


def _recover_interrupted(repo: Path, state: Path) -> None:
    """Tidy what a restore that died left: its half-extracted directory, and,
    if it died between the two renames of the fallback swap, the old state."""
    for entry in os.scandir(repo):
        m = re.fullmatch(r"\.state-(restore|old)-(\d+)-\d+", entry.name)
        if not m or locks.pid_alive(int(m[2])):
            continue
        if m[1] == "old" and not state.exists():
            os.rename(entry.path, state)
        else:
            shutil.rmtree(entry.path, ignore_errors=True)


def _fsync_tree(root: Path) -> None:
    """Make the restored files durable before the old state goes: a sync of the
    filesystem is one call instead of one per file."""
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.syncfs(fd) if hasattr(os, "syncfs") else os.sync()  # type: ignore[attr-defined]
    finally:
        os.close(fd)


async def restore(
    home: FleetHome,
    bot: BotConfig,
    name: str = "latest",
    *,
    runtime: Runtime | None = None,
    progress: Progress = no_progress,
) -> RestoreResult:
    """Restore a snapshot: stop the gateway if it runs, keep a safety snapshot,
    swap the state in, and start the gateway again if it was running (never
    for a locked bot). `runtime=None` restores the files alone.

    An operation the kill switch cancels (`cftui.locks`); the swap itself,
    once begun, ends (or rolls back) before the cancellation takes effect."""
    if locks.is_locked(home, bot.name):
        # Rolling a killed bot back before unlocking it is allowed: the gate
        # keeps its gateway down, and there is nothing for a kill to cancel.
        return await _restore(home, bot, name, runtime, progress, None)
    async with locks.operation(home, bot.name, "restore") as op:
        return await _restore(home, bot, name, runtime, progress, op)


async def _restore(
    home: FleetHome,
    bot: BotConfig,
    name: str,
    runtime: Runtime | None,
    progress: Progress,
    op: locks.Operation | None,
) -> RestoreResult:
    result = RestoreResult(name=name)
    path = await asyncio.to_thread(resolve, home, bot.name, name)
    result.name = path.name
    await asyncio.to_thread(check_key, home, bot.name, path)
    if runtime is None:
        result.notes.append("no runtime: the gateway was not checked, stopped or started")
    else:
        result.gateway_was_running = await runtime.gateway_running(bot)
        if result.gateway_was_running:
            progress(ProgressEvent("restore", 0, None, "stopping the gateway"))
            await runtime.stop_gateway(bot)
        await runtime.pull_state(bot)

    async def swap() -> None:
        _restored, result.safety = await asyncio.to_thread(
            restore_state, home, bot.name, path.name, progress=progress
        )
        if runtime is not None:
            await runtime.push_state(bot)

    error: BaseException | None = None
    killed: asyncio.CancelledError | None = None
    try:
        await locks.finish_first(swap())
    except asyncio.CancelledError as exc:  # the kill came; the swap has ended
        killed = exc
    except BaseException as exc:
        error = exc
    if result.gateway_was_running and runtime is not None:
        if killed is not None or locks.is_locked(home, bot.name):
            result.notes.append("the bot is locked by the kill switch: gateway left stopped")
        else:
            try:
                progress(ProgressEvent("restore", 0, None, "starting the gateway"))
                await runtime.start_gateway(bot)
                result.gateway_restarted = True
            except CftuiError as exc:
                result.notes.append(f"gateway did not restart: {exc}")
            except asyncio.CancelledError as exc:
                killed = exc
    record_event(
        home,
        "restore",
        bot.name,
        name=result.name,
        ok=error is None,
        safety=result.safety,
        error=_one_line(error) if error else None,
        gateway_restarted=result.gateway_restarted,
        **({"cancelled": "kill switch"} if killed is not None else {}),
    )
    if op is not None:
        op.recorded = True
    if error is not None:
        if isinstance(error, SnapshotError):
            raise SnapshotError(f"{error}; the previous state is unchanged") from None
        raise error
    if killed is not None:
        raise killed
    return result
