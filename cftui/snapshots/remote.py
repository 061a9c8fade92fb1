"""Snapshots of a bot whose `state/` lives on another Docker host.

The host never holds the bot's identity, so nothing is encrypted or
decrypted there:
- create: GNU tar runs on the host over the host's SSH link (`HostLink`),
  archiving what `find` chose with the snapshot's exclusions
  (`snapshot_exclusions.find_prune_args`), links archived as links, never
  followed; the plaintext stream is bounded in size and piped here straight
  into the age encryptor (`create_snapshot` with this module's archiver);
- restore: the snapshot is decrypted here, each member checked as a local
  restore checks it (`extract.StreamFilter`: no absolute paths, no `..`, no
  links out, no devices or setuid bits) and the checked archive streamed to
  the host's `tar -x` into a fresh directory beside `state/`; only once the
  whole file decrypted, authenticated and extracted is it swapped in there,
  otherwise the host's `state/` was never touched.

The file work runs in a thread (the caller's `asyncio.to_thread`) and asks
the event loop that serves the link for each SSH step, so no loop waits on
a pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import subprocess
import tarfile
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from cftui.errors import CftuiError, SnapshotError
from cftui.fleet import FleetHome
from cftui.hosts.layout import HostLayout
from cftui.progress import Progress, ProgressEvent, no_progress
from cftui.snapshot_exclusions import find_prune_args
from cftui.snapshots.agechild import CHUNK, ChildFailed, bot_identity, child_result, spawn
from cftui.snapshots.create import STATE_LIMIT, CreateStats, create_snapshot, over_bound
from cftui.snapshots.decrypt import _ForwardReader, check_key
from cftui.snapshots.extract import StreamFilter
from cftui.snapshots.reasons import one_line
from cftui.snapshots.tarheader import FastTarInfo

if TYPE_CHECKING:
    import asyncssh

    from cftui.hosts.ssh import HostLink
    from cftui.snapshots.catalog import SnapshotInfo

T = TypeVar("T")

# A remote state's archive larger than this is refused (the bot's disk
# bound, when fleet.toml gives one, is used instead).
DEFAULT_LIMIT = STATE_LIMIT
STEP_TIMEOUT_S = 120.0
SAFETY_LABEL = "pre-restore"

_TAR_FLAGS = (
    "--format=gnu --numeric-owner --no-recursion --hard-dereference --no-acls "
    "--no-xattrs --no-selinux --null --verbatim-files-from"
)


@dataclass(frozen=True)
class RemoteState:
    """A bot's `state/` on another host, and the loop that serves its link."""

    link: HostLink
    bot: str
    loop: asyncio.AbstractEventLoop
    limit: int = DEFAULT_LIMIT

    @property
    def path(self) -> str:
        return str(HostLayout.of(self.link.host).state_dir(self.bot))

    @property
    def repo(self) -> str:
        return self.path.rsplit("/", 1)[0]

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = STEP_TIMEOUT_S) -> T:
        """Run one SSH step on the link's loop from this (worker) thread."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def where(self) -> str:
        return f"host {self.link.host.name}"


_OVER = 4  # the create script's exit status for a state over the bound


def _create_script(tree: RemoteState) -> str:
    """tar of `state/` on the host: find's names (exclusions pruned, nothing
    followed), sorted, archived one by one; tar's last complaints on stderr.
    First the files' sizes are added up, as tar will read them (a sparse
    file whole): a state over the bound is refused before a byte is sent
    (exit _OVER, the sum on stderr), not after the bound's worth of zeros
    crossed the link and was encrypted into the snapshots directory here."""
    find = shlex.join(("find", "state", "(", *find_prune_args(), ")"))
    return (
        f"cd -- {shlex.quote(tree.repo)} || exit 3\n"
        "if [ ! -d state ] || [ -L state ]; then echo 'no state directory' >&2; exit 3; fi\n"
        f"n=$({find} -prune -o -type f -printf '%s\\n' 2>/dev/null "
        "| awk '{s += $1} END {printf \"%.0f\", s}')\n"
        f'if [ "${{n:-0}}" -gt {int(tree.limit)} ]; then echo "$n" >&2; exit {_OVER}; fi\n'
        "e=$(mktemp) || exit 3\n"
        f"{find} -prune -o \\( -type d -o -type f -o -type l \\) -print0 2>/dev/null "
        f'| LC_ALL=C sort -z | LC_ALL=C tar --create --file=- {_TAR_FLAGS} --files-from=- 2>"$e"\n'
        "s=$?\n"
        'tail -c 2000 "$e" >&2; rm -f "$e"\n'
        "exit $s\n"
    )


def archiver(tree: RemoteState) -> Any:
    """The archiver (`create.Archiver`) that streams the host's tar of the
    bot's state into the encryptor, which writes the snapshot here."""

    def archive(out_fd: int, recipient: str, stats: CreateStats, progress: Progress) -> None:
        read_end, write_end = os.pipe()
        try:
            crypt = spawn("encrypt", recipient, stdin=read_end, stdout=out_fd)
        finally:
            os.close(read_end)
        proc: asyncssh.SSHClientProcess[bytes] | None = None
        stderr = b""
        try:
            proc = tree.call(_start(tree, f"sh -c {shlex.quote(_create_script(tree))}"))
            while chunk := tree.call(proc.stdout.read(CHUNK)):
                stats.bytes += len(chunk)
                if stats.bytes > tree.limit:
                    raise SnapshotError(
                        f"the state of {tree.bot} on {tree.where()} is over "
                        f"{tree.limit >> 20} MiB archived: refused"
                    )
                view = memoryview(chunk)
                while view:
                    view = view[os.write(write_end, view) :]
                progress(ProgressEvent("snapshot", stats.bytes, None))
            status, stderr = tree.call(_finish(proc))
        except BaseException:
            with contextlib.suppress(OSError):
                crypt.kill()
            raise
        finally:
            os.close(write_end)
            if proc is not None:
                proc.close()
        error = child_result(crypt)
        if error is not None:
            raise ChildFailed(error)
        why = " ".join(stderr.decode("utf-8", "replace").split())[-300:]
        if status == 3:
            raise SnapshotError(f"{tree.bot} has no state directory on {tree.where()}")
        if status == _OVER:
            size = int(why) if why.isdigit() else 0
            raise over_bound(tree.bot, f" on {tree.where()}", size, tree.limit)
        if status not in (0, 1):  # 1: a file changed as tar read it
            raise SnapshotError(
                f"tar on {tree.where()} failed ({why or f'exit {status}'}): snapshot not written"
            )

    return archive


