"""Every audit file of one far side (a Docker host with many bots), mirrored
in two sessions on one SSH connection, whatever the number of files.

`cftui.audit.mirror` follows a file with a `tail` and a watcher loop of its
own, and a bot's rewritten files with a loop of their own: on one host with
thirty bots that is ninety tails, ninety watchers forking `stat` every second
and thirty loops forking `cksum` twice a second, about seven hundred new
processes a second, which left no time for the sessions themselves (a line
appended there waited over a minute for its mirror). Here the far side runs:

- one *watch* loop, which states every followed file with one `stat` a tick
  (`TICK_S`) and prints the list only when it changed (an empty line
  otherwise: without a terminal, sshd sends no hangup when the session ends,
  and the loop's next write ends it);
- one *reader*, idle on its stdin, which answers each request of ours with
  one line: the bytes of a growing file from an offset (at most `CHUNK`),
  or the whole of a rewritten one, base64 on one line, with the inode and
  size it stated before and after the read (a regular file only, read
  without following a link or waiting for a fifo's writer).

A growing file is handled as `cftui.audit.mirror` handles it (the same
`_LineSink` and `_Offsets`): whole lines appended with one write, a torn
line held for its end, a line over `MAX_LINE` dropped, a file replaced or
shrunk there followed again from its start, and the far offset kept beside
the copy so that a restart resumes where it stopped; one process mirrors a
file at a time (its `flock`). A rewritten file is copied whole each time its
inode, size or mtime changes (its writers replace it: a new inode each time).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import fcntl
import os
import random
import shlex
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cfproxies.jsonl import open_append

from cftui.audit.mirror import (
    IDLE_MAX_S,
    MAX_WHOLE,
    RETRY_S,
    MirrorCounters,
    MirrorEnd,
    _LineSink,
    _Offsets,
    bounded_lines,
)
from cftui.securefs import atomic_write_private

if TYPE_CHECKING:
    import asyncssh

# How often the far side states the files: an appended line waits half of
# it on average. One `stat` (and one `sleep`) a tick for all the files.
TICK_S = 0.1
# At most this much of a growing file in one answer (more is asked again).
CHUNK = 1 << 20
# The longest line either session may send us: an answer, base64.
_MAX_REPLY = (max(CHUNK, MAX_WHOLE) * 4) // 3 + 256
# A file another process mirrors is tried again this often.
LOCKED_RETRY_S = 2.0

# The watch loop: "INODE SIZE MTIME PATH" for each file there, then ".",
# whenever that changes; an empty line each tick otherwise.
_WATCH = r"""
t=$1; shift
exec 2>/dev/null
prev=-
while :; do
  cur=$(stat -c '%i %s %Y %f %n' -- "$@")
  if [ "$cur" != "$prev" ]; then
    prev=$cur
    printf '%s\n.\n' "$cur" || exit 0
  else
    echo || exit 0
  fi
  sleep "$t"
