"""Keys on the traffic tab that arrive together (fast typing, tmux
send-keys) or while the tab is still settling: the filter gets what is
typed right after '/', a second activation of the tab (the screen does one
after its first refresh) does not take the focus back from the filter
field, and a cursor move is not undone by the scroll to the newest rows.
The last two made test_tui_app's traffic tests flaky under load (about one
run in three at load 3-5)."""

from __future__ import annotations

import unicodedata

from textual import events
from textual.keys import _character_to_key, _get_unicode_name_from_key
from textual.widgets import Input, TabbedContent

from cftui.tui.traffic_tab import TrafficTab
from cftui.tui.traffic_view import TrafficView
from tests.tui.tui_helpers import on_bot_screen, wait_until

SIZE = (120, 36)


def burst(app, *keys: str) -> None:
    """Queue key events at once, as a terminal delivers fast typing or tmux
    send-keys (Pilot.press waits for the app to idle between keys)."""
    for key in keys:
        if len(key) == 1 and not key.isalnum():
            key = _character_to_key(key)
        try:
            char = unicodedata.lookup(_get_unicode_name_from_key(key))
        except KeyError:
            char = key if len(key) == 1 else None
        event = events.Key(key, char)
        event.set_sender(app)
        app._driver.send_message(event)


async def opened(pilot) -> tuple[TrafficTab, TrafficView]:
    app = pilot.app
    await wait_until(pilot, lambda: on_bot_screen(app))
    view = app.screen.query_one(TrafficView)
    await wait_until(pilot, lambda: view.row_count == 40 and app.focused is view)
    return app.screen.query_one(TrafficTab), view


async def test_what_is_typed_right_after_slash_goes_to_the_filter(make, runtime) -> None:
    app = make(open_bot="alpha", open_tab="traffic")
    async with app.run_test(size=SIZE) as pilot:
        tab, view = await opened(pilot)
        burst(app, "/", *"status:5xx", "enter")
        await wait_until(pilot, lambda: view.rows is not None and view.row_count == 4)
        assert str(tab.flt) == "status:5xx"
        assert app.focused is view  # Enter took the focus back to the table
        # no key leaked to the bot's keys (s starts it, x stops it, 5 = snapshots)
        assert app.screen.query_one(TabbedContent).active == "traffic"
        assert runtime.calls == []
        await pilot.press("slash", *"model:gpt", "enter")  # typed at a human pace
        await wait_until(pilot, lambda: str(tab.flt) == "model:gpt" and view.row_count == 13)


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
