"""The kill switch's lock, the gate that enforces it, and the operations in
flight that it cancels (CONTRACTS §6).

A leaf module: every layer (the kill switch, the runtimes, lifecycle, the
TUI) imports it and it imports none of them, so there is one place that
says whether a bot may run and one place that makes it true.

Three parts, each closing a different way a kill could lose:

- **The lock** (`locks/<bot>.lock`): written before the kill touches a
  runtime; survives restarts of cftui and of the machine.
- **The gate** (`locks/<bot>.gate`, an flock): every runtime holds it,
  shared, for the instant it creates, starts or sets a restart policy on a
  container or unit of the bot, and checks the lock inside it. The kill
  takes it exclusively once its lock is written, so any start already past
  the check has finished before the kill looks at what runs, and every
  later one sees the lock. No check-then-act window is left open.
- **Operations in flight** (a start, a rebuild, an update, a restore, in
  this process or another): each registers; the kill cancels those of this
  process at once, and those of another process see the lock within
  `WATCH_INTERVAL_S` and cancel themselves. Either way the operation ends
  with `BotLocked`, and the kill waits a bounded time for it to end.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from cftui.errors import BotLocked
from cftui.fleet import FleetHome, validate_bot_name

if TYPE_CHECKING:
    import asyncio

# asyncio, the events log and securefs load where a lock is written or an
# operation runs, not where one is only looked at (`cftui list`, whose whole
# budget is a few tens of milliseconds).

# How often an operation of another process looks for the lock.
WATCH_INTERVAL_S = 0.05
# How long the kill waits for a gated start to finish, and for the cancelled
# operations to end, before it reports them as not ended.
GATE_WAIT_S = 5.0
OPERATION_WAIT_S = 3.0

T = TypeVar("T")

_LOCK_SUFFIX = ".lock"
_GATE_SUFFIX = ".gate"
_OPS_DIR = "ops"


def lock_path(home: FleetHome, bot: str) -> Path:
    return home.locks_dir / f"{validate_bot_name(bot)}{_LOCK_SUFFIX}"


def locked_message(bot: str, what: str = "") -> str:
    """The one wording of a refusal, so every face says the same thing."""
    head = f"{bot}: {what}" if what else bot
    return f"{head} is locked by the kill switch: run `cftui unlock {bot}` first"


# --- the lock ---------------------------------------------------------------
def lock_bots(home: FleetHome, bots: Sequence[str], reason: str = "kill") -> None:
    """Mark bots locked; survives restarts of cftui and of the machine."""
    from cftui.audit.events import utc_now_iso
    from cftui.securefs import atomic_write_private, make_private_dirs

    make_private_dirs(home.locks_dir)
    body = json.dumps({"ts": utc_now_iso(), "reason": reason}) + "\n"
    for bot in bots:
        atomic_write_private(lock_path(home, bot), body)


def is_locked(home: FleetHome, bot: str) -> bool:
    return os.path.lexists(lock_path(home, bot))


def locked_bots(home: FleetHome) -> list[str]:
    try:
        names = os.listdir(home.locks_dir)
    except FileNotFoundError:
        return []
    return sorted(n.removesuffix(_LOCK_SUFFIX) for n in names if n.endswith(_LOCK_SUFFIX))


def ensure_unlocked(home: FleetHome, bot: str) -> None:
    """An early, friendly refusal; the gate is what enforces the lock."""
    if is_locked(home, bot):
        raise BotLocked(locked_message(bot))


def remove_locks(home: FleetHome, bots: Sequence[str]) -> list[str]:
    """Delete the lock files; the bots that were locked."""
    lifted = []
    for bot in bots:
        try:
            os.unlink(lock_path(home, bot))
            lifted.append(bot)
        except FileNotFoundError:
            pass
    return lifted


# --- the gate ---------------------------------------------------------------
def _open_gate(home: FleetHome, bot: str) -> int:
    from cftui.securefs import PRIVATE_FILE, make_private_dirs

    make_private_dirs(home.locks_dir)
    path = home.locks_dir / f"{validate_bot_name(bot)}{_GATE_SUFFIX}"
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, PRIVATE_FILE)


@contextlib.contextmanager
def gate(home: FleetHome, bot: str, what: str = "") -> Iterator[None]:
    """Hold while creating, starting, or setting a restart policy on anything
    of the bot; raises BotLocked, before anything is done, if it is locked.

    Blocking (an flock): runtimes call it in the thread that makes the call.
    Shared, so starts of one bot do not wait on each other; only the kill
    takes it exclusively, and only for an instant."""
    fd = _open_gate(home, bot)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        if is_locked(home, bot):
            raise BotLocked(locked_message(bot, what))
        yield
    finally:
        os.close(fd)  # releases the flock


def gate_busy(home: FleetHome, bot: str) -> bool:
    """Whether a start holds the bot's gate right now (without waiting)."""
    return not wait_gate(home, bot, timeout=0)


