"""While the kill switch holds a bot, the footer offers only what can be
done, and `U` on a bot's screen unlocks that bot alone (issue #22 item 8):
the footer offered Start, Restart and Rebuild, and `U` inside one bot's
screen unlocked the whole fleet."""

from __future__ import annotations

from textual.widgets import Footer

from cftui import locks
from cftui.fleet import FleetHome
from cftui.tui.confirm import ConfirmModal
from cftui.tui.fleet_screen import FleetScreen
from cftui.tui.fleet_table import FleetTable
from tests.tui.tui_helpers import notified, on_bot_screen, wait_until

SIZE = (120, 36)


def footer_keys(app) -> set[str]:
    """The descriptions the footer shows now."""
    footer = app.screen.query_one(Footer)
    return {str(item.description) for item in footer.query("FooterKey")}


async def test_the_footer_hides_start_keys_for_a_locked_bot(make, fleet: FleetHome) -> None:
    locks.lock_bots(fleet, ["alpha"])
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, FleetScreen) and app.statuses)
        table = app.screen.query_one(FleetTable)
        await wait_until(pilot, lambda: table.row_count == 2)
        await wait_until(pilot, lambda: "Unlock" in footer_keys(app))
        keys = footer_keys(app)  # alpha, locked, is selected
        assert not keys & {"Start", "Restart", "Rebuild"}, keys
        assert {"Stop", "Kill bot", "KILL ALL", "Unlock"} <= keys, keys
        await pilot.press("S")  # off the footer, but it says why
        await wait_until(pilot, lambda: notified(app, "alpha is locked by the kill switch"))
        await pilot.press("j")  # beta: not locked
        await wait_until(pilot, lambda: "Start" in footer_keys(app))
        assert {"Restart", "Rebuild"} <= footer_keys(app)
        await pilot.press("ctrl+x")  # kill beta too
        await wait_until(pilot, lambda: "Start" not in footer_keys(app))


async def test_no_unlock_is_offered_when_nothing_is_locked(make) -> None:
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, FleetScreen) and app.statuses)
        await pilot.pause()
        assert "Unlock" not in footer_keys(app)
        assert "Start" in footer_keys(app)


async def test_u_on_a_bot_screen_unlocks_that_bot_only(make, fleet: FleetHome) -> None:
    locks.lock_bots(fleet, ["alpha", "beta"])
    app = make(open_bot="beta", open_tab="overview")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: on_bot_screen(app))
        await wait_until(pilot, lambda: "Unlock" in footer_keys(app))
        assert "Start" not in footer_keys(app)
        await pilot.press("U")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        question = str(app.screen.query_one("#question").content)
        assert "Unlock beta?" in question and "alpha" not in question
        await pilot.press("tab", "enter")
        await wait_until(pilot, lambda: locks.locked_bots(fleet) == ["alpha"])
        await wait_until(pilot, lambda: on_bot_screen(app))
        await wait_until(pilot, lambda: "Start" in footer_keys(app))
        assert "Unlock" not in footer_keys(app)
        await pilot.press("escape")  # the fleet's U still unlocks every locked bot
        await wait_until(pilot, lambda: isinstance(app.screen, FleetScreen))
        await pilot.press("U")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        assert "Unlock alpha?" in str(app.screen.query_one("#question").content)