async def _start(tree: RemoteState, command: str) -> asyncssh.SSHClientProcess[bytes]:
    conn = await tree.link.connection()
    return await conn.create_process(command, encoding=None)


async def _finish(proc: asyncssh.SSHClientProcess[bytes]) -> tuple[int, bytes]:
    stderr = await proc.stderr.read(4096)
    completed = await proc.wait()
    return (completed.exit_status if completed.exit_status is not None else 255), stderr


def create_remote_snapshot(
    home: FleetHome,
    tree: RemoteState,
    label: str | None = None,
    *,
    progress: Progress = no_progress,
    record: bool = True,
    point_latest: bool = True,
) -> SnapshotInfo:
    """A snapshot of the bot's `state/` on its host, encrypted here (blocking)."""
    try:
        return create_snapshot(
            home,
            tree.bot,
            label,
            progress=progress,
            record=record,
            point_latest=point_latest,
            archive=archiver(tree),
        )
    except CftuiError:
        raise
    except (TimeoutError, OSError) as exc:
        raise SnapshotError(
            f"cannot snapshot {tree.bot} on {tree.where()}: {one_line(exc)}"
        ) from None


class _ChannelWriter:
    """A file that tarfile writes the checked archive to: sent on to the
    host's `tar -x` in blocks of CHUNK (the SSH window holds back a fast
    writer), one trip to the link's loop a block."""

    def __init__(self, tree: RemoteState, proc: asyncssh.SSHClientProcess[bytes]) -> None:
        self.tree = tree
        self.proc = proc
        self.buffer = bytearray()
        self.sent = 0

    def write(self, data: bytes) -> int:
        self.buffer += data
        if len(self.buffer) >= CHUNK:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self.buffer:
            block, self.buffer = bytes(self.buffer), bytearray()
            self.tree.call(self._send(block))
            self.sent += len(block)

    async def _send(self, data: bytes) -> None:
        self.proc.stdin.write(data)
        await self.proc.stdin.drain()


