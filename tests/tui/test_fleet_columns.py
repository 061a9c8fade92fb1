"""The fleet table chooses its columns by the terminal's width (issue #22,
rough edges): at 80 columns it used to drop Calls, Tokens, Capture and
Locked silently; now the most important columns always show, and what is
left out is named in the table's tooltip."""

from __future__ import annotations

from cftui.tui.fleet_screen import FleetScreen
from cftui.tui.fleet_table import COLUMNS, PRIORITY, FleetTable, columns_for
from tests.tui.tui_helpers import wait_until

MUST = ["bot", "state", "uptime", "locked", "calls", "tokens"]


def test_every_column_has_a_priority_and_the_prefix_rule_holds() -> None:
    assert sorted(PRIORITY) == sorted(key for key, _label, _width in COLUMNS)
    for hosts in (False, True):
        priority = [k for k in PRIORITY if hosts or k != "host"]
        for width in range(10, 200):
            shown = columns_for(width, hosts=hosts)
            ranks = sorted(priority.index(k) for k in shown)
            assert ranks == list(range(len(shown)))  # never a gap in the priority
            assert shown == [k for k, _l, _w in COLUMNS if k in shown]  # display order
    assert columns_for(1) == ["bot"]
    assert "host" not in columns_for(500)  # every bot here: no Host column
    assert columns_for(40, hosts=True)[:2] == ["bot", "host"]


async def _table(pilot) -> FleetTable:
    app = pilot.app
    await wait_until(pilot, lambda: isinstance(app.screen, FleetScreen) and app.statuses)
    table = app.screen.query_one(FleetTable)
    await wait_until(pilot, lambda: table.row_count == 2 and app.totals)
    return table


def _labels(table: FleetTable) -> list[str]:
    return [str(c.label) for c in table.ordered_columns]


async def test_at_80_columns_the_important_columns_show(make) -> None:
    app = make()
    async with app.run_test(size=(80, 30)) as pilot:
        table = await _table(pilot)
        assert set(MUST) <= set(table.shown_columns)
        assert _labels(table)[:4] == ["Bot", "State", "Uptime", "Calls"]
        assert "Runtime" not in _labels(table) and "front" not in _labels(table)
        assert sum(c.get_render_width(table) for c in table.ordered_columns) <= 80
        assert "Runtime" in str(table.tooltip) and "front" in str(table.tooltip)
        # the cells of the shown columns are right, and the cursor survives a resize
        await wait_until(pilot, lambda: str(table.get_cell("alpha", "calls")) == "40")
        table.move_cursor(row=1)
        await pilot.resize_terminal(160, 30)
        await wait_until(pilot, lambda: len(table.shown_columns) == len(COLUMNS) - 1)
        assert table.selected_bot == "beta"
        assert table.tooltip is None
        assert str(table.get_cell("alpha", "runtime")) == "docker"
        await pilot.resize_terminal(80, 30)
        await wait_until(pilot, lambda: "front" not in table.shown_columns)
        assert table.selected_bot == "beta"


async def test_at_160_columns_every_column_shows_in_order(make) -> None:
    app = make()
    async with app.run_test(size=(160, 30)) as pilot:
        table = await _table(pilot)
        assert table.shown_columns == [k for k, _l, _w in COLUMNS if k != "host"]
        assert _labels(table) == [label for k, label, _w in COLUMNS if k != "host"]
        # The totals reach the table on the sync after they arrive.
        await wait_until(pilot, lambda: str(table.get_cell("alpha", "calls")) == "40")


def _order(table: FleetTable) -> list[str]:
    return [str(table.coordinate_to_cell_key((i, 0)).row_key.value) for i in range(table.row_count)]


async def test_o_cycles_the_sort_column_shown_in_the_header(tmp_path) -> None:
    """Sort by column (issue #22, for k9s users): `o` moves the sort to the
    next shown column, marked ▾ in the header; the cursor stays on its bot;
    after the last column, fleet.toml's order again."""
    from tests.tui.scene import scene_app

    app, _home, _rt = scene_app(tmp_path / "fleet")
    async with app.run_test(size=(160, 36)) as pilot:
        await wait_until(pilot, lambda: len(app.statuses) == 4 and len(app.totals) == 4)
        table = app.screen.query_one(FleetTable)
        await wait_until(pilot, lambda: table.row_count == 4)
        assert _order(table) == ["scout", "scribe", "sentinel", "tinker"]
        await pilot.press("o")  # Bot: A to Z
        assert table.sort_column == "bot" and "Bot ▾" in _labels(table)
        await pilot.press("o", "o")  # Runtime, then State: A to Z
        assert table.sort_column == "state"
        assert "State ▾" in _labels(table) and "Bot ▾" not in _labels(table)
        # absent < running < unhealthy; scout and scribe by name
        assert _order(table) == ["tinker", "scout", "scribe", "sentinel"]
        while table.sort_column != "calls":
            await pilot.press("o")
        assert "Calls ▾" in _labels(table)
        assert _order(table) == ["scout", "scribe", "sentinel", "tinker"]  # most first
        table.move_cursor(row=2)  # sentinel
        while table.sort_column != "budget_left":
            await pilot.press("o")
        # the budget left, smallest first: scribe spent, scout $1.47, none last
        assert _order(table)[:2] == ["scribe", "scout"]
        assert table.selected_bot == "sentinel"  # the cursor followed its bot
        # new figures keep the order up to date
        app.fleet_signal.publish(None)
        await pilot.pause()
        assert _order(table)[:2] == ["scribe", "scout"]
        await pilot.press("o")  # past the last column: fleet.toml's order
        assert table.sort_column is None
        assert not any("▾" in label for label in _labels(table))
        assert _order(table) == ["scout", "scribe", "sentinel", "tinker"]
        assert table.selected_bot == "sentinel"


async def test_marked_bots_keep_their_marks_through_a_refresh_and_a_sort(tmp_path) -> None:
    """The sort read a marked bot's name cell (`● scout`) as a bot name:
    the next status poll after a space killed the app with a KeyError."""
    from tests.tui.scene import scene_app

    app, _home, _rt = scene_app(tmp_path / "fleet")
    async with app.run_test(size=(160, 36)) as pilot:
        await wait_until(pilot, lambda: len(app.statuses) == 4 and len(app.totals) == 4)
        table = app.screen.query_one(FleetTable)
        await wait_until(pilot, lambda: table.row_count == 4)
        await pilot.press("space", "space")  # scout and scribe marked
        assert table.marked_bots() == ["scout", "scribe"]
        app.fleet_signal.publish(None)  # the figures come in again
        await pilot.pause()
        await pilot.press("o", "o", "o")  # by State: the rows move
        assert _order(table) == ["tinker", "scout", "scribe", "sentinel"]
        assert table.marked_bots() == ["scout", "scribe"]
        app.fleet_signal.publish(None)
        await pilot.pause()
        assert app.is_running and table.marked_bots() == ["scout", "scribe"]
        assert str(table.get_cell("scout", "bot")).startswith("● ")
