"""Esc in the Config editor no longer drops unsaved edits without a word
(issue #22 item 6): leaving the bot's screen asks, the focus on Cancel,
and Cancel brings the editor back with the edits; saved or untouched, Esc
leaves at once."""

from __future__ import annotations

from textual.widgets import Button, TabbedContent, TextArea

from cftui.fleet import FleetHome
from cftui.tui.confirm import ConfirmModal
from cftui.tui.fleet_screen import FleetScreen
from tests.tui.tui_helpers import on_bot_screen, wait_until

SIZE = (120, 36)


async def test_escape_with_unsaved_edits_asks_and_cancel_keeps_them(make, fleet: FleetHome) -> None:
    from cftui.gateway import config as gc

    gc.write_config(fleet, "alpha", {"gateway": {"port": 1}}, reason="t")
    app = make(open_bot="alpha", open_tab="config")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: on_bot_screen(app))
        area = app.screen.query_one(TextArea)
        await wait_until(pilot, lambda: '"port": 1' in area.text)
        await wait_until(pilot, lambda: app.focused is area)
        await pilot.press("escape")  # nothing edited: straight back
        await wait_until(pilot, lambda: isinstance(app.screen, FleetScreen))

        app.open_bot("alpha", "config")
        await wait_until(pilot, lambda: on_bot_screen(app))
        await wait_until(pilot, lambda: app.screen.query(TextArea))
        area = app.screen.query_one(TextArea)
        await wait_until(pilot, lambda: '"port": 1' in area.text and app.focused is area)
        area.move_cursor((0, 1))
        await pilot.press("x", "y")  # typed into the editor
        edited = area.text
        assert "xy" in edited
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        assert "unsaved edits" in str(app.screen.query_one("#question").content)
        assert isinstance(app.focused, Button) and app.focused.id == "cancel"
        await pilot.press("enter")  # Cancel: the edits stay, in view
        await wait_until(pilot, lambda: on_bot_screen(app))
        assert app.screen.query_one(TextArea).text == edited
        assert app.screen.query_one(TabbedContent).active == "config"
        assert gc.read_config(fleet, "alpha")["gateway"]["port"] == 1

        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("tab", "enter")  # Drop edits, on purpose
        await wait_until(pilot, lambda: isinstance(app.screen, FleetScreen))
        assert gc.read_config(fleet, "alpha")["gateway"]["port"] == 1


async def test_escape_after_saving_leaves_at_once(make, fleet: FleetHome) -> None:
    from cftui.gateway import config as gc

    gc.write_config(fleet, "alpha", {"gateway": {"port": 1}}, reason="t")
    app = make(open_bot="alpha", open_tab="config")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: on_bot_screen(app))
        area = app.screen.query_one(TextArea)
        await wait_until(pilot, lambda: '"port": 1' in area.text)
        area.load_text(area.text.replace('"port": 1', '"port": 2'))
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: gc.read_config(fleet, "alpha")["gateway"]["port"] == 2)
        await wait_until(pilot, lambda: not app.screen.query_one("ConfigTab").unsaved())
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, FleetScreen))