done
"""

# The reader: "G OFFSET PATH" is answered "D INODE SIZE OFFSET BASE64" (the
# bytes from OFFSET, at most CHUNK), "W 0 PATH" with "W INODE SIZE BASE64",
# and either with "E" when the file cannot be opened. It ends at our EOF.
_READ = r"""
exec 2>/dev/null
while read -r kind off f; do
  (
    [ -f "$f" ] && [ ! -L "$f" ] || exit 1
    a=$(stat -c '%i %s %d' -- "$f") || exit 1
    set -- $a
    [ $# = 3 ] || exit 1
    if [ "$kind" = W ]; then skip=0; max=__WHOLE__; else skip=$off; max=__CHUNK__; fi
    data=$(dd if="$f" iflag=nofollow,nonblock,skip_bytes,count_bytes bs=65536 \
           skip="$skip" count="$max" status=none | base64 -w0)
    [ "$(stat -c '%i %d' -- "$f")" = "$1 $3" ] || exit 1
    if [ "$kind" = W ]; then
      printf 'W %s %s %s\n' "$1" "$2" "$data"
    else
      printf 'D %s %s %s %s\n' "$1" "$2" "$off" "$data"
    fi
  ) || echo E || exit 0
done
""".replace("__WHOLE__", str(MAX_WHOLE)).replace("__CHUNK__", str(CHUNK))


class _ProtocolError(Exception):
    """The far side said something that is not an answer of ours."""


@dataclass
class _Growing:
    """One appended file: its local copy, and where the mirror stands."""

    remote: str
    local: Path
    counters: MirrorCounters
    fd: int | None = None  # the local copy, open and locked while this process mirrors it
    sink: _LineSink | None = None
    ino: str | None = None  # the far inode followed (None: not matched yet this round)
    far_off: int = 0  # the next far byte to ask for
    far_size: int = 0  # the far size last stated
    asked: bool = False  # a request is on the wire
    locked_at: float = -LOCKED_RETRY_S  # when the lock was last found taken

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
        self.fd, self.sink, self.ino, self.asked = None, None, None, False


@dataclass
class _Whole:
    """One file the far side rewrites whole, and what of it was copied."""

    remote: str
    local: Path
    seen: str = ""  # "INODE SIZE MTIME" of the copy made
    asked: str = ""  # ... of the copy asked for


@dataclass
class _Round:
    """One connection's two sessions and the requests awaiting an answer."""

    reader: asyncssh.SSHClientProcess[bytes]
    waiting: deque[_Growing | _Whole] = field(default_factory=deque)

    def ask(self, item: _Growing | _Whole) -> None:
        if isinstance(item, _Growing):
            item.asked = True
            line = f"G {item.far_off} {item.remote}\n"
        else:
            line = f"W 0 {item.remote}\n"
        self.waiting.append(item)
        self.reader.stdin.write(line.encode())


def _lines(stream: asyncssh.SSHReader[bytes]) -> AsyncIterator[bytes]:
    """A session's lines; one over `_MAX_REPLY` is a protocol error, never held whole."""
    return bounded_lines(stream, _MAX_REPLY, _ProtocolError)


class ManyFilesMirror:
    """The mirror of every file added, until `stop`: reconnects by itself
    after the far side drops out (after `RETRY_S`, then longer, to
    `IDLE_MAX_S`, with a little jitter so that many mirrors do not knock at
    once), and begins a new round when files are added."""

    def __init__(self, end: MirrorEnd, tick: float = TICK_S) -> None:
        self.end = end
        self.tick = tick
        self._growing: dict[str, _Growing] = {}
        self._whole: dict[str, _Whole] = {}
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self.rounds = 0  # sessions begun (tests check that adding files does not multiply them)
        self._stated_once = False  # this round's watch stated the files at least once

    # --- what to follow ---------------------------------------------------------------
    def follow(self, remote: str, local: Path, counters: MirrorCounters) -> None:
        """Mirror a far file that grows by appends into `local`."""
        if remote in self._growing or not self._usable(remote):
            return
        local.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._growing[remote] = _Growing(remote, local, counters)
        self._changed.set()

    def copy_whole(self, remote: str, local: Path) -> None:
        """Copy a far file that is rewritten whole into `local` as it changes."""
        if remote in self._whole or not self._usable(remote):
            return
        self._whole[remote] = _Whole(remote, local)
        self._changed.set()

    def unfollow(self, remote: str) -> None:
        """Stop mirroring `remote` (its bot moved away, or is gone): its local
        copy's lock let go at once, so the bot's new host's mirror takes it."""
        g = self._growing.pop(remote, None)
        if g is not None:
            g.release()
        if self._whole.pop(remote, None) is not None or g is not None:
            self._changed.set()  # the next round leaves it out

    @staticmethod
    def _usable(remote: str) -> bool:
        # A path is one field of a line on the far side and ours (root, bot, name).
        return remote.startswith("/") and "\n" not in remote and remote == remote.strip()

    # --- running ------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Begin (again, if it ended); a no-op while it runs."""
        if not self.running:
            self._task = asyncio.create_task(self._run(), name="audit-mirror-many")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for g in self._growing.values():
            g.release()

    async def _run(self) -> None:
        delay = RETRY_S
        while True:
            self._stated_once = False
            try:
                if await self._round():
                    delay = RETRY_S
                    continue  # files were added: a new round at once
            except asyncio.CancelledError:
                raise
            except Exception:  # the far side went away, the connection dropped, or it lied
                pass
            finally:
                for g in self._growing.values():
                    g.release()
            if self._stated_once:  # it ran: the far side dropped out just now
                delay = RETRY_S
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, IDLE_MAX_S)

    async def _round(self) -> bool:
        """One connection's sessions, until files are added (True) or they end."""
        self._changed.clear()
        if not self._growing and not self._whole:  # nothing to follow: no session either
            await self._changed.wait()
            return True
        self.rounds += 1
        conn = await self.end.connection()
        remotes = [*self._growing, *self._whole]
        for w in self._whole.values():
            w.asked = ""
        paths = " ".join(shlex.quote(r) for r in remotes)
        reader = await conn.create_process(
            self.end.command(f"sh -c {shlex.quote(_READ)} read"), encoding=None
        )
        try:
            watch = await conn.create_process(
                self.end.command(f"sh -c {shlex.quote(_WATCH)} watch {self.tick} {paths}"),
                encoding=None,
            )
        except BaseException:
            reader.close()
            raise
        state = _Round(reader)
        tasks = [
            asyncio.create_task(self._watch(watch, state, set(remotes))),
            asyncio.create_task(self._answers(state)),
            asyncio.create_task(self._changed.wait()),
        ]
        try:
            done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                if t is not tasks[2] and (exc := t.exception()) is not None:
                    raise exc
            return tasks[2] in done
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            watch.close()
            reader.close()

    async def _watch(
        self,
        watch: asyncssh.SSHClientProcess[bytes],
        state: _Round,
        remotes: set[str],
    ) -> None:
        block: dict[str, tuple[str, int, str]] = {}
        last: dict[str, tuple[str, int, str]] = {}
        async for raw in _lines(watch.stdout):
            line = raw.decode(errors="replace")
            if line == ".":
                last, block = block, {}
                self._stated_once = True
                self._stated(state, last)
            elif not line:
                self._retry_locked(state, last)
            else:
                parts = line.split(" ", 4)
                if (
                    len(parts) == 5
                    and parts[0].isdigit()
                    and parts[1].isdigit()
                    and parts[4] in remotes
                    and _regular(parts[3])
                ):
                    block[parts[4]] = (parts[0], int(parts[1]), parts[2])
        raise ConnectionError("the watch session ended")

    def _stated(self, state: _Round, stated: dict[str, tuple[str, int, str]]) -> None:
        for path, (ino, size, mtime) in stated.items():
            if (g := self._growing.get(path)) is not None:
                self._grown(state, g, ino, size)
            elif (w := self._whole.get(path)) is not None:
                sig = f"{ino} {size} {mtime}"
                if sig not in (w.seen, w.asked) and size <= MAX_WHOLE:
                    w.asked = sig
                    state.ask(w)

    def _retry_locked(self, state: _Round, stated: dict[str, tuple[str, int, str]]) -> None:
        """A file another process mirrored may be ours now (it exited)."""
        now = asyncio.get_running_loop().time()
        for path, (ino, size, _mtime) in stated.items():
            g = self._growing.get(path)
            if g is not None and g.fd is None and now - g.locked_at >= LOCKED_RETRY_S:
                self._grown(state, g, ino, size)

    def _claim(self, g: _Growing) -> bool:
        """Open and lock the local copy: one mirror of a file at a time,
        whichever cftui process runs it."""
        if g.fd is not None:
            return True
        fd = open_append(g.local)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            g.locked_at = asyncio.get_running_loop().time()
            return False
        g.fd, g.sink = fd, _LineSink(fd, _Offsets(g.local), g.counters)
        return True

    def _grown(self, state: _Round, g: _Growing, ino: str, size: int) -> None:
        """The far file is stated `ino`, `size` long: ask for what the mirror lacks."""
        if self._claim(g):
            self._match(g, ino, size)
            self._want(state, g)

    @staticmethod
    def _match(g: _Growing, ino: str, size: int) -> bool:
        """Match the far file as stated with where the mirror stands; True
        when it is followed from a new place (its first look this round, or
        it was replaced or shrunk: then from its start)."""
        assert g.fd is not None and g.sink is not None
        offsets = g.sink.offsets
        g.far_size = size
        if g.ino is None:  # the first look this round: resume where the copy stops
            g.ino = ino
            g.far_off = offsets.resume(os.fstat(g.fd).st_size, ino, size, g.counters)
            return True
        if ino == g.ino and size >= g.far_off:
            return False
        g.counters.restarts += 1  # replaced, or shrunk below what was read
        g.sink.pending, g.sink.dropping = b"", False
        g.ino, g.far_off = ino, 0
        offsets.ino, offsets.delta = ino, -os.fstat(g.fd).st_size
        offsets.save()
        return True

    @staticmethod
    def _want(state: _Round, g: _Growing) -> None:
        if g.far_off < g.far_size and not g.asked:
            state.ask(g)

    async def _answers(self, state: _Round) -> None:
        async for raw in _lines(state.reader.stdout):
            if not state.waiting:
                raise _ProtocolError("an answer to nothing")
            item = state.waiting.popleft()
            parts = raw.split(b" ")
            if isinstance(item, _Growing):
                item.asked = False
                if parts[0] == b"D" and len(parts) == 5:
                    self._read(state, item, parts)
                elif parts != [b"E"]:
                    raise _ProtocolError("not an answer to a read")
            elif parts[0] == b"W" and len(parts) == 4:
                data = _decoded(parts[3])
                if (
                    data is not None
                    and len(data) <= MAX_WHOLE
                    and self._whole.get(item.remote) is item  # not unfollowed meanwhile
                ):
                    await asyncio.to_thread(atomic_write_private, item.local, data)
                    item.seen = item.asked
            elif parts != [b"E"]:
                raise _ProtocolError("not an answer to a copy")
        raise ConnectionError("the reader session ended")

    def _read(self, state: _Round, g: _Growing, parts: list[bytes]) -> None:
        ino, size, off = parts[1].decode(), parts[2], parts[3]
        data = _decoded(parts[4])
        if not (ino.isdigit() and size.isdigit() and off.isdigit()) or data is None:
            raise _ProtocolError("a malformed read")
        if g.fd is None or g.sink is None:
            return  # released meanwhile
        if self._match(g, ino, int(size)) or int(off) != g.far_off:
            self._want(state, g)  # replaced or shrunk since it was stated: from its start
            return
        g.sink.feed(data)
        g.far_off += len(data)
        if data:  # nothing there after all: wait for the next change stated
            self._want(state, g)


def _regular(mode_hex: str) -> bool:
    """Whether a raw mode (`stat %f`) is a regular file's: a link the
    proxies' user put at a name is never followed, a fifo never opened."""
    try:
        return int(mode_hex, 16) & 0o170000 == 0o100000
    except ValueError:
        return False


def _decoded(data: bytes) -> bytes | None:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None
