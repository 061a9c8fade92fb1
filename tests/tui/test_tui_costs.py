"""Pilot tests of spend in the TUI: the fleet table's cost columns (today,
month, what the budget leaves), the traffic tab's cost per call and for the
current filter, and the overview's chart of spend and calls per hour. The
unpriced calls show apart (`?`, `+`, "N unpriced"), never as $0; every
read runs in a worker."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Sparkline

from cftui.fleet import FleetHome
from cftui.tui.fleet_table import COLUMNS, COST_COLUMNS
from cftui.tui.overview_tab import OverviewTab
from cftui.tui.traffic_view import TrafficView, header_text, row_cells
from tests.tui.scene import scene_app
from tests.tui.test_tui_app import _text, cell, loaded
from tests.tui.tui_helpers import append_records, make_record, on_bot_screen, wait_until

SIZE = (160, 36)


def test_the_cost_columns_come_after_locked_and_fit_their_values() -> None:
    keys = [key for key, _label, _width in COLUMNS]
    assert keys[-4:] == ["locked", "cost_today", "cost_month", "budget_left"]
    assert all(width >= len("$0.528+") for _k, _l, width in COST_COLUMNS)
    assert "Cost" in header_text()
    priced = row_cells(make_record(1) | {"cost_usd": 0.0031})[2]
    unpriced = row_cells(make_record(1) | {"cost_usd": None, "cost_status": "unknown_model"})[2]
    old = row_cells(make_record(1))[2]  # a record older than costs
    assert "$0.0031" in priced and "$0" not in unpriced and "$0" not in old
    assert len(priced) == len(unpriced) == len(old)  # the columns stay aligned


async def _scene_fleet(pilot) -> None:
    await loaded(pilot)
    await wait_until(pilot, lambda: len(pilot.app.month_totals) == 4)
    await wait_until(pilot, lambda: cell(pilot.app, "scout", "cost_month") != "-")


async def test_fleet_table_shows_today_month_and_budget_left(tmp_path: Path) -> None:
    app, _home, _rt = scene_app(tmp_path / "fleet")
    async with app.run_test(size=SIZE) as pilot:
        await _scene_fleet(pilot)
        # scout: 160 priced calls, 80 Gemini calls unpriced (the "+")
        assert cell(app, "scout", "cost_today") == "$0.528+"
        assert cell(app, "scout", "cost_month") == "$0.528+"
        assert cell(app, "scout", "budget_left") == "$1.47"  # $2/day is the smaller
        assert cell(app, "scribe", "budget_left") == "spent"  # $0.25/day, $0.26 spent
        assert cell(app, "sentinel", "budget_left") == "-"  # no money budget
        assert cell(app, "tinker", "cost_today") == "-"  # no calls


async def test_a_bot_whose_calls_all_lack_a_price_shows_a_question_mark(
    make, fleet: FleetHome
) -> None:
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await wait_until(pilot, lambda: cell(app, "alpha", "cost_today") != "-")
        assert cell(app, "alpha", "cost_today") == "?"  # 40 calls older than costs
        assert app.totals["alpha"].unpriced == 40
        priced = [make_record(100 + n) | {"cost_usd": 0.5} for n in range(3)]
        append_records(fleet.traffic_log("alpha"), priced)
        app.read_fleet_files()
        await wait_until(pilot, lambda: cell(app, "alpha", "cost_today") == "$1.50+")
        assert cell(app, "alpha", "cost_month") == "$1.50+"


async def test_traffic_totals_show_the_cost_of_the_filter(tmp_path: Path) -> None:
    app, _home, _rt = scene_app(tmp_path / "fleet", open_bot="scout", open_tab="traffic")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: on_bot_screen(app))
        view = app.screen.query_one(TrafficView)
        await wait_until(pilot, lambda: view.row_count == 240)
        await wait_until(
            pilot, lambda: "cost $0.528 + 80 unpriced" in _text(app, "#traffic-totals")
        )
        await pilot.press("slash", *"model:gemini", "enter")
        await wait_until(pilot, lambda: view.row_count == 80)
        await wait_until(pilot, lambda: "80 calls" in _text(app, "#traffic-totals"))
        assert "cost - + 80 unpriced" in _text(app, "#traffic-totals")  # never $0
        await pilot.press("ctrl+l")
        await wait_until(pilot, lambda: view.row_count == 240)
        await pilot.press("slash", *"provider:anthropic", "enter")
        await wait_until(pilot, lambda: view.row_count == 80)
        await wait_until(pilot, lambda: "80 calls" in _text(app, "#traffic-totals"))
        totals = _text(app, "#traffic-totals")
        assert "cost $0.264" in totals and "unpriced" not in totals


async def test_overview_charts_spend_and_calls_per_hour(tmp_path: Path) -> None:
    app, _home, _rt = scene_app(tmp_path / "fleet", open_bot="scout", open_tab="overview")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: on_bot_screen(app))
        tab = app.screen.query_one(OverviewTab)
        await wait_until(pilot, lambda: tab.series is not None and _calls(tab) == 240)
        await wait_until(pilot, lambda: "scout" in app.totals)  # a worker after the first paint
        assert tab.series is not None and len(tab.series) == OverviewTab.HOURS
        costs = list(app.screen.query_one("#overview-spend-chart", Sparkline).data or [])
        calls = list(app.screen.query_one("#overview-calls-chart", Sparkline).data or [])
        assert len(costs) == len(calls) == 24 and sum(calls) == 240
        assert round(sum(costs), 6) == app.totals["scout"].cost_usd == 0.5276
        label = _text(app, "#overview-spend")
        assert "$0.528" in label and "80 call(s) unpriced" in label
        # The tab's labels follow the totals on the next refresh.
        left = "$2.00/day · $40.00/month · $1.47 left · then refuse"
        await wait_until(pilot, lambda: left in _text(app, "#overview-config"))
        config = _text(app, "#overview-config")
        assert "Month" in config


def _calls(tab: OverviewTab) -> int:
    return sum(t.calls for _h, t in tab.series or [])
