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


async def test_the_controller_runs_the_spend_domains_check(
    fleet: FleetHome, runtime: MemoryRuntime
) -> None:
    """With the real check: a spend.json over 80 % of a daily budget is one
    spend_threshold event, once, however often the hook looks."""
    import time

    from cfproxies.spendstate import DaySpend, SpendState, write_state

    from cftui.audit.events import read_events

    fleet.update_bot("alpha", daily_usd_budget=10.0)
    day = time.strftime("%Y-%m-%d", time.gmtime())
    fleet.audit_dir("alpha").mkdir(parents=True, exist_ok=True)
    state = SpendState(bot="alpha", today=day, today_usd=8.5, month_usd=8.5,
                       days={day: DaySpend(8.5, 3)})  # fmt: skip
    write_state(fleet.audit_dir("alpha") / "spend.json", state)
    lines: list[str] = []
    task = asyncio.create_task(
        budget.watch_budgets(fleet, MemoryRuntimes(fleet, runtime), Clock(), lines.append, 0.01)
    )
    try:
        while not lines:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
    finally:
        task.cancel()
    events = [e for e in read_events(fleet, "alpha") if e["action"] == "spend_threshold"]
    assert [e["percent"] for e in events] == [80] and len(lines) == 1, lines


async def test_a_check_that_breaks_is_said_in_one_line_and_the_loop_goes_on(
    fleet: FleetHome, runtime: MemoryRuntime
) -> None:
    calls: list[int] = []
    lines: list[str] = []

    async def check(home: FleetHome, runtimes: object) -> list[object]:
        calls.append(1)
        if len(calls) == 1:
            raise AttributeError("'BotConfig' object has no attribute 'x'")
        return []

    task = asyncio.create_task(
        budget.watch_budgets(
            fleet, MemoryRuntimes(fleet, runtime), Clock(), lines.append, 0.01, check
        )
    )
    while len(calls) < 3:
        await asyncio.sleep(0.01)
    task.cancel()
    assert lines == ["budget check failed: AttributeError: 'BotConfig' object has no attribute 'x'"]
