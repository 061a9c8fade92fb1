"""The proposals count of each bot, for the fleet table and the "bot1
proposes 2 changes" notification.

Scanned in a thread on the app's status cadence, and each bot no more often
than ten times as long as its last scan took: the scan's stat cache keeps a
big tree cheap, and this keeps even a slow one under a tenth of a core. No
Textual here: the app runs `scan_due` in a worker and `merge` on its own
thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from cftui.errors import CftuiError
from cftui.fleet import FleetHome

# A bot is scanned again no sooner than this many times its last scan took.
COST_FACTOR = 10.0


class ProposalCounts:
    """Counts per bot: an int, or None while a bot has no proposals tree
    (or its scan failed: the tab says why)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.counts: dict[str, int | None] = {}
        self._due: dict[str, float] = {}

    def scan_due(self, home: FleetHome, bots: Iterable[str]) -> dict[str, int | None]:
        """Scan the bots whose turn it is (blocking: run it in a thread)."""
        from cftui.proposals.scan import scan

        found: dict[str, int | None] = {}
        for bot in bots:
            started = self.clock()
            if self._due.get(bot, 0.0) > started:
                continue
            try:
                result = scan(home, bot, with_commits=False)
                found[bot] = result.count if result.seeded else None
            except (CftuiError, OSError):
                found[bot] = None
            self._due[bot] = started + COST_FACTOR * (self.clock() - started)
        return found

    def merge(self, found: dict[str, int | None]) -> list[tuple[str, int]]:
        """Take new counts; the bots whose count went up since the last one
        known, with their count (a bot seen for the first time is not news)."""
        rises = [
            (bot, n)
            for bot, n in found.items()
            if n and bot in self.counts and n > (self.counts[bot] or 0)
        ]
        self.counts.update(found)
        return rises

    def seen(self, bot: str, count: int | None) -> None:
        """The operator saw this count (the bot's tab scanned it): not news."""
        self.counts[bot] = count
        self._due.pop(bot, None)


def proposes(bot: str, count: int) -> str:
    return f"{bot} proposes {count} {'change' if count == 1 else 'changes'}"
