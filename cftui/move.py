"""`cftui move BOT --host NAME`: a Docker bot carried to another host
through a snapshot.

The bot is stopped where it runs, its `state/` snapshotted (encrypted on the
operator's machine, whichever host it came from), the snapshot restored on
the new host (streamed there over its link, or into the fleet home for
`local`), and only then is `host` switched in fleet.toml. Every check that
can refuse comes before anything is stopped: an unknown host, the same
host, a locked bot, a host that does not answer. If a later step fails,
fleet.toml still names the old host, whose files were never changed: the
bot stays where it was (restarted there if it ran and that host can start
it). Once the new host holds the bot and fleet.toml names it, the old
host is cleared as `cftui delete` clears it (`Runtime.remove`: the
containers, networks and host rules, and on a remote host the bot's files
under its root; this machine's fleet home is kept, its code/ is the
bot's own). A cleanup that fails does not undo the move: it is one note,
and the `move` snapshot keeps the state that was carried.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field, replace

from cftui import locks
from cftui.audit.events import record_event
from cftui.errors import CftuiError, RuntimeUnavailable, UsageError
from cftui.fleet import BotConfig, FleetHome
from cftui.progress import Progress, ProgressEvent, no_progress
from cftui.runtime import Runtimes
from cftui.runtime.base import Runtime
from cftui.runtime.docker.names import LABEL_BOT
from cftui.snapshots import restore_state, snapshot
from cftui.snapshots.operations import remote_tree
from cftui.snapshots.reasons import one_line
from cftui.snapshots.remote import has_state, restore_remote_state

REACH_TIMEOUT_S = 10.0
MOVE_LABEL = "move"


@dataclass
class MoveResult:
    """What a move did, for the CLI to say."""

    bot: str
    source: str
    target: str
    snapshot: str | None = None  # None: the bot had no state to carry
    was_running: bool = False
    notes: list[str] = field(default_factory=list)


async def _reach(runtimes: Runtimes, bot: BotConfig, stays_on: str) -> Runtime:
    """The bot's runtime on `bot.host`, whose link answers (one line if not)."""
    runtime = runtimes.for_bot(bot)
    link = runtimes.links.get(bot.host)
    if link is not None:
        try:
            await link.connection(REACH_TIMEOUT_S)
        except RuntimeUnavailable as exc:
            raise RuntimeUnavailable(
                f"{bot.name} not moved: {exc}; it stays on {stays_on}"
            ) from None
    return runtime


async def _has_state(home: FleetHome, bot: BotConfig, runtime: Runtime) -> bool:
    tree = remote_tree(home, bot, runtime)
    if tree is None:
        return await asyncio.to_thread(home.state_dir(bot.name).is_dir)
    return await asyncio.to_thread(has_state, tree)


async def _clear_source(runtime: Runtime, bot: BotConfig, progress: Progress) -> str:
    """The old host cleared (`Runtime.remove`, as a delete clears it); a
    note of one line if it could not be, "" when it was."""
    progress(ProgressEvent(f"move {bot.name}", 3, 3, f"clearing it from {bot.host}"))
    try:
        await runtime.remove(bot)
    except (CftuiError, OSError) as exc:
        why = " ".join(str(exc).split())[:300] or type(exc).__name__
        return (
            f"host {bot.host} still holds some of it ({why}): remove its "
            f"containers (label {LABEL_BOT}={bot.name}) and its files there by hand"
        )
    return ""


async def move(
    home: FleetHome,
    bot: BotConfig,
    target: str,
    runtimes: Runtimes,
    progress: Progress = no_progress,
) -> MoveResult:
    """Carry the bot to host `target` (see the module); records a `move` event."""
    hosts = home.hosts()
    if target not in hosts:
        raise UsageError(
            f"{bot.name} not moved: no host {target!r} in fleet.toml (hosts: {', '.join(hosts)})"
        )
    if bot.runtime != "docker":
        raise UsageError(f"{bot.name} not moved: only a docker bot runs on another host")
    if target == bot.host:
        raise UsageError(f"{bot.name} is already on host {target}")
    locks.ensure_unlocked(home, bot.name)
    moved = replace(bot, host=target)
    source_rt = await _reach(runtimes, bot, bot.host)
    target_rt = await _reach(runtimes, moved, bot.host)
    result = MoveResult(bot.name, bot.host, target)
    task = f"move {bot.name}"
    try:
        async with locks.operation(home, bot.name, "move") as op:
            status = (await source_rt.status([bot]))[bot.name]
            result.was_running = status.state not in ("stopped", "absent")
            if result.was_running:
                progress(ProgressEvent(task, 0, 3, f"stopping it on {bot.host}"))
                await source_rt.down(bot)
            if await _has_state(home, bot, source_rt):
                progress(ProgressEvent(task, 1, 3, "snapshot"))
                info = await snapshot(home, bot, MOVE_LABEL, runtime=source_rt, progress=progress)
                result.snapshot = info.name
                progress(ProgressEvent(task, 2, 3, f"placing it on {target}"))
                tree = remote_tree(home, moved, target_rt)
                if tree is None:
                    await asyncio.to_thread(
                        restore_state, home, bot.name, info.name, progress=progress
                    )
                else:
                    path = home.snapshots_dir(bot.name) / info.name
                    await asyncio.to_thread(
                        restore_remote_state, home, tree, path, progress=progress
                    )
            home.update_bot(bot.name, host=target)
            record_event(home, "move", bot.name, source=bot.host, target=target,
                         snapshot=result.snapshot, ok=True)  # fmt: skip
            op.recorded = True
    except BaseException as exc:
        if not isinstance(exc, asyncio.CancelledError):
            with contextlib.suppress(OSError):
                record_event(home, "move", bot.name, source=bot.host, target=target, ok=False,
                             error=one_line(exc))  # fmt: skip
        if (
            result.was_running
            and isinstance(exc, CftuiError)
            and not locks.is_locked(home, bot.name)
        ):
            with contextlib.suppress(CftuiError):
                await source_rt.up(bot, progress)
        raise
    left = await _clear_source(source_rt, bot, progress)
    if left:
        result.notes.append(left)
    progress(ProgressEvent(task, 3, 3, f"on {target}"))
    if result.was_running:
        result.notes.append(f"it was running: start it on {target} with `cftui start {bot.name}`")
    return result
