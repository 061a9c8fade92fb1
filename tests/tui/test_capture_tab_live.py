"""The Capture tab says what the header says and follows the capture log
live (issue #22 item 3): after `c` the header said `capture ON` and the tab
`capture off ... (turn it on with c)`, turning it off left the tab saying
ON, and new flows needed F5."""

from __future__ import annotations

from cfproxies.egress import session as capture_session
from textual.widgets import DataTable, Static

from cftui.fleet import FleetHome
from cftui.identity import recipient_of
from tests.tui.tui_helpers import wait_until

SIZE = (120, 36)


def shown(app, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).content)


def flow(n: int, bot: str = "alpha") -> dict:
    return {
        "v": 1,
        "id": f"flow-{n:04d}",
        "bot": bot,
        "ts": f"2026-11-24T06:{n:02d}:00.000Z",
        "kind": "http",
        "method": "GET",
        "url": f"https://api.github.com/n/{n}",
        "host": "api.github.com",
        "status": 200,
        "request": {"headers": {}},
        "response": {"headers": {}, "bytes": 100 + n, "text": "{}"},
        "duration_ms": 5.0,
    }


async def test_the_tab_says_on_and_off_as_the_header_does(make, fleet: FleetHome) -> None:
    app = make(open_bot="alpha", open_tab="capture")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.screen.query("#capture-status"))
        await wait_until(pilot, lambda: "nothing captured" in shown(app, "#capture-status"))
        assert shown(app, "#capture-status").startswith("capture off")
        assert "capture off" in shown(app, "#bot-title")
        await pilot.press("c")
        await wait_until(pilot, lambda: "capture ON" in shown(app, "#bot-title"))
        status = shown(app, "#capture-status")
        assert status.startswith("capture ON") and "turn it on" not in status, status
        await pilot.press("f5")
        await wait_until(pilot, lambda: "nothing captured" in shown(app, "#capture-status"))
        status = shown(app, "#capture-status")
        assert status.startswith("capture ON") and "turn it on" not in status, status
        await pilot.press("c")
        await wait_until(pilot, lambda: "capture off" in shown(app, "#bot-title"))
        assert shown(app, "#capture-status").startswith("capture off")
        assert "turn it on with c" in shown(app, "#capture-status")


async def test_new_flows_show_without_f5_and_the_cursor_follows(make, fleet: FleetHome) -> None:
    session = capture_session.CaptureSession(
        "alpha",
        fleet.capture_log("alpha"),
        fleet.capture_keys("alpha"),
        recipient_of(fleet, "alpha"),
    )
    try:
        session.write(flow(0))
        app = make(open_bot="alpha", open_tab="capture")
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: app.screen.query("#capture-table"))
            table = app.screen.query_one("#capture-table", DataTable)
            await wait_until(pilot, lambda: table.row_count == 1)
            for n in (1, 2):
                session.write(flow(n))
            await wait_until(pilot, lambda: table.row_count == 3)
            assert table.cursor_row == 2  # on the newest, as it was
            assert "3 newest flows" in shown(app, "#capture-status")
    finally:
        session.close()
