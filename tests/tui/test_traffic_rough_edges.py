"""The traffic tab's rough edges of issue #22: a filter that matches nothing
says so (and the detail pane drops the call it showed), another call's
detail opens at its top, Enter on a call opens its detail, and the short
column heads have a legend."""

from __future__ import annotations

from rich.console import Console
from textual.containers import VerticalScroll

from cftui.fleet import FleetHome
from cftui.tui.traffic_view import TrafficView, header_text
from tests.tui.tui_helpers import append_records, make_record, on_bot_screen, wait_until

SIZE = (120, 36)


def plain(app, selector: str) -> str:
    console = Console(width=200, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    widget = app.screen.query_one(selector)
    console.print(getattr(widget, "content", None) or widget.render())
    return console.export_text()


async def opened(pilot) -> TrafficView:
    app = pilot.app
    await wait_until(pilot, lambda: on_bot_screen(app))
    view = app.screen.query_one(TrafficView)
    await wait_until(pilot, lambda: view.row_count == 40 and app.focused is view)
    return view


async def test_a_filter_that_matches_nothing_says_so(make) -> None:
    app = make(open_bot="alpha", open_tab="traffic")
    async with app.run_test(size=SIZE) as pilot:
        view = await opened(pilot)
        # (15 s: the full TUI suite beside other work took longer than 5 once)
        await wait_until(
            pilot, lambda: "call-000039" in plain(app, "#traffic-detail Static"), timeout=15
        )
        await pilot.press("slash", *"model:nosuchmodel", "enter")
        await wait_until(pilot, lambda: view.rows is not None and view.row_count == 0, timeout=15)
        detail = plain(app, "#traffic-detail Static")
        assert "No calls match «model:nosuchmodel»" in detail and "call-000039" not in detail
        assert "No calls match" in "".join(s.text for s in view.render_line(0))


async def test_another_call_opens_at_the_top_of_its_detail(make, fleet: FleetHome) -> None:
    long = {"messages": [{"role": "user", "content": f"line {n}"} for n in range(200)]}
    append_records(fleet.traffic_log("alpha"), [make_record(40, request=long)])
    app = make(open_bot="alpha", open_tab="traffic")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: on_bot_screen(app))
        view = app.screen.query_one(TrafficView)
        await wait_until(pilot, lambda: view.row_count == 41 and view.cursor == 40)
        pane = app.screen.query_one("#traffic-detail", VerticalScroll)
        await wait_until(pilot, lambda: pane.max_scroll_y > 20)
        pane.scroll_end(animate=False)
        await pilot.pause()
        assert pane.scroll_y > 20
        await pilot.press("k")  # the call before
        await wait_until(pilot, lambda: "call-000039" in plain(app, "#traffic-detail Static"))
        await pilot.pause()
        assert pane.scroll_y == 0


async def test_enter_on_a_call_opens_its_detail(make) -> None:
    app = make(open_bot="alpha", open_tab="traffic")
    async with app.run_test(size=SIZE) as pilot:
        await opened(pilot)
        pane = app.screen.query_one("#traffic-detail", VerticalScroll)
        await pilot.press("d")  # hidden
        assert pane.has_class("-hidden")
        await pilot.press("enter")
        assert not pane.has_class("-hidden") and app.focused is pane


def test_the_short_column_heads_have_a_legend() -> None:
    head = header_text()
    assert "HTTP" in head and "⇣=stream" in head and "!=error" in head
    assert len(head) <= 120
