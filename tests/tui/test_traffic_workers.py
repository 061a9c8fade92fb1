"""The traffic tab's filter and totals when the file is scanned by worker
processes (`rangescan`; forced here on a small file with tiny ranges): the
same rows and totals as the in-process scan, and a new filter replaces one
still running."""

from __future__ import annotations

import pytest

from cftui.audit import rangescan
from cftui.audit.traffic import scan as traffic_scan
from cftui.tui.traffic_tab import TrafficTab
from cftui.tui.traffic_view import TrafficView
from tests.tui.tui_helpers import on_bot_screen, wait_until

SIZE = (120, 36)


@pytest.fixture(autouse=True)
def workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(traffic_scan, "PARALLEL_MIN", 0)
    monkeypatch.setattr(traffic_scan, "RANGE", 2000)  # ~2 records a range


def totals_text(app) -> str:
    return str(app.screen.query_one("#traffic-totals").render())


async def test_filter_and_totals_from_worker_processes(make) -> None:
    app = make(open_bot="alpha", open_tab="traffic")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: on_bot_screen(app))
        view = app.screen.query_one(TrafficView)
        await wait_until(pilot, lambda: view.row_count == 40 and not view.counting)
        await wait_until(pilot, lambda: "all calls: 40 calls" in totals_text(app))
        assert "errors 4" in totals_text(app)
        await pilot.press("slash", *"status:5xx", "enter")
        await wait_until(pilot, lambda: view.rows is not None and view.row_count == 4)
        assert [view.line_of(r) for r in range(4)] == [9, 19, 29, 39]
        await wait_until(pilot, lambda: "4 calls" in totals_text(app))
        assert rangescan.worker_stats()  # the pool did the scan


async def test_a_new_filter_replaces_one_still_running(make) -> None:
    app = make(open_bot="alpha", open_tab="traffic")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: on_bot_screen(app))
        view = app.screen.query_one(TrafficView)
        tab = app.screen.query_one(TrafficTab)
        await wait_until(pilot, lambda: view.row_count == 40)
        field = app.screen.query_one("#traffic-filter")
        field.focus()
        field.value = "status:5xx"
        await pilot.press("enter")
        field.focus()
        field.value = "call-000007"
        await pilot.press("enter")  # at once: the first may still be scanning
        await wait_until(pilot, lambda: str(tab.flt) == "call-000007" and view.row_count == 1)
        assert view.line_of(0) == 7
        await pilot.pause(0.2)  # a late result of the first filter must not land
        assert view.row_count == 1 and "1 calls" in totals_text(app)
