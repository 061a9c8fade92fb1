"""A promotion carried to the running bot: promote, then rebuild the gateway
image when its build inputs changed, else restart it, through lifecycle's
own functions (one operation: a kill at any step cancels the rest). A bot
that is not running takes the change at its next start."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cftui import lifecycle, locks
from cftui.errors import CftuiError, RuntimeOperationError
from cftui.fleet import BotConfig, FleetHome
from cftui.progress import Progress, no_progress
from cftui.proposals import promote as promotion
from cftui.proposals.promote import PromoteResult
from cftui.runtime import Runtimes


async def promote_and_roll_out(
    home: FleetHome,
    bot: BotConfig,
    runtimes: Runtimes,
    paths: Sequence[str] = (),
    message: str | None = None,
    *,
    source: str | None = None,
    progress: Progress = no_progress,
    reviewed: Mapping[str, str | None] | None = None,
    expected: str | None = None,
) -> PromoteResult:
    """`cftui promote` and the TUI's promote: the commit (or, with `source`,
    the fast-forward to REMOTE/BRANCH, refused if it is no longer at
    `expected` when given), then the rebuild or restart."""
    async with locks.operation(home, bot.name, "promote"):
        runtime = None
        running = False
        note = None
        try:
            runtime = runtimes.for_bot(bot)
            await runtime.check()
            running = await runtime.gateway_running(bot)
        except CftuiError as exc:
            runtime, note = None, f"no runtime ({exc}): not restarted"
        if source is not None:
            result = await promotion.promote_from(
                home, bot, source, runtime=runtime, progress=progress, expected=expected
            )
        else:
            result = await promotion.promote(
                home, bot, paths, message, runtime=runtime, progress=progress, reviewed=reviewed
            )
        if note:
            result.notes.append(note)
        if not running:
            if runtime is not None:
                result.notes.append("not running: the change applies at its next start")
            return result
        try:
            if result.build_inputs_changed:
                await lifecycle.rebuild(home, bot, runtimes, progress)
                result.rebuilt = True
            else:
                await lifecycle.restart(home, bot, runtimes, progress)
            result.restarted = True
        except CftuiError as exc:
            raise RuntimeOperationError(
                f"{bot.name}: promoted as {result.commit[:12]} but the "
                f"{'rebuild' if result.build_inputs_changed else 'restart'} failed: {exc}"
            ) from None
        return result
