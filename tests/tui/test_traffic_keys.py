"""Keys on the traffic tab while it is still settling: a second activation
of the tab (the screen does one after its first refresh) does not take the
focus back from the filter field, and a cursor move is not undone by the
scroll to the newest rows. Both made test_tui_app's traffic tests flaky
under load (about one run in three at load 3-5)."""

from __future__ import annotations

from textual.widgets import Input
from tui_helpers import wait_until

from cftui.tui.bot_screen import BotScreen
from cftui.tui.traffic_tab import TrafficTab
from cftui.tui.traffic_view import TrafficView

SIZE = (120, 36)


async def opened(pilot) -> tuple[TrafficTab, TrafficView]:
    app = pilot.app
    await wait_until(pilot, lambda: isinstance(app.screen, BotScreen))
    view = app.screen.query_one(TrafficView)
    await wait_until(pilot, lambda: view.row_count == 40 and app.focused is view)
    return app.screen.query_one(TrafficTab), view


async def test_a_second_activation_leaves_the_focus_in_the_filter(make) -> None:
    app = make(open_bot="alpha", open_tab="traffic")
    async with app.run_test(size=SIZE) as pilot:
        tab, _view = await opened(pilot)
        await pilot.press("slash")
        field = app.screen.query_one("#traffic-filter", Input)
        assert app.focused is field
        tab.activate()  # as the screen does once more after its first refresh
        await pilot.pause()
        assert app.focused is field


async def test_a_cursor_move_is_not_undone_by_the_scroll_to_the_end(make) -> None:
    app = make(open_bot="alpha", open_tab="traffic")
    async with app.run_test(size=SIZE) as pilot:
        _tab, view = await opened(pilot)
        await wait_until(pilot, lambda: view.cursor == 39)
        view._grow()  # new lines: a scroll to the end after the next refresh
        view.action_move(-1)  # a key read before that refresh
        await pilot.pause()
        assert view.cursor == 38 and not view.following
