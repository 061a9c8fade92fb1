"""A local mirror of audit files that grow somewhere else (in a Lima VM, on
another Docker host), followed over an SSH connection that is already open.

One `tail -f` per file runs on the far side, starting where the local copy
left off; every complete line is appended locally with a single write
(cfproxies.jsonl), so a reader of the mirror never sees half a record. An
appended record reaches the mirror in well under a second, with no polling
loop on our side.

What the far side's file does is not trusted:
- a torn last line waits for its newline (a restart reads it again whole);
- a line longer than `MAX_LINE` is dropped, not held in memory, and counted;
- a file replaced or shrunk there (the tail's watcher sees its inode change
  or its size fall) is followed again from its start: the mirror keeps every
  line it had and never shrinks.

The mirror knows the far offset it reached as "local size + delta": the
delta (zero while the two grow together) changes only when a line is
dropped or a new file begins, and is kept beside the copy in
`.<name>.mirror` (0600), so a restart resumes exactly where it stopped.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import json
import os
import shlex
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from cfproxies.jsonl import append_bytes, open_append

from cftui.securefs import atomic_write_private

if TYPE_CHECKING:
    import asyncssh

# Longer than any record the proxies write (bodies are capped at 256 KiB
# each, escaping may grow them several times): a longer line is not a record.
MAX_LINE = 16 << 20
RETRY_S = 1.0
IDLE_MAX_S = 5.0
# How often the far side checks that the file it tails is still the one at
# that name and has not shrunk.
WATCH_S = 1.0
# Exit status of the follow script when its file was replaced or shrunk.
_CHANGED = 4


class MirrorEnd(Protocol):
    """The far side: an SSH connection and how a command runs there (as
    root through sudo in a VM, as the login user on a Docker host)."""

    async def connection(self) -> asyncssh.SSHClientConnection: ...

    def command(self, line: str) -> str: ...


@dataclass
class MirrorCounters:
    """What the mirror did, for tests, benchmarks and a status line."""

    lines_copied: int = 0
    lines_dropped: int = 0  # longer than MAX_LINE
    restarts: int = 0  # the far file was replaced or shrunk


# The start of a follow: the far file opened as fd 3 at the inode stated
# (exit 3 when it is not there, 4 when another file or a shorter one is).
# The directory is the proxies' user's: the name must be a regular file,
# not a link (stat without -L), and the descriptor opened on it must be
# that very file (its device and inode), not what a link swapped in since
# the test points at.
_OPEN = r"""
f=$1; off=$2; want=$3
exec 2>/dev/null
[ -f "$f" ] && [ ! -L "$f" ] || exit 3
set -- $(stat -c '%i %s %d' -- "$f") || exit 3
ino=$1; size=$2; dev=$3
[ "$want" = "$ino" ] || exit 4
[ "$size" -ge "$off" ] || exit 4
exec 3<"$f" || exit 3
[ "$(stat -L -c '%d %i' /dev/fd/3)" = "$dev $ino" ] || exit 4
"""
# Then the tail from the offset, and a watcher that ends it (exit 4) when
# the name points at another inode or the file shrank. `-f` follows the
# descriptor, never another file, so every byte out is of the inode stated.
_FOLLOW = (
    _OPEN
    + r"""
tail -q -s 0.1 -c +$((off + 1)) -f /dev/fd/3 & t=$!
exec 3<&-
trap 'kill $t; exit 0' HUP TERM INT
while kill -0 $t; do
  sleep __WATCH__
  set -- $(stat -c '%i %s' -- "$f") || { kill $t; exit 4; }
  [ "$1" = "$ino" ] && [ "$2" -ge "$size" ] || { kill $t; exit 4; }
  size=$2
