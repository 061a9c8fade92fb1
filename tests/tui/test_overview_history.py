"""Pilot test of the bot's history on its overview: its own lines of the
real audit/events.jsonl, the last ten, new ones as they are appended, a
torn or hostile line harmless."""

from __future__ import annotations

from cftui.audit.events import record_event
from cftui.tui.overview_tab import OverviewTab
from tests.tui.tui_helpers import on_bot_screen, wait_until

SIZE = (120, 60)


async def test_overview_history_shows_this_bots_events_and_follows(
    make, fleet, monkeypatch
) -> None:
    for n in range(12):
        record_event(fleet, "config", "alpha", change=f"edit-{n:02d}")
    record_event(fleet, "start", "beta")
    record_event(fleet, "snapshot", "alpha", reason="evil \x1b]0;owned\x07 [red]x[/red]")
    with open(fleet.events_log, "ab") as f:
        f.write(b'{"ts": "torn\n[not json\n')
    monkeypatch.setattr(OverviewTab, "HISTORY_EVERY_S", 0.1)
    app = make(open_bot="alpha", open_tab="overview")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: on_bot_screen(app))
        await wait_until(pilot, lambda: bool(app.screen.query(OverviewTab)))
        tab = app.screen.query_one(OverviewTab)
        await wait_until(pilot, lambda: "snapshot" in tab.history_text)
        text = tab.history_text
        assert "beta" not in text and "start" not in text  # another bot's
        assert "edit-11" in text and "edit-03" in text and "edit-02" not in text  # last 10
        assert "reason=evil \\x1b]0;owned\\x07 [red]x[/red]" in text  # verbatim, inert
        assert "2 malformed line(s) skipped" in text
        assert text.index("edit-03") < text.index("edit-11") < text.index("snapshot")
        record_event(fleet, "stop", "alpha")
        await wait_until(pilot, lambda: "  stop  alpha" in tab.history_text)
        assert "edit-03" not in tab.history_text


async def test_overview_history_says_when_nothing_is_recorded(make, fleet) -> None:
    fleet.events_log.unlink()  # init_bot recorded each bot's init
    app = make(open_bot="beta", open_tab="overview")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: bool(app.screen.query(OverviewTab)))
        tab = app.screen.query_one(OverviewTab)
        await wait_until(pilot, lambda: "no operator action recorded" in tab.history_text)
