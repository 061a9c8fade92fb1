"""App-wide messages: what workers report back to the UI thread.

Widget-owned messages live as nested classes on their widget; these are the
ones several screens care about.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:  # the fleet screen's first paint loads none of them
    from cftui.audit.traffic.totals import Totals
    from cftui.killswitch import KillResult
    from cftui.progress import ProgressEvent
    from cftui.proposals.counts import BotCount
    from cftui.runtime.status import BotStatus, StateChange


@dataclass
class FleetStatusUpdated(Message):
    """A full status round trip finished."""

    statuses: dict[str, BotStatus]
    errors: list[str]


@dataclass
class ServiceStateChanged(Message):
    """One service changed state (from the runtime's events stream)."""

    change: StateChange


@dataclass
class DailyTotalsUpdated(Message):
    """Calls, tokens and cost today (and this month), per bot, from traffic.jsonl."""

    totals: dict[str, Totals]
    month: dict[str, Totals] = field(default_factory=dict)


@dataclass
class KillFinished(Message):
    """The kill switch finished (the lock was written before it started)."""

    result: KillResult


@dataclass
class OperationProgress(Message):
    """A long bot operation (start, rebuild, snapshot...) made progress."""

    bot: str
    action: str
    event: ProgressEvent


@dataclass
class OperationFinished(Message):
    """A bot operation finished; `error` is its one-line failure, if any;
    `notes` what it wants the operator to know (an unbounded or full disk);
    `outcome` the state it left, so the toast says which (on or off?)."""

    bot: str
    action: str
    error: str | None = None
    notes: tuple[str, ...] = ()
    outcome: str = "done"  # what it left, said in the toast: "running", "capture on"...


@dataclass
class ProposalCountsUpdated(Message):
    """How many changes and egress requests some bots propose."""

    counts: dict[str, BotCount]
