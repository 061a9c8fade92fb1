"""Start, stop, restart, rebuild and status of bots, whatever their runtime.

The one place that puts the domain rules around a runtime call: a start runs
as an operation the kill switch can cancel (`cftui.locks`), every operator
action lands in `audit/events.jsonl`, and a runtime that does not answer
turns into a per-bot error instead of failing the whole fleet view.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

from cftui import locks
from cftui.audit.events import record_event
from cftui.errors import CftuiError
from cftui.fleet import BotConfig, FleetHome
from cftui.progress import Progress, no_progress
from cftui.runtime import Runtimes
from cftui.runtime.base import BotStatus


async def start(
    home: FleetHome, bot: BotConfig, runtimes: Runtimes, progress: Progress = no_progress
) -> None:
    async with locks.operation(home, bot.name, "start"):
        await runtimes.get(bot.runtime).up(bot, progress)
    record_event(home, "start", bot.name)


async def stop(home: FleetHome, bot: BotConfig, runtimes: Runtimes) -> None:
    await runtimes.get(bot.runtime).down(bot)
    record_event(home, "stop", bot.name)


async def restart(
    home: FleetHome, bot: BotConfig, runtimes: Runtimes, progress: Progress = no_progress
) -> None:
    async with locks.operation(home, bot.name, "restart"):
        await runtimes.get(bot.runtime).restart(bot, progress)
    record_event(home, "restart", bot.name)


async def rebuild(
    home: FleetHome, bot: BotConfig, runtimes: Runtimes, progress: Progress = no_progress
) -> None:
    async with locks.operation(home, bot.name, "rebuild"):
        await runtimes.get(bot.runtime).rebuild(bot, progress)
    record_event(home, "rebuild", bot.name)


async def fleet_status(
    home: FleetHome, bots: Sequence[BotConfig], runtimes: Runtimes
) -> tuple[dict[str, BotStatus], list[str]]:
    """Status of every bot, one runtime call per runtime kind, concurrently.

    Returns the statuses (bots whose runtime failed carry its error) and the
    distinct one-line errors, for the caller to show once each.
    """
    by_kind: dict[str, list[BotConfig]] = {}
    for bot in bots:
        by_kind.setdefault(bot.runtime, []).append(bot)

    async def one_kind(
        kind: str, group: list[BotConfig]
    ) -> tuple[dict[str, BotStatus], str | None]:
        try:
            runtime = runtimes.get(kind)
            await runtime.check()
            return await runtime.status(group), None
        except CftuiError as exc:
            err = str(exc)
            return {b.name: BotStatus(b.name, kind, error=err) for b in group}, err

    results = await asyncio.gather(*(one_kind(k, g) for k, g in by_kind.items()))
    statuses: dict[str, BotStatus] = {}
    errors: list[str] = []
    for found, err in results:
        statuses.update(found)
        if err:
            errors.append(err)
    locked = set(locks.locked_bots(home))
    ordered = {}
    for bot in bots:
        st = statuses.get(bot.name) or BotStatus(bot.name, bot.runtime)
        ordered[bot.name] = replace(st, locked=bot.name in locked)
    return ordered, errors
