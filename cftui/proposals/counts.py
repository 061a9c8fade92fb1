"""The proposals count of each bot, for the fleet table and the "bot1
proposes 2 changes" notification: the files and config it proposes, and the
egress requests (hosts the egress proxy refused) not yet settled.

Scanned in a thread on the app's status cadence, and each bot no more often
than ten times as long as its last scan took: the scan's stat cache keeps a
big tree cheap, and this keeps even a slow one under a tenth of a core. No
Textual here: the app runs `scan_due` in a worker and `merge` on its own
thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from cftui.errors import CftuiError
from cftui.fleet import FleetHome

# A bot is scanned again no sooner than this many times its last scan took.
COST_FACTOR = 10.0


@dataclass(frozen=True)
class BotCount:
    """A bot's two kinds of proposals. `code` is None while it has no
    proposals tree (or its scan failed: the tab says why)."""

    code: int | None
    egress: int = 0

    @property
    def total(self) -> int | None:
        if self.code is None and not self.egress:
            return None
        return (self.code or 0) + self.egress


class ProposalCounts:
    """Counts per bot, each kind as its own face last saw it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.parts: dict[str, BotCount] = {}
        self._due: dict[str, float] = {}

    @property
    def counts(self) -> dict[str, int | None]:
        """What the fleet table shows: both kinds together."""
        return {bot: part.total for bot, part in self.parts.items()}

    def scan_due(self, home: FleetHome, bots: Iterable[str]) -> dict[str, BotCount]:
        """Scan the bots whose turn it is (blocking: run it in a thread)."""
        from cftui.proposals.egress_inbox import read_inbox
        from cftui.proposals.scan import scan

        found: dict[str, BotCount] = {}
        for bot in bots:
            started = self.clock()
            if self._due.get(bot, 0.0) > started:
                continue
            code: int | None
            try:
                result = scan(home, bot, with_commits=False)
                code = result.count if result.seeded else None
            except (CftuiError, OSError):
                code = None
            found[bot] = BotCount(code, read_inbox(home, bot).count)
            self._due[bot] = started + COST_FACTOR * (self.clock() - started)
        return found

    def merge(self, found: dict[str, BotCount]) -> list[tuple[str, BotCount]]:
        """Take new counts; the bots whose count went up since the last one
        known, with their count (a bot seen for the first time is not news)."""
        rises = [
            (bot, part)
            for bot, part in found.items()
            if part.total and bot in self.parts and part.total > (self.parts[bot].total or 0)
        ]
        self.parts.update(found)
        return rises

    def code_count(self, bot: str, default: int | None = None) -> int | None:
        part = self.parts.get(bot)
        return default if part is None else part.code

    def egress_count(self, bot: str, default: int = 0) -> int:
        part = self.parts.get(bot)
        return default if part is None else part.egress

    def seen(self, bot: str, count: int | None) -> None:
        """The operator saw this count of files (the bot's tab scanned it): not news."""
        self.parts[bot] = replace(self.parts.get(bot, BotCount(None)), code=count)
        self._due.pop(bot, None)

    def egress_seen(self, bot: str, count: int) -> None:
        """The operator saw this many egress requests (the bot's tab read them)."""
        self.parts[bot] = replace(self.parts.get(bot, BotCount(None)), egress=count)


def proposes(bot: str, part: BotCount) -> str:
    count = part.total or 0
    text = f"{bot} proposes {count} {'change' if count == 1 else 'changes'}"
    if part.egress:
        text += f" ({part.egress} egress request{'s' if part.egress != 1 else ''})"
    return text
