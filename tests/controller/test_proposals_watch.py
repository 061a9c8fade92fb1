"""A proposal waiting goes out (issue 20's list of lifecycle events): the
controller counts each bot's proposals with the TUI's counter and records a
`proposal` event when a count goes up, sent as `proposal_waiting`; what was
waiting when it started is the baseline, not news."""

from __future__ import annotations

import asyncio

from cftui.audit.events import read_events
from cftui.controller.proposals_watch import ProposalsWatch
from cftui.fleet import FleetHome
from cftui.proposal_tree import seed
from tests.controller.conftest import Receiver
from tests.proposals.conftest import write


def _proposals(home: FleetHome) -> list[dict]:
    return [e for e in read_events(home) if e["action"] == "proposal"]


def test_a_rise_is_an_event_and_the_first_count_is_the_baseline(fleet: FleetHome) -> None:
    seed.seed(fleet, "alpha")
    tree = fleet.proposals_dir("alpha")
    write(tree, "workspace/skills/old.md", "there before the controller\n")
    watch = ProposalsWatch(fleet)
    assert watch.check() == []  # the baseline
    watch.counts._due.clear()  # due again at once (the cadence is the counter's)
    assert watch.check() == []  # nothing new
    write(tree, "workspace/skills/new.md", "proposed while nobody looked\n")
    watch.counts._due.clear()
    [event] = watch.check()
    assert (event["bot"], event["count"]) == ("alpha", 2)
    assert len(_proposals(fleet)) == 1


async def test_a_receiver_gets_proposal_waiting(
    fleet: FleetHome, start_controller, receiver: Receiver
) -> None:
    seed.seed(fleet, "alpha")
    running = await start_controller(notify=(receiver.url,), proposals_poll_s=0.05)
    counts = running.controller.proposals.counts
    for _ in range(200):  # the baseline first: what was there at start is not news
        if "alpha" in counts.parts:
            break
        await asyncio.sleep(0.05)
    assert counts.parts["alpha"].total == 0
    write(fleet.proposals_dir("alpha"), "workspace/skills/x.md", "a skill\n")
    event = await receiver.wait_for("proposal_waiting", timeout=10)
    assert event["bot"] == "alpha" and event["count"] == 1
