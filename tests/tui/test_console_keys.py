"""The kill chords and the movement keys as k9s and lazydocker users press
them (issue #22): `j`/`k` move every list and pane and never kill; ctrl+x
kills the bot in view and ctrl+k the fleet, the same on every screen, tab
and pane, even from a text field."""

from __future__ import annotations

from textual.widgets import DataTable, Input, TabbedContent, TextArea

from cftui import locks
from cftui.tui.fleet_screen import FleetScreen
from cftui.tui.fleet_table import FleetTable
from cftui.tui.tabs import TABS
from tests.tui.tui_helpers import on_bot_screen, wait_until

SIZE = (120, 36)


def kills(runtime) -> list[tuple[str, str]]:
    return [c for c in runtime.calls if c[0] == "kill"]


def bound(app, key: str) -> str | None:
    """The action `key` runs where the focus is now."""
    active = app.screen.active_bindings.get(key)
    return active.binding.action if active else None


async def loaded(pilot) -> FleetTable:
    app = pilot.app
    await wait_until(pilot, lambda: isinstance(app.screen, FleetScreen) and app.statuses)
    table = app.screen.query_one(FleetTable)
    await wait_until(pilot, lambda: table.row_count == len(app.configs))
    return table


async def test_j_then_k_moves_the_fleet_cursor_and_kills_nothing(make, runtime, fleet) -> None:
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        table = await loaded(pilot)
        assert table.selected_bot == "alpha"
        await pilot.press("j")
        assert table.selected_bot == "beta"
        await pilot.press("k")
        assert table.selected_bot == "alpha"
        await pilot.press("k", "k", "j", "k")
        await pilot.pause()
        assert kills(runtime) == [] and locks.locked_bots(fleet) == []


async def test_k_never_kills_on_any_tab_or_pane(make, runtime, fleet) -> None:
    app = make(open_bot="alpha", open_tab="overview")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: on_bot_screen(app))
        tabs = app.screen.query_one(TabbedContent)
        for tab in TABS:
            app.screen.show_tab(tab)  # not its number key: a field may have the focus
            await wait_until(pilot, lambda tab=tab: tabs.active == tab)
            await wait_until(pilot, lambda tab=tab: app.screen.query_one(f"#{tab}").children)
            await pilot.pause()
            for _pane in range(4):  # every focusable pane of the tab in turn
                if not isinstance(app.focused, Input | TextArea):  # those type j and k
                    assert "kill" not in (bound(app, "k") or ""), (tab, app.focused)
                    assert "kill" not in (bound(app, "j") or ""), (tab, app.focused)
                    await pilot.press("j", "k")
                assert bound(app, "ctrl+x") == "bot('kill')", (tab, app.focused)
                assert bound(app, "ctrl+k") == "kill_all", (tab, app.focused)
                await pilot.press("tab")
        await pilot.pause()
        assert kills(runtime) == [] and locks.locked_bots(fleet) == []


async def test_k_moves_a_bot_tab_list(make, fleet) -> None:
    from cftui import snapshots

    for label in ("one", "two", "three"):
        snapshots.create_snapshot(fleet, "alpha", label)
    app = make(open_bot="alpha", open_tab="snapshots")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: on_bot_screen(app))
        await wait_until(pilot, lambda: app.screen.query("#snapshots-table"))
        table = app.screen.query_one("#snapshots-table", DataTable)
        await wait_until(pilot, lambda: table.row_count == 3 and app.focused is table)
        start = table.cursor_row
        await pilot.press("j")
        assert table.cursor_row == min(start + 1, 2)
        await pilot.press("k")
        assert table.cursor_row == start


async def test_ctrl_x_from_the_traffic_detail_pane_kills_that_bot(make, runtime, fleet) -> None:
    app = make(open_bot="beta", open_tab="traffic")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: on_bot_screen(app))
        detail = app.screen.query_one("#traffic-detail")
        await wait_until(pilot, lambda: app.focused is not None)
        detail.focus()
        await pilot.pause()
        assert app.focused is detail
        await pilot.press("k")
        assert kills(runtime) == []
        await pilot.press("ctrl+x")
        await wait_until(pilot, lambda: ("kill", "beta") in runtime.calls)
        assert kills(runtime) == [("kill", "beta")]
        assert locks.locked_bots(fleet) == ["beta"]


async def test_ctrl_x_kills_from_the_filter_field_without_typing(make, runtime, fleet) -> None:
    app = make(open_bot="alpha", open_tab="traffic")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: on_bot_screen(app))
        await wait_until(pilot, lambda: app.focused is not None)
        await pilot.press("slash", "k")
        field = app.screen.query_one("#traffic-filter", Input)
        assert app.focused is field and field.value == "k"  # typed, not a kill
        await pilot.press("ctrl+x")
        await wait_until(pilot, lambda: kills(runtime) == [("kill", "alpha")])


async def test_a_tab_not_built_yet_says_loading_not_its_widget_name(make) -> None:
    """`TabPane#config` showed for ~2 s when a tab key came right after a bot
    was opened (issue #22): an empty widget renders its CSS name."""
    from rich.console import Console

    app = make(open_bot="alpha", open_tab="overview")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: on_bot_screen(app))
        pane = app.screen.query_one("#config")
        assert not pane.children  # built the first time it is shown
        console = Console(width=80, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
        console.print(pane.render())
        shown = console.export_text()
        assert "TabPane" not in shown and "loading" in shown
