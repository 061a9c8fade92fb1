"""The TUI tells the money budgets' thresholds (issue 19): the proxy's
spend.json read at launch and on every refresh through the one domain
check (`cftui.spend.check_budgets`), each crossing told once, and a bot
whose `on_exhausted` is "stop" stopped through the lifecycle, not locked."""

from __future__ import annotations

from datetime import UTC, datetime

from cfproxies.spendstate import DaySpend, SpendState, write_state

from cftui import locks
from cftui.audit.events import read_events
from cftui.fleet import FleetHome
from tests.tui.tui_helpers import notified, wait_until

SIZE = (120, 36)


def _spent(home: FleetHome, bot: str, usd: float) -> None:
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    state = SpendState(
        bot=bot, today=today, today_usd=usd, month_usd=usd, days={today: DaySpend(usd, 3)}
    )
    write_state(home.audit_dir(bot) / "spend.json", state)


async def test_a_spent_budget_is_told_once_and_stops_the_bot(make, fleet, runtime) -> None:
    fleet.update_bot("alpha", daily_usd_budget=10.0, on_exhausted="stop")
    _spent(fleet, "alpha", 10.5)
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: notified(app, "100% of its daily budget"))
        assert notified(app, "80% of its daily budget")
        await wait_until(pilot, lambda: runtime.states["alpha"]["gateway"] != "running")
        app.check_spend()  # a second look tells nothing new
        await pilot.pause(0.2)
        told = [n for n in app._notifications if "of its daily budget" in n.message]
        assert len(told) == 2
    thresholds = [e["percent"] for e in read_events(fleet) if e["action"] == "spend_threshold"]
    assert sorted(thresholds) == [80, 100]
    stops = [e for e in read_events(fleet) if e["action"] == "stop"]
    assert stops and "daily budget" in stops[-1]["reason"]
    assert "alpha" not in locks.locked_bots(fleet)


async def test_a_bot_under_budget_is_told_nothing(make, fleet, runtime) -> None:
    fleet.update_bot("alpha", daily_usd_budget=10.0, on_exhausted="stop")
    _spent(fleet, "alpha", 1.0)
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: bool(app.statuses))
        await pilot.pause(0.3)
        assert not notified(app, "budget")
        assert runtime.states["alpha"]["gateway"] == "running"
