"""Start, stop, restart, rebuild and status of bots, whatever their runtime.

The one place that puts the domain rules around a runtime call: a start runs
as an operation the kill switch can cancel (`cftui.locks`), every operator
action lands in `audit/events.jsonl`, and a runtime that does not answer
turns into a per-bot error instead of failing the whole fleet view.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Sequence
from pathlib import Path

from cftui import botdisk, fleet_view, locks
from cftui.audit.events import record_event
from cftui.errors import CftuiError
from cftui.fleet import BotConfig, FleetHome
from cftui.progress import Progress, no_progress
from cftui.runtime import Runtimes
from cftui.runtime.status import BotStatus


async def start(
    home: FleetHome, bot: BotConfig, runtimes: Runtimes, progress: Progress = no_progress
) -> list[str]:
    """Bring the bot up; returns notes for the operator (its disk's)."""
    async with locks.operation(home, bot.name, "start"):
        runtime = runtimes.for_bot(bot)
        notes = await botdisk.prepare_for_start(home, bot, runtime, progress)
        await runtime.up(bot, progress)
    record_event(home, "start", bot.name)
    return notes


async def stop(
    home: FleetHome, bot: BotConfig, runtimes: Runtimes, reason: str | None = None
) -> None:
    """Stop the bot's stack; `reason` (when not the operator's own stop, such
    as a spent budget) goes into its `stop` event."""
    await runtimes.for_bot(bot).down(bot)
    record_event(home, "stop", bot.name, **({"reason": reason} if reason else {}))


async def restart(
    home: FleetHome, bot: BotConfig, runtimes: Runtimes, progress: Progress = no_progress
) -> list[str]:
    async with locks.operation(home, bot.name, "restart"):
        runtime = runtimes.for_bot(bot)
        notes = await botdisk.prepare_for_start(home, bot, runtime, progress)
        await runtime.restart(bot, progress)
    record_event(home, "restart", bot.name)
    return notes


async def rebuild(
    home: FleetHome, bot: BotConfig, runtimes: Runtimes, progress: Progress = no_progress
) -> list[str]:
    async with locks.operation(home, bot.name, "rebuild"):
        runtime = runtimes.for_bot(bot)
        notes = await botdisk.prepare_for_start(home, bot, runtime, progress)
        await runtime.rebuild(bot, progress)
    record_event(home, "rebuild", bot.name)
    return notes


async def delete(home: FleetHome, bot: BotConfig, runtimes: Runtimes) -> list[Path]:
    """Remove a bot for good: what its runtime made, its disk (unmounted, the
    loop device released), its tree and its fleet.toml entry. Its secrets,
    snapshots and audit stay, so that its history and snapshots can still be
    read; returns those paths. A failure leaves the fleet.toml entry, so that
    the delete can be run again."""
    await runtimes.for_bot(bot).remove(bot)
    await asyncio.to_thread(botdisk.delete, home, bot.name)
    tree = home.bot_repo(bot.name, mount=False)  # plain, or gone with its image
    if tree.exists():
        await asyncio.to_thread(shutil.rmtree, tree)  # fd-based: follows no link out
    home.remove_bot(bot.name)
    record_event(home, "delete", bot.name)
    kept = (home.secrets_dir(bot.name), home.snapshots_dir(bot.name), home.audit_dir(bot.name))
    return [p for p in kept if p.exists()]


async def fleet_status(
    home: FleetHome, bots: Sequence[BotConfig], runtimes: Runtimes
) -> tuple[dict[str, BotStatus], list[str]]:
    """Status of every bot, one runtime call per runtime kind, concurrently.

    Returns the statuses (bots whose runtime failed carry its error) and the
    distinct one-line errors, for the caller to show once each. The
    read-only commands try `fleet_view.read_now` first (no event loop).
    """
    # One group per runtime kind and host: a bot on another host is never
    # asked of this machine's engine (which would call it stopped).
    by_kind: dict[tuple[str, str], list[BotConfig]] = {}
    for bot in bots:
        by_kind.setdefault((bot.runtime, bot.host), []).append(bot)

    async def one_kind(
        key: tuple[str, str], group: list[BotConfig]
    ) -> tuple[dict[str, BotStatus], str | None]:
        kind = key[0]
        try:
            runtime = runtimes.for_bot(group[0])
            await runtime.check()
            return await runtime.status(group), None
        except CftuiError as exc:
            err = str(exc)
            return {b.name: BotStatus(b.name, kind, error=err) for b in group}, err

    host_tree: dict[str, bool] = {}
    for bot in bots:
        try:
            host_tree[bot.name] = runtimes.for_bot(bot).gateway_writes_host_tree
        except CftuiError:
            host_tree[bot.name] = False

    results, disk = await asyncio.gather(
        asyncio.gather(*(one_kind(k, g) for k, g in by_kind.items())),
        asyncio.to_thread(fleet_view.disks, home, bots, host_tree),
    )
    statuses: dict[str, BotStatus] = {}
    errors: list[str] = []
    for found, err in results:
        statuses.update(found)
        if err:
            errors.append(err)
    return fleet_view.merge(home, bots, statuses, disk), errors