def wait_gate(home: FleetHome, bot: str, timeout: float = GATE_WAIT_S) -> bool:
    """Wait until no start holds the bot's gate (blocking); False on timeout.

    Called by the kill after the lock is written: once it returns True,
    every start that got past the lock check has finished its call, so
    what the kill then sees running is all there is."""
    deadline = time.monotonic() + timeout
    fd = _open_gate(home, bot)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
    finally:
        os.close(fd)


# --- operations in flight ---------------------------------------------------
def _new_event() -> asyncio.Event:
    import asyncio

    return asyncio.Event()


@dataclass(eq=False)
class Operation:
    """A start, rebuild, update or restore of one bot, while it runs."""

    bot: str
    action: str
    task: asyncio.Task | None
    file: Path | None = None
    killed: bool = False
    # Set by an operation that records its own cancellation in the events
    # log (a restore says what it restored); else `operation` records it.
    recorded: bool = False
    done: asyncio.Event = field(default_factory=_new_event)

    def cancel_for_kill(self) -> None:
        if self.killed:
            return
        self.killed = True
        if self.task is not None and not self.task.done():
            self.task.cancel()


_seq = itertools.count(1)
# This process's operations, by bot.
_ACTIVE: dict[str, list[Operation]] = {}


def _ops_dir(home: FleetHome) -> Path:
    return home.locks_dir / _OPS_DIR


def _register_file(home: FleetHome, bot: str, action: str) -> Path | None:
    """`locks/ops/<bot>.<pid>.<n>`: how a kill in another process sees it.
    Written in place, not fsynced: it only has to outlive this process's
    operation, not a crash (a dead pid's file is ignored), so it costs a few
    microseconds and may be written from an event loop."""
    from cftui.audit.events import utc_now_iso
    from cftui.securefs import make_private_dirs, write_new_private_file

    try:
        make_private_dirs(_ops_dir(home))
        path = _ops_dir(home) / f"{bot}.{os.getpid()}.{next(_seq)}"
        body = json.dumps({"bot": bot, "action": action, "pid": os.getpid(), "ts": utc_now_iso()})
        write_new_private_file(path, body + "\n", durable=False)
    except OSError:
        return None  # the in-process registry and the gate still hold
    return path


