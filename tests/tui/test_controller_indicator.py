"""The header says whether a controller (`cftui serve`) runs for the home,
read from its lock at each look at the fleet files."""

from __future__ import annotations

import os

from cftui.controller.lock import ServeLock
from cftui.fleet import FleetHome
from tests.tui.tui_helpers import wait_until


async def test_the_header_shows_a_running_controller_and_its_end(make, fleet: FleetHome) -> None:
    app = make()
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_until(pilot, lambda: app.configs_loaded)
        assert "controller" not in app.sub_title
        lock = ServeLock(fleet, "127.0.0.1:8790")
        try:
            app.read_fleet_files()
            await wait_until(pilot, lambda: "controller running" in app.sub_title)
            assert f"(pid {os.getpid()})" in app.sub_title
        finally:
            lock.release()
        app.read_fleet_files()
        await wait_until(pilot, lambda: "controller" not in app.sub_title)
        assert app.sub_title == app.SUB_TITLE
