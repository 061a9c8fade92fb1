"""The budget hook: the controller calls the spend domain's check on a
timer and `notify` sends the `spend_threshold` events it records as
`budget`; without the spend domain it says so once and sends none."""

from __future__ import annotations

import asyncio

from cftui.audit.events import record_event
from cftui.controller import budget
from cftui.controller.clock import Clock
from cftui.fleet import FleetHome
from tests.controller.conftest import Receiver
from tests.fakes.memory_runtime import MemoryRuntime, MemoryRuntimes


async def test_threshold_events_of_the_spend_domain_go_out_as_budget(
    fleet: FleetHome, start_controller, receiver: Receiver
) -> None:
    await start_controller(notify=(receiver.url,))
    # the event cftui.spend.check_budgets records (issue 19), with its fields
    record_event(fleet, "spend_threshold", "alpha", period="day", period_key="2026-12-02",
                 percent=100, spent_usd=5.01, budget_usd=5.0, on_exhausted="stop")  # fmt: skip
    event = await receiver.wait_for("budget")
    assert event["percent"] == 100 and event["period"] == "day" and event["budget_usd"] == 5.0
    assert event["action"] == "spend_threshold"


async def test_the_hook_calls_the_check_on_its_timer(
    fleet: FleetHome, runtime: MemoryRuntime
) -> None:
    calls: list[int] = []
    lines: list[str] = []

    class Notice:
        def summary(self) -> str:
            return "alpha: 80 % of the daily budget"

    async def check(home: FleetHome, runtimes: object) -> list[Notice]:
        calls.append(1)
        return [Notice()] if len(calls) == 1 else []

    task = asyncio.create_task(
        budget.watch_budgets(
            fleet, MemoryRuntimes(fleet, runtime), Clock(), lines.append, 0.01, check
        )
    )
    while len(calls) < 3:
        await asyncio.sleep(0.01)
    task.cancel()
    assert lines == ["budget: alpha: 80 % of the daily budget"]


async def test_without_the_spend_domain_it_says_so_once(
    fleet: FleetHome, runtime: MemoryRuntime, monkeypatch
) -> None:
    monkeypatch.setattr(budget, "spend_check", lambda: None)
    lines: list[str] = []
    await budget.watch_budgets(fleet, MemoryRuntimes(fleet, runtime), Clock(), lines.append)
    assert len(lines) == 1 and "not installed" in lines[0]
