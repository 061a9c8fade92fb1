"""The fleet's Uptime column advances with the clock (issue #22 item 2):
it stayed at its first value for minutes, as the row diff compared the new
cells with old ones rebuilt on the current clock."""

from __future__ import annotations

from datetime import timedelta

from cftui.tui.fleet_screen import FleetScreen
from cftui.tui.fleet_table import FleetTable
from tests.tui.tui_helpers import NOW, wait_until

SIZE = (120, 36)


async def test_the_uptime_advances_on_a_fake_clock(make) -> None:
    now = [NOW]
    app = make(clock=lambda: now[0])
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, FleetScreen) and app.statuses)
        table = app.screen.query_one(FleetTable)
        await wait_until(pilot, lambda: table.row_count == 2)
        uptime = lambda: str(table.get_cell("alpha", "uptime"))  # noqa: E731
        await wait_until(pilot, lambda: uptime() == "1h02m")
        now[0] = NOW + timedelta(minutes=5)
        app.fleet_signal.publish(None)  # as every status answer does
        await wait_until(pilot, lambda: uptime() == "1h07m")
        now[0] = NOW + timedelta(hours=2)
        app.refresh_status()  # the periodic round trip
        await wait_until(pilot, lambda: uptime() == "3h02m")