def pid_alive(pid: int) -> bool:
    """Whether a process exists: what a file left by a dead one (a stale
    operation here, a half-done restore's directory) is told apart by."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class OtherOperation:
    """An operation of another process, as its registration file says."""

    bot: str
    action: str
    pid: int
    path: Path


def other_operations(home: FleetHome, bots: Sequence[str]) -> list[OtherOperation]:
    """Live operations of other processes on these bots; stale files (of a
    process that died) are removed."""
    wanted = set(bots)
    found = []
    try:
        entries = list(os.scandir(_ops_dir(home)))
    except FileNotFoundError:
        return []
    for entry in entries:
        parts = entry.name.split(".")
        if len(parts) != 3 or parts[0] not in wanted or not parts[1].isdigit():
            continue
        pid = int(parts[1])
        if pid == os.getpid():
            continue
        if not pid_alive(pid):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
            continue
        action = "operation"
        with contextlib.suppress(OSError, ValueError, AttributeError), open(entry.path, "rb") as f:
            action = str(json.loads(f.read(4096)).get("action", action))[:20]
        found.append(OtherOperation(parts[0], action, pid, Path(entry.path)))
    return found


async def _watch(home: FleetHome, op: Operation) -> None:
    """Cancel the operation when a kill in another process locks the bot."""
    import asyncio

    while not op.killed:
        if is_locked(home, op.bot):  # one lstat: cheap enough for any event loop
            op.cancel_for_kill()
            return
        await asyncio.sleep(WATCH_INTERVAL_S)


def _current(bot: str, task: asyncio.Task | None) -> Operation | None:
    for op in _ACTIVE.get(bot, []):
        if op.task is task:
            return op
    return None


@contextlib.asynccontextmanager
async def operation(home: FleetHome, bot: str, action: str) -> AsyncIterator[Operation]:
    """Run an operation that may bring the bot up, so that a kill wins.

    Refuses at once if the bot is locked. A kill while it runs (from this
    process or another) cancels it, and it ends with BotLocked naming what
    was cancelled. Nested operations of one task on one bot (an update's
    rebuild) are one operation."""
    import asyncio

    from cftui.audit.events import record_event

    task = asyncio.current_task()
    outer = _current(bot, task)
    if outer is not None:
        yield outer
        return
    ensure_unlocked(home, bot)
    op = Operation(bot, action, task)
    _ACTIVE.setdefault(bot, []).append(op)  # from here a kill here cancels it
    watcher = asyncio.create_task(_watch(home, op), name=f"cf-lock-watch-{bot}")
    try:
        try:
            op.file = _register_file(home, bot, action)
            yield op
        except asyncio.CancelledError:
            if not op.killed:
                raise
            _uncancel(task)
            if not op.recorded:
                with contextlib.suppress(OSError):  # the refusal matters more
                    record_event(home, action, bot, ok=False, cancelled="kill switch")
            raise BotLocked(f"{action} cancelled: " + locked_message(bot)) from None
        except BaseException:
            if op.killed:
                _uncancel(task)
            raise
        if op.killed:  # it ended in the instant the kill came
            _uncancel(task)
            raise BotLocked(f"{action} cancelled: " + locked_message(bot))
    finally:
        watcher.cancel()
        _ACTIVE[bot].remove(op)
        if not _ACTIVE[bot]:
            del _ACTIVE[bot]
        if op.file is not None:
            with contextlib.suppress(OSError):
                os.unlink(op.file)
        op.done.set()


def _uncancel(task: asyncio.Task | None) -> None:
    """The kill's cancellation is answered (turned into BotLocked)."""
    if task is not None and task.cancelling():
        task.uncancel()


async def finish_first(step: Awaitable[T]) -> T:
    """Run a step that must not stop halfway (a bot's state swapped in) to
    its end even if the kill cancels the operation meanwhile; the
    cancellation is raised once it has ended (its own error, if it failed)."""
    import asyncio

    fut = asyncio.ensure_future(step)
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        await asyncio.wait({fut})
        failure = None if fut.cancelled() else fut.exception()
        if failure is not None:
            raise failure from None
        raise


def cancel_operations(bots: Sequence[str]) -> list[Operation]:
    """Cancel this process's operations on these bots (the kill calls it
    after writing the lock); those it cancelled."""
    cancelled = []
    for bot in bots:
        for op in list(_ACTIVE.get(bot, [])):
            op.cancel_for_kill()
            cancelled.append(op)
    return cancelled


async def wait_operations_ended(
    home: FleetHome,
    mine: Sequence[Operation],
    others: Sequence[OtherOperation],
    timeout: float = OPERATION_WAIT_S,
) -> list[tuple[str, str]]:
    """Wait until the cancelled operations have ended; those that had not,
    as (bot, what to report)."""
    import asyncio

    deadline = time.monotonic() + timeout
    for op in mine:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(op.done.wait(), max(0.0, deadline - time.monotonic()))
    pending = list(others)
    while pending and time.monotonic() < deadline:
        pending = [o for o in pending if os.path.lexists(o.path) and pid_alive(o.pid)]
        if pending:
            await asyncio.sleep(0.01)
    left = [(op.bot, f"{op.action} still running") for op in mine if not op.done.is_set()]
    left += [(o.bot, f"{o.action} (pid {o.pid}) still running") for o in pending]
    return left