def _extract_script(tree: RemoteState, new: str) -> str:
    q = shlex.quote
    return (
        "umask 077\n"
        f"mkdir -p -- {q(tree.repo)} && cd -- {q(tree.repo)} || exit 3\n"
        "rm -rf -- .state-restore-*\n"  # what a restore that died left
        f"mkdir -m 0700 -- {q(new)} || exit 3\n"
        f"if ! LC_ALL=C tar -x -f - -C {q(new)} --strip-components=1 --no-same-owner "
        "--numeric-owner --delay-directory-restore 2>.tar-err; then\n"
        f"  tail -c 2000 .tar-err >&2; rm -rf -- {q(new)} .tar-err; exit 2\nfi\n"
        "rm -f .tar-err\n"
    )


def _swap_script(tree: RemoteState, new: str, old: str) -> str:
    """The extracted tree owned and moded as the state it replaces, then
    swapped in; the old one put back if the second move fails."""
    q = shlex.quote
    return (
        f"cd -- {q(tree.repo)} || exit 3\n"
        "if [ -d state ] && [ ! -L state ]; then\n"
        f'  chown -R -h -- "$(stat -c %u:%g state)" {q(new)} && '
        f'chmod "$(stat -c %a state)" {q(new)} || exit 2\n'
        f"  mv -T -- state {q(old)} || exit 2\n"
        "fi\n"
        f"if ! mv -T -- {q(new)} state; then\n"
        f"  [ -d {q(old)} ] && mv -T -- {q(old)} state; exit 2\nfi\n"
        f"rm -rf -- {q(old)}\n"
    )


def _emit(member: tarfile.TarInfo) -> tarfile.TarInfo:
    """A checked member as it is written on: numeric owner 0 (the host's
    restore gives the tree the old state's owner), a mode for every type."""
    out = tarfile.TarInfo(member.name)
    out.type = member.type
    out.size = member.size if member.isreg() else 0
    out.linkname = member.linkname
    out.mtime = int(member.mtime or 0)
    default = 0o700 if member.isdir() else 0o777 if member.issym() else 0o600
    out.mode = member.mode if isinstance(member.mode, int) else default
    out.uid = out.gid = 0
    out.uname = out.gname = ""
    return out


async def _run(tree: RemoteState, script: str) -> tuple[int, str]:
    conn = await tree.link.connection()
    res = await conn.run(f"sh -c {shlex.quote(script)}", check=False)
    err = " ".join(str(res.stderr or "").split())[-300:]
    return (res.exit_status if res.exit_status is not None else 255), err


