"""The proposals hook: on a timer the controller counts each bot's
proposals (code, config drift and refused egress requests) with the same
counter the TUI's fleet table uses (`cftui.proposals.counts`), and records
a `proposal` event when a bot's count goes up, which `notify` sends out as
`proposal_waiting`: an operator away from the screen learns that a bot is
waiting for a review. The first count of each bot is the baseline (what
was waiting when the controller started is not news)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from cftui.audit.events import record_event
from cftui.controller.clock import Clock
from cftui.errors import CftuiError
from cftui.fleet import FleetHome
from cftui.proposals.counts import ProposalCounts
from cftui.snapshots.reasons import one_line

POLL_S = 60.0


class ProposalsWatch:
    """Counts per bot, and the events for the counts that went up."""

    def __init__(self, home: FleetHome, counts: ProposalCounts | None = None) -> None:
        self.home = home
        self.counts = counts or ProposalCounts()

    def check(self) -> list[dict]:
        """Count the bots whose turn it is (blocking: run it in a thread);
        the `proposal` events recorded."""
        found = self.counts.scan_due(self.home, list(self.home.bots()))
        return [
            record_event(self.home, "proposal", bot=bot, count=part.total)
            for bot, part in self.counts.merge(found)
        ]


async def watch_proposals(
    watch: ProposalsWatch,
    clock: Clock,
    say: Callable[[str], None],
    poll_s: float = POLL_S,
) -> None:
    """Forever: count every `poll_s`; a line per bot whose count went up."""
    while True:
        try:
            for event in await asyncio.to_thread(watch.check):
                say(f"{event['bot']}: {event['count']} proposal(s) waiting for a review")
        except (CftuiError, OSError) as exc:
            say(f"proposals check failed: {one_line(exc)}")
        except Exception as exc:  # a long-running loop reports and goes on
            say(f"proposals check failed: {type(exc).__name__}: {one_line(exc)}")
        await clock.sleep(poll_s)
