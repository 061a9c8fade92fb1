"""The kill switch in a Lima VM: the kills of one VM's bots that arrive
together are done as one batch, in one SSH round trip for the cut and the
kill of every gateway (lima.kill's scripts), so ten bots cost about what
one does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from cftui.errors import CftuiError
from cftui.fleet import BotConfig
from cftui.runtime.base import KillReport
from cftui.runtime.lima.kill import kill_scripts, parse_kill
from cftui.runtime.lima.ssh import VMShell

# How long the first kill of a VM waits for the others of the same call.
BATCH_WINDOW_S = 0.01


@dataclass
class KillBatch:
    """The kills of one VM's bots that arrived together."""

    bots: list[BotConfig] = field(default_factory=list)
    reports: dict[str, KillReport] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)


class KillBatches:
    """Groups the kills of each VM: the first to arrive waits a moment for the
    others of the same kill switch, then runs them all as one batch."""

    def __init__(self) -> None:
        self._open: dict[str, KillBatch] = {}

    async def join(
        self,
        vm: str,
        bot: BotConfig,
        report: KillReport,
        run: Callable[[str, KillBatch], Awaitable[None]],
    ) -> None:
        """Add one kill to its VM's batch; returns once the batch is done."""
        batch = self._open.get(vm)
        leader = batch is None
        if batch is None:
            batch = self._open[vm] = KillBatch()
        batch.bots.append(bot)
        batch.reports[bot.name] = report
        if not leader:
            await batch.done.wait()
            return
        try:
            await asyncio.sleep(BATCH_WINDOW_S)  # the other kills of this call join
            del self._open[vm]
            await run(vm, batch)
        finally:
            batch.done.set()


async def kill_in_vm(
    shell: VMShell,
    names: list[str],
    reports: dict[str, KillReport],
    timings: dict[str, dict[str, float]],
) -> int | None:
    """Cut and kill every gateway of the batch in one round trip, then stop
    the rest; how many gateways of the VM still run (None: unknown, the
    steps failed and the VM must be stopped)."""
    cut_and_kill, stop_rest = kill_scripts(names)
    try:
        res = await shell.run(cut_and_kill, check=False, timeout=5, what="kill")
        now = time.monotonic()
        for n in names:
            timings[n]["dead"] = now
        parse_kill(res.out, names, reports, "gateway")
        rest = await shell.run(stop_rest, check=False, timeout=6, what="stopping the rest")
        running_after = parse_kill(rest.out, names, reports, "rest")
    except CftuiError as exc:
        for r in reports.values():
            r.errors.append(f"{exc}; stopping the VM")
        return None
    for r in reports.values():
        if running_after is not None and not r.network_cut:
            # The chain is missing only if the bot was never set up here.
            r.errors.append("nftables drop rule not inserted (bot not set up in VM?)")
    return running_after