def _stream_checked(
    home: FleetHome, path: Path, tree: RemoteState, new: str, progress: Progress
) -> None:
    """Decrypt `path` here, check each member, and send the checked archive
    to the host's `tar -x` into `new` (beside the state). Raises SnapshotError
    (and the host removes `new`) on a wrong key, a tampered file, a refused
    member, or a host that could not extract."""
    identity = bot_identity(home, tree.bot)
    proc = tree.call(_start(tree, f"sh -c {shlex.quote(_extract_script(tree, new))}"))
    crypt = spawn("decrypt", str(path), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert crypt.stdin is not None and crypt.stdout is not None
    with contextlib.suppress(BrokenPipeError):
        crypt.stdin.write(f"{identity}\n".encode())
    crypt.stdin.close()
    failure: BaseException | None = None
    reader = open(crypt.stdout.fileno(), "rb", buffering=CHUNK, closefd=False)  # noqa: SIM115
    try:
        stream = _ForwardReader(reader, progress, path.stat().st_size)
        member_filter = StreamFilter()
        writer = _ChannelWriter(tree, proc)
        with (
            tarfile.open(fileobj=stream, mode="r:", tarinfo=FastTarInfo) as src,  # type: ignore[call-overload]  # typeshed lacks tarinfo=
            tarfile.open(fileobj=writer, mode="w|", format=tarfile.GNU_FORMAT) as out,  # type: ignore[call-overload]  # a writer with write() is enough
        ):  # fmt: skip
            src.errorlevel = 2
            while (member := src.next()) is not None:
                src.members.clear()
                filtered = member_filter(member, member_filter.dest)
                if filtered is None:
                    continue
                data = src.extractfile(member) if member.isreg() else None
                out.addfile(_emit(filtered), data)
        writer.flush()
        while reader.read(CHUNK):  # the rest, so the decryptor reaches its final check
            pass
    except BaseException as exc:
        failure = exc
    finally:
        reader.close()
        crypt.stdout.close()
    error = child_result(crypt)
    if error is not None or failure is not None:
        proc.close()  # the host's tar sees a cut stream and removes `new`
        with contextlib.suppress(Exception):
            tree.call(_run(tree, f"cd -- {shlex.quote(tree.repo)} && rm -rf -- {shlex.quote(new)}"))
    if error is not None and not (crypt.returncode == 3 and failure is not None):
        if error.startswith("age: "):
            raise SnapshotError(
                f"{path.name} failed to decrypt: wrong key, truncated or tampered "
                f"({error.removeprefix('age: ')})"
            )
        raise SnapshotError(f"cannot read {path.name}: {error}")
    if failure is not None:
        if isinstance(failure, SnapshotError):
            raise SnapshotError(f"{path.name}: {failure}") from None
        if isinstance(failure, tarfile.TarError):
            raise SnapshotError(
                f"{path.name} is not a valid archive: {one_line(failure)}"
            ) from None
        if isinstance(failure, (OSError, asyncio.TimeoutError)):
            raise SnapshotError(
                f"cannot restore {path.name} on {tree.where()}: {one_line(failure)}"
            ) from None
        raise failure
    status, stderr = tree.call(_finish_input(proc))
    if status != 0:
        raise SnapshotError(
            f"{tree.where()} could not extract {path.name} ({stderr or f'exit {status}'})"
        )


async def _finish_input(proc: asyncssh.SSHClientProcess[bytes]) -> tuple[int, str]:
    proc.stdin.write_eof()
    status, stderr = await _finish(proc)
    return status, " ".join(stderr.decode("utf-8", "replace").split())[-300:]


def has_state(tree: RemoteState) -> bool:
    """Whether the host holds a `state/` directory (not a link) for the bot (blocking)."""
    q = shlex.quote(tree.path)
    status, _err = tree.call(_run(tree, f"[ -d {q} ] && [ ! -L {q} ]"))
    return status == 0


def restore_remote_state(
    home: FleetHome, tree: RemoteState, path: Path, *, progress: Progress = no_progress
) -> str | None:
    """The file part of a remote restore (blocking): a safety snapshot of
    the host's state if it has one, the checked archive extracted beside it
    there, then swapped in. Returns the safety snapshot's name. On any
    failure the host's `state/` is as it was."""
    check_key(home, tree.bot, path)
    safety = None
    if has_state(tree):
        safety = create_remote_snapshot(
            home, tree, SAFETY_LABEL, progress=progress, record=False, point_latest=False
        ).name
    stamp = uuid.uuid4().hex[:12]
    new, old = f".state-restore-{stamp}", f".state-old-{stamp}"
    progress(ProgressEvent("restore", 0, None, f"sending the state to {tree.where()}"))
    _stream_checked(home, path, tree, new, progress)
    status, err = tree.call(_run(tree, _swap_script(tree, new, old)))
    if status != 0:
        with contextlib.suppress(Exception):
            tree.call(_run(tree, f"cd -- {shlex.quote(tree.repo)} && rm -rf -- {shlex.quote(new)}"))
        raise SnapshotError(f"cannot swap the restored state in on {tree.where()}: {err}")
    return safety
