"""Decrypting a snapshot into a directory: the decryptor child pipes the
plaintext to tarfile, which reads it forward only, and each member goes
through the safe extraction (`extract`). Nothing read counts until the
decryptor has authenticated the whole file.
"""

from __future__ import annotations

import errno
import os
import subprocess
import tarfile
import time
from pathlib import Path
from typing import BinaryIO

from cftui.age import (
    AgeError,
    NotAgeFileError,
    WrongKeyError,
    check_first_chunk,
    open_payload,
    parse_identity,
)
from cftui.errors import SnapshotError
from cftui.fleet import FleetHome
from cftui.progress import Progress, ProgressEvent, no_progress
from cftui.snapshots.agechild import CHUNK, bot_identity, child_result, spawn, widen_pipe
from cftui.snapshots.extract import MemberFilter, extract_members
from cftui.snapshots.reasons import one_line, os_message
from cftui.snapshots.tarheader import FastTarInfo


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
    identity = parse_identity(bot_identity(home, bot))
    try:
        with path.open("rb") as f:
            check_first_chunk(f, open_payload(f, identity))
    except OSError as exc:
        raise SnapshotError(f"cannot read {path.name}: {os_message(exc)}") from None
    except (WrongKeyError, NotAgeFileError) as exc:
        raise SnapshotError(
            f"{path.name} cannot be decrypted with {bot}'s key "
            f"(wrong key, or not an age file): {exc}"
        ) from None
    except AgeError as exc:
        raise SnapshotError(
            f"{path.name} failed to decrypt: wrong key, truncated or tampered ({exc})"
        ) from None


def extract_snapshot(
    home: FleetHome, bot: str, path: Path, dest: Path, *, progress: Progress = no_progress
) -> int:
    """Decrypt and extract `path` into the empty directory `dest`; returns the
    number of members. Raises SnapshotError, leaving `dest` for the caller to
    remove, on a wrong key, a truncated or tampered file, a refused member or
    a full disk."""
    identity = bot_identity(home, bot)
    total = path.stat().st_size
    try:
        owner_st = os.stat(home.state_dir(bot))
        owner = (owner_st.st_uid, owner_st.st_gid) if os.geteuid() == 0 else None
    except FileNotFoundError:
        owner = None
    member_filter = MemberFilter(os.path.realpath(dest), owner)
    proc = spawn("decrypt", str(path), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    widen_pipe(proc.stdout.fileno())
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
        with tarfile.open(fileobj=stream, mode="r:", tarinfo=FastTarInfo) as tar:  # type: ignore[call-overload]  # typeshed lacks tarinfo=
            extract_members(tar, dest, member_filter)
        while reader.read(CHUNK):  # the rest, so the decryptor reaches its final check
            pass
        progress(ProgressEvent("restore", total, total))
    except BaseException as exc:
        extract_error = exc
    finally:
        reader.close()
        proc.stdout.close()  # a decryptor still writing gets EPIPE and stops
    error = child_result(proc)
    if error is not None and not (proc.returncode == 3 and extract_error is not None):
        if error.startswith("age: "):
            raise SnapshotError(
                f"{path.name} failed to decrypt: wrong key, truncated or tampered "
                f"({error.removeprefix('age: ')})"
            ) from None
        raise SnapshotError(f"cannot read {path.name}: {error}") from None
    if extract_error is not None:
        failure = extract_error
        if isinstance(failure, SnapshotError):
            raise SnapshotError(f"{path.name}: {failure}") from None
        if isinstance(failure, OSError):
            raise SnapshotError(f"cannot extract {path.name}: {os_message(failure)}") from None
        if isinstance(failure, tarfile.TarError):
            raise SnapshotError(
                f"{path.name} is not a valid archive: {one_line(failure)}"
            ) from None
        raise failure
    return member_filter.members
