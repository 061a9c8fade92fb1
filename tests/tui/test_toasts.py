"""Toasts say what an operation left (issue #22): `capture demo-ada: done`
did not say on or off; the `n` key and the Snapshots tab said a snapshot
two ways; the budget's "no tokens/day" read as zero allowed."""

from __future__ import annotations

from textual.widgets import Input

from cftui.fleet import FleetHome
from cftui.tui.fleet_screen import FleetScreen
from cftui.tui.fleet_table import FleetTable
from cftui.tui.overview_tab import budget_text
from cftui.tui.prompt import PromptModal
from tests.tui.tui_helpers import notified, wait_until

SIZE = (120, 36)


async def loaded(pilot) -> None:
    app = pilot.app
    await wait_until(pilot, lambda: isinstance(app.screen, FleetScreen) and app.statuses)
    table = app.screen.query_one(FleetTable)
    await wait_until(pilot, lambda: table.row_count == 2)


async def test_capture_toasts_say_on_and_off(make, fleet: FleetHome) -> None:
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("c")
        await wait_until(pilot, lambda: notified(app, "alpha: capture on"))
        await pilot.press("c")
        await wait_until(pilot, lambda: notified(app, "alpha: capture off"))
        assert not notified(app, "done")


async def test_start_says_running_and_a_snapshot_as_the_tab_does(make, fleet: FleetHome) -> None:
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("j", "S")  # beta
        await wait_until(pilot, lambda: notified(app, "beta: running"))
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, PromptModal))
        app.screen.query_one(Input).value = "first"
        await pilot.press("enter")
        await wait_until(pilot, lambda: notified(app, "beta: created first--"))


def test_an_unset_budget_reads_unlimited_not_zero() -> None:
    assert budget_text(None, None) == "tokens/day unlimited · requests/min unlimited"
    assert budget_text(2_000_000, 30) == "2.0M tokens/day · 30 requests/min"


async def test_the_row_says_starting_as_soon_as_s_is_pressed(make, runtime) -> None:
    """Nothing on screen reacted for ~2 s after `s` (issue #22 item 7)."""
    import asyncio

    runtime.building = asyncio.Event()  # beta's start holds in its build
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        table = app.screen.query_one(FleetTable)
        await pilot.press("j", "S")
        assert "start…" in str(table.get_cell("beta", "state"))  # at once, before any answer
        await wait_until(pilot, runtime.build_started.is_set)
        runtime.building.set()
        await wait_until(pilot, lambda: notified(app, "beta: running"))
        await wait_until(pilot, lambda: "running" in str(table.get_cell("beta", "state")))
