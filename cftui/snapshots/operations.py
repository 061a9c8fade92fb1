"""Snapshot and restore as operations on a bot: the runtime asked to bring
`state/` to the host and hold the gateway still, or to stop and restart it;
the kill switch's lock honoured; the restore recorded in the events log. The
blocking file work runs in threads, so no event loop waits.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cftui import locks
from cftui.audit.events import record_event
from cftui.errors import CftuiError, SnapshotError
from cftui.fleet import BotConfig, FleetHome
from cftui.progress import Progress, ProgressEvent, no_progress
from cftui.snapshots.catalog import SnapshotInfo, resolve
from cftui.snapshots.create import create_snapshot
from cftui.snapshots.decrypt import check_key
from cftui.snapshots.reasons import one_line
from cftui.snapshots.remote import (
    DEFAULT_LIMIT,
    RemoteState,
    create_remote_snapshot,
    restore_remote_state,
)
from cftui.snapshots.swap import restore_state

if TYPE_CHECKING:
    from cftui.runtime.base import Runtime


@dataclass
class RestoreResult:
    """What a restore did, for the CLI and the TUI to say."""

    name: str
    safety: str | None = None
    gateway_was_running: bool = False
    gateway_restarted: bool = False
    notes: list[str] = field(default_factory=list)


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
    tree = remote_tree(home, bot, runtime)
    await runtime.pull_state(bot)
    async with runtime.held_still(bot):
        if tree is not None:  # tar on the bot's host, encrypted here
            return await asyncio.to_thread(
                create_remote_snapshot, home, tree, label, progress=progress
            )
        return await asyncio.to_thread(create_snapshot, home, bot.name, label, progress=progress)


def remote_tree(home: FleetHome, bot: BotConfig, runtime: Runtime) -> RemoteState | None:
    """The bot's `state/` on another host, when the runtime keeps it there."""
    link = runtime.state_link(bot)
    if link is None:
        return None
    limit = bot.disk_bytes or DEFAULT_LIMIT
    return RemoteState(link, bot.name, asyncio.get_running_loop(), limit)


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

    tree = remote_tree(home, bot, runtime) if runtime is not None else None

    async def swap() -> None:
        if tree is not None:  # decrypted here, extracted and swapped in on its host
            result.safety = await asyncio.to_thread(
                restore_remote_state, home, tree, path, progress=progress
            )
            return
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
        error=one_line(error) if error else None,
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