done
""".replace("__WATCH__", str(WATCH_S))
)
# Or read to the end once (a file nothing writes any more).
_TO_END = _OPEN + "exec tail -c +$((off + 1)) /dev/fd/3\n"


class _Offsets:
    """The far offset of one mirrored file: local size + delta, and the far
    inode it belongs to ("-" before the first stat)."""

    def __init__(self, local: Path) -> None:
        self.path = local.parent / f".{local.name}.mirror"
        self.ino = "-"
        self.delta = 0
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as f:
                raw = json.loads(f.read(4096))
            ino, delta = raw["ino"], raw["delta"]
            if isinstance(ino, str) and ino.isdigit() and isinstance(delta, int):
                self.ino, self.delta = ino, delta
        except (OSError, ValueError, KeyError, TypeError):
            pass  # none yet, or not ours: the local size is the offset

    def save(self) -> None:
        data = json.dumps({"ino": self.ino, "delta": self.delta}).encode()
        atomic_write_private(self.path, data)

    def resume(self, local_size: int, ino: str, far_size: int, counters: MirrorCounters) -> int:
        """The far offset to follow `ino` (stated `far_size` long) from:
        where the copy stops, or 0 when it is another file at that name or
        it shrank (a restart, after what the mirror already holds); saved
        when it moved."""
        offset = local_size + self.delta
        if self.ino not in ("-", ino) or far_size < offset or offset < 0:
            if self.ino != "-" or far_size < offset:
                counters.restarts += 1
            offset = 0
        if (self.ino, self.delta) != (ino, offset - local_size):
            self.ino, self.delta = ino, offset - local_size
            self.save()
        return offset


async def _stat(end: MirrorEnd, remote: str) -> tuple[str, int] | None:
    """(inode, size) of the far file, or None when it is not there (yet) or
    is not a regular file (a link is never followed)."""
    conn = await end.connection()
    q = shlex.quote(remote)
    line = f"[ -f {q} ] && [ ! -L {q} ] && exec stat -c '%i %s' -- {q} 2>/dev/null"
    res = await conn.run(end.command(line), check=False)
    parts = str(res.stdout or "").split()
    if res.exit_status != 0 or len(parts) != 2 or not all(p.isdigit() for p in parts):
        return None
    return parts[0], int(parts[1])


async def follow_once(
    end: MirrorEnd, remote: str, local: Path, counters: MirrorCounters, *, follow: bool = True
) -> bool:
    """Copy the far file's new complete lines until its tail ends (the
    connection dropped, or the file was replaced or shrank), or, not
    `follow`ing, up to its end now. False when there was nothing to follow
    (no such file yet, or another process mirrors it)."""
    fd = open_append(local)
    try:
        try:  # one mirror of a file at a time, whichever cftui process runs it
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        offsets = _Offsets(local)
        size = os.fstat(fd).st_size
        far = await _stat(end, remote)
        if far is None:
            return False
        ino, far_size = far
        offset = offsets.resume(size, ino, far_size, counters)
        conn = await end.connection()
        body = _FOLLOW if follow else _TO_END
        script = f"sh -c {shlex.quote(body)} follow {shlex.quote(remote)} {offset} {ino}"
        proc = await conn.create_process(end.command(script), encoding=None)
        try:
            await _copy_lines(proc.stdout, fd, offsets, counters)
        finally:
            proc.close()
    finally:
        os.close(fd)
    return True


class _LineSink:
    """The far file's bytes, in order, into its local copy: complete lines
    appended with one write each; a torn last line held until its newline;
    a line over MAX_LINE skipped to its newline (and its bytes counted in
    the delta, so the far offset stays exact)."""

    def __init__(self, fd: int, offsets: _Offsets, counters: MirrorCounters) -> None:
        self.fd = fd
        self.offsets = offsets
        self.counters = counters
        self.pending = b""
        self.dropping = False  # inside a line longer than MAX_LINE

    def feed(self, chunk: bytes) -> None:
        offsets, counters = self.offsets, self.counters
        start = 0
        while True:
            nl = chunk.find(b"\n", start)
            if nl < 0:
                rest = chunk[start:]
                if self.dropping:
                    offsets.delta += len(rest)
                elif len(self.pending) + len(rest) > MAX_LINE:
                    offsets.delta += len(self.pending) + len(rest)
                    self.pending, self.dropping = b"", True
                else:
                    self.pending += rest
                return
            piece = chunk[start : nl + 1]
            start = nl + 1
            if self.dropping:
                offsets.delta += len(piece)
                offsets.save()
                counters.lines_dropped += 1
                self.dropping = False
            elif len(self.pending) + len(piece) > MAX_LINE:
                offsets.delta += len(self.pending) + len(piece)
                offsets.save()
                counters.lines_dropped += 1
                self.pending = b""
            else:
                append_bytes(self.fd, self.pending + piece)
                self.pending = b""
                counters.lines_copied += 1


async def _copy_lines(
    stdout: asyncssh.SSHReader[bytes],
    fd: int,
    offsets: _Offsets,
    counters: MirrorCounters,
) -> None:
    sink = _LineSink(fd, offsets, counters)
    while chunk := await stdout.read(1 << 16):
        sink.feed(chunk)


async def follow_file(end: MirrorEnd, remote: str, local: Path, counters: MirrorCounters) -> None:
    """Mirror `remote` into `local` for as long as the task runs, starting
    again a second after the connection drops or the file changes."""
    local.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    idle = RETRY_S
    while True:
        try:
            followed = await follow_once(end, remote, local, counters)
        except asyncio.CancelledError:
            raise
        except Exception:  # the far side went away or the connection dropped: retry
            followed = True
        # A file that is not there (capture.keys before a capture) is looked
        # for less and less often, up to IDLE_MAX_S.
        idle = RETRY_S if followed else min(idle * 2, IDLE_MAX_S)
        await asyncio.sleep(idle)


async def bounded_lines(
    stream: asyncssh.SSHReader[bytes], max_line: int, too_long: type[Exception] | None = None
) -> AsyncIterator[bytes]:
    """The stream's lines, without their newline, none held past `max_line`
    (asyncssh's own readline would hand a long one over cut in pieces): a
    longer line is dropped whole, or, given `too_long`, that is raised."""
    parts: list[bytes] = []  # the line so far (dropped once it is too long)
    size, dropping = 0, False
    while chunk := await stream.read(1 << 16):
        start = 0
        while (nl := chunk.find(b"\n", start)) >= 0:
            piece = chunk[start:nl]
            start = nl + 1
            if not dropping and size + len(piece) <= max_line:
                yield b"".join([*parts, piece])
            elif too_long is not None:
                raise too_long(f"a line over {max_line} bytes")
            parts, size, dropping = [], 0, False
        rest = chunk[start:]
        if dropping or size + len(rest) > max_line:
            if too_long is not None:
                raise too_long(f"a line over {max_line} bytes")
            parts, size, dropping = [], 0, True
        elif rest:
            parts.append(rest)
            size += len(rest)


async def _lines(end: MirrorEnd, line: str, max_line: int) -> AsyncIterator[bytes]:
    """The far command's output lines (`bounded_lines`, a long one dropped)."""
    conn = await end.connection()
    proc = await conn.create_process(end.command(line), encoding=None)
    try:
        async for out in bounded_lines(proc.stdout, max_line):
            yield out
    finally:
        proc.close()


# A rewritten file larger than this is not copied (the egress ledger, the
# largest, is capped at 8 MiB by the proxy and its readers).
MAX_WHOLE = 8 << 20
# The file "$f" itself in base64, at most one byte past "$max": never what a
# link swapped in points at, nor a wait for a fifo's writer.
_READ = (
    'dd if="$f" iflag=nofollow,nonblock,count_bytes,fullblock bs=65536 '
    "count=$((max + 1)) status=none 2>/dev/null | base64 -w0"
)
_MAX_WHOLE_LINE = (MAX_WHOLE // 3 + 2) * 4 + 16

# Each file whose content changed since the last look, as "INDEX BASE64"
# on one line; one session for all of a bot's rewritten files. The empty
# line after each look is a heartbeat: without a terminal, sshd sends no
# hangup when the session ends, and a loop that never writes would outlive it.
# The directory is the proxies' user's, who may put a link, a fifo or a
# huge file at a name: only a regular file is read, opened without
# following a link (swapped in after the test) or waiting for a fifo's
# writer (`nofollow,nonblock`), and never more than one byte past the bound.
_PULL = r"""
w=$1; max=$2; shift 2
while :; do
  i=0
  for f in "$@"; do
    if [ -f "$f" ] && [ ! -L "$f" ]; then
      data=$(__READ__)
      cur=$(printf '%s' "$data" | cksum)
      eval "prev=\${p$i-}"
      if [ -n "$data" ] && [ "$cur" != "$prev" ]; then
        eval "p$i=\$cur"
        echo "$i $data"
      fi
    fi
    i=$((i + 1))
  done
  echo || exit 0  # an empty line: once the session has gone, its pipe ends the loop
  sleep "$w"
done
""".replace("__READ__", _READ)


async def pull_whole(
    end: MirrorEnd, pairs: Sequence[tuple[str, Path]], interval: float = 0.1
) -> None:
    """Files the far side rewrites whole (the egress proxy's stats, its
    ledger of refused requests, the LLM proxy's money ledger): each (far,
    local) pair copied whenever the far content changes, checked every
    `interval` seconds, all in one session. A link, a fifo or a file over
    MAX_WHOLE at a far name is not copied (the local copy stays as it was)."""
    args = " ".join(shlex.quote(far) for far, _local in pairs)
    command = f"sh -c {shlex.quote(_PULL)} pull {interval} {MAX_WHOLE} {args}"
    async for out in _lines(end, command, _MAX_WHOLE_LINE):
        index, _, data = out.partition(b" ")
        if not index.isdigit() or int(index) >= len(pairs):
            continue
        with contextlib.suppress(ValueError):
            body = base64.b64decode(data, validate=True)
            if len(body) <= MAX_WHOLE:
                atomic_write_private(pairs[int(index)][1], body)


async def read_whole(end: MirrorEnd, far: str) -> bytes | None:
    """A file the far side rewrites whole, as it is now (`pull_whole`'s
    read, once); None when it is absent, not a regular file, empty or over
    MAX_WHOLE."""
    script = f'max=$1; f=$2; [ -f "$f" ] && [ ! -L "$f" ] || exit 3; {_READ}; echo'
    command = f"sh -c {shlex.quote(script)} read {MAX_WHOLE} {shlex.quote(far)}"
    async for out in _lines(end, command, _MAX_WHOLE_LINE):
        with contextlib.suppress(ValueError):
            body = base64.b64decode(out, validate=True)
            return body if body and len(body) <= MAX_WHOLE else None
        return None
    return None


async def retrying(step: Callable[[], Awaitable[None]]) -> None:
    """Run `step` (a coroutine function) again a second after it ends or fails."""
    while True:
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception:  # the far side went away or the connection dropped
            pass
        await asyncio.sleep(RETRY_S)


async def push_on_change(local: Path, write: Callable[[str], Awaitable[None]]) -> None:
    """The other way: a file the operator's side writes (the egress control
    file: capture on/off, the allowlist) handed to `write` now and each time
    it changes, until cancelled. Used for a Lima VM and another host alike."""
    from watchfiles import awatch

    last: str | None = None

    async def push() -> None:
        nonlocal last
        try:
            text = await asyncio.to_thread(local.read_text, encoding="utf-8")
        except FileNotFoundError:
            return
        if text != last:
            await write(text)
            last = text

    await push()
    # A change made while that first push was on the wire comes before the
    # watch begins: a look every second (an empty yield) catches it too.
    async for _changes in awatch(
        local.parent,
        watch_filter=lambda _change, path: path.endswith(local.name),
        debounce=20,
        step=10,
        rust_timeout=1000,
        yield_on_timeout=True,
    ):
        await push()


async def cancel_all(tasks: Sequence[asyncio.Task[None]]) -> None:
    """End a mirror's tasks and wait for each, whatever it ended with."""
    for t in tasks:
        t.cancel()
    for t in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await t
