"""Each bot's audit mirror where the bot is now.

A bot on a Lima VM or another Docker host has its `audit/` written there
and mirrored into the fleet home (`Runtime.follow_audit`), which the
budgets, the notifications and the TUI read. The fleet changes while a
face runs: a bot is made, deleted, or moved to another host (`cftui
move`). A mirror left on the old host keeps the local copy's lock, and the
new host's mirror of the bot could never take it: so `cftui serve` and the
TUI keep their mirrors through this one rule, at each read of fleet.toml.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cftui.errors import CftuiError

if TYPE_CHECKING:
    from cftui.fleet import BotConfig
    from cftui.runtime import Runtimes


class AuditMirrors:
    """The bots whose mirror runs, and where (host and runtime)."""

    def __init__(self, runtimes: Runtimes) -> None:
        self.runtimes = runtimes
        self._where: dict[str, BotConfig] = {}

    def following(self) -> dict[str, str]:
        """Each followed bot's host."""
        return {name: bot.host for name, bot in self._where.items()}

    async def sync(self, bots: Sequence[BotConfig]) -> None:
        """Mirror each of `bots` where it is: a bot gone or moved stops
        being mirrored from where it was, a new one (or one whose start
        failed last time) starts. Failures wait for the next sync."""
        now = {b.name: b for b in bots}
        for name, old in list(self._where.items()):
            new = now.get(name)
            if new is not None and (new.host, new.runtime) == (old.host, old.runtime):
                continue
            del self._where[name]
            # A host dropped from fleet.toml: its runtime is gone with it.
            with contextlib.suppress(CftuiError, OSError):
                await self.runtimes.for_bot(old).unfollow_audit(old)
        # Side by side: a VM that does not answer holds up no other bot's mirror.
        await asyncio.gather(*(self._follow(b) for b in bots if b.name not in self._where))

    async def _follow(self, bot: BotConfig) -> None:
        try:
            await self.runtimes.for_bot(bot).follow_audit(bot)
        except (CftuiError, OSError):
            return
        self._where[bot.name] = bot
