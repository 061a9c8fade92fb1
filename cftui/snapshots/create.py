"""Creating a snapshot: GNU tar archives the names our walk chose (`_walk`:
caches left out, sorted, symlinks not followed) and pipes the archive
straight into the age encryptor (`agechild`), which writes a temporary name
with write-behind (so the fsync that follows has little left); it is then
linked to its final name. A partial file never carries a final name.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import stat
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from cftui import locks
from cftui.audit.events import record_event
from cftui.errors import CftuiError, SnapshotError
from cftui.fleet import FleetHome
from cftui.progress import Progress, ProgressEvent, no_progress
from cftui.securefs import PRIVATE_FILE, fsync_dir, make_private_dirs
from cftui.snapshot_exclusions import is_excluded
from cftui.snapshots.agechild import ChildFailed, bot_recipient, child_result, spawn, widen_pipe
from cftui.snapshots.catalog import (
    ARC_ROOT,
    SnapshotInfo,
    latest_target,
    sanitize_label,
    set_latest,
    snapshot_name,
)
from cftui.snapshots.reasons import os_message

PARTIAL_RE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.partial$")
# Set false to leave the whole write-out to the final fsync (bench/snapshots.py's
# like-for-like row).
_WRITE_BEHIND = True


@dataclass
class CreateStats:
    """What a create archived (the progress total and the event) and left out."""

    files: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)


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


# A state larger than this is refused where fleet.toml gives the bot no
# disk bound (its bound otherwise): sizes as tar reads them, so a sparse
# file the agent made for nothing counts whole.
STATE_LIMIT = 64 << 30


def state_limit(home: FleetHome, bot: str) -> int:
    """The most a snapshot of `bot`'s state may archive."""
    try:
        return home.bot(bot).disk_bytes or STATE_LIMIT
    except CftuiError:
        return STATE_LIMIT


def over_bound(bot: str, where: str, size: int, limit: int) -> SnapshotError:
    """The one-line refusal of a state whose files add up past `limit`."""
    return SnapshotError(
        f"the state of {bot}{where} holds {size >> 20} MiB of files (a sparse file counted "
        f"whole, as tar reads it), over {limit >> 20} MiB: refused before archiving "
        "(remove the large files, or raise the bot's disk bound)"
    )


def _archive_into(
    out_fd: int,
    recipient: str,
    root: Path,
    stats: CreateStats,
    progress: Progress,
    limit: int = STATE_LIMIT,
) -> None:
    """`tar -c` of `root` piped straight into the age encryptor, which writes
    `out_fd`: the plaintext never passes through Python, memory stays flat.
    The files and bytes to archive (the progress bar's total) are counted
    while tar and the encryptor already run. Progress is the encrypted size
    written so far (age adds ~0.1 %)."""
    if root.name != ARC_ROOT:  # pragma: no cover - FleetHome.state_dir ends in state/
        raise SnapshotError(f"a snapshot archives a directory named {ARC_ROOT}/, not {root}")
    with tempfile.TemporaryFile() as tar_errors:
        crypt, tar = _run_pipeline(out_fd, recipient, root, stats, progress, tar_errors, limit)
        error = child_result(crypt)
        tar_errors.seek(0)
        lines = tar_errors.read().decode("utf-8", "replace").splitlines()
    if error is not None:
        raise ChildFailed(error)
    failures = []
    for line in lines:
        text = line.removeprefix("tar: ")
        if any(race in text for race in _TAR_RACES):
            stats.skipped.append(text)
        elif "Exiting with failure" not in text:
            failures.append(text)
    if tar.returncode not in (0, 1) and (failures or tar.returncode < 0):
        raise ChildFailed(failures[0] if failures else f"tar exited with {tar.returncode}")
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
    limit: int,
) -> tuple[subprocess.Popen, subprocess.Popen]:
    """Start tar and the encryptor, feed tar the names, report progress until
    the encryptor ends; both are killed if anything (progress too) raises,
    or once the files to archive are found to add up past `limit`."""
    read_end, write_end = os.pipe()
    widen_pipe(write_end)
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
        crypt = spawn("encrypt", *flags, recipient, stdin=read_end, stdout=out_fd)
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
        if stats.bytes > limit:
            raise over_bound(root.parent.name, "", stats.bytes, limit)
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


# Writes the encrypted archive of a bot's state to the descriptor, with the
# recipient given, filling in the stats: this machine's tar (`_archive_into`)
# or another host's, streamed over SSH (`cftui.snapshots.remote`).
Archiver = Callable[[int, str, CreateStats, Progress], None]


def create_snapshot(
    home: FleetHome,
    bot: str,
    label: str | None = None,
    *,
    progress: Progress = no_progress,
    now: datetime | None = None,
    record: bool = True,
    point_latest: bool = True,
    archive: Archiver | None = None,
) -> SnapshotInfo:
    """Archive and encrypt `state/` into a new snapshot; point `latest` at it.
    `archive` makes the archive where the state is not the fleet home's
    (another Docker host); by default, the fleet home's `state/`.

    Blocking; the TUI calls it from a thread worker (or through `snapshot`),
    and `progress` is called from that thread.
    """
    if archive is None:
        state = home.state_dir(bot)
        if not state.is_dir():
            raise SnapshotError(f"{bot} has no state directory ({state}): nothing to snapshot")

        limit = state_limit(home, bot)

        def archive(fd: int, recipient: str, stats: CreateStats, progress: Progress) -> None:
            _archive_into(fd, recipient, state, stats, progress, limit)

    recipient = bot_recipient(home, bot)
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
            archive(out.fileno(), recipient, stats, progress)
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
        if point_latest or latest_target(folder) is None:
            set_latest(folder, final)
        else:
            fsync_dir(folder)
    except OSError as exc:
        raise SnapshotError(f"cannot write snapshot of {bot}: {os_message(exc)}") from None
    except ChildFailed as exc:
        raise SnapshotError(f"cannot write snapshot of {bot}: {exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    size = (folder / final).stat().st_size
    info = SnapshotInfo(
        final, sanitize_label(label or "manual"), when, size, latest_target(folder) == final
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
