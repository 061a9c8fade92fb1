"""Pilot tests of the logs tab's k9s/lazydocker keys: pause (new lines
counted, then shown in order), plain-text find with n/N, wrap on/off. The
runtime is the in-memory one; its log feed stands in for a service writing."""

from __future__ import annotations

import asyncio

from textual.widgets import Log, TabbedContent

from cftui.tui.bot_screen import BotScreen
from cftui.tui.logs_tab import LogsTab
from tests.tui.tui_helpers import on_bot_screen, wait_until

SIZE = (120, 36)


async def _open(pilot) -> tuple[LogsTab, Log]:
    app = pilot.app
    await wait_until(pilot, lambda: on_bot_screen(app))
    await wait_until(pilot, lambda: bool(app.screen.query(LogsTab)))
    tab = app.screen.query_one(LogsTab)
    log = tab.query_one(Log)
    await wait_until(pilot, lambda: any("ready" in line for line in log.lines))
    await wait_until(pilot, lambda: app.screen.focused is log)
    return tab, log


async def test_pause_counts_new_lines_and_resume_shows_them_in_order(make, runtime) -> None:
    runtime.log_lines[("alpha", "gateway")] = ["gateway ready"]
    feed: asyncio.Queue[str] = asyncio.Queue()
    runtime.log_feeds[("alpha", "gateway")] = feed
    app = make(open_bot="alpha", open_tab="logs")
    async with app.run_test(size=SIZE) as pilot:
        tab, log = await _open(pilot)
        feed.put_nowait("before pause")
        await wait_until(pilot, lambda: "before pause" in log.lines)
        await pilot.press("p")
        assert tab.buffer.paused and "paused · 0 new lines" in tab.status_text
        for n in range(3):
            feed.put_nowait(f"while paused {n}")
        await wait_until(pilot, lambda: "3 new lines" in tab.status_text)
        assert not any("while paused" in line for line in log.lines)
        await pilot.press("p")
        assert not tab.buffer.paused and "following" in tab.status_text
        assert list(log.lines)[-3:] == [f"while paused {n}" for n in range(3)]
        feed.put_nowait("after resume")
        await wait_until(pilot, lambda: list(log.lines)[-1] == "after resume")


async def test_find_steps_through_matches_with_n_and_N(make, runtime) -> None:
    runtime.log_lines[("alpha", "gateway")] = [
        "gateway ready",
        *(f"filler {i}" for i in range(100)),
        "ERROR disk full",
        *(f"filler {i}" for i in range(100, 200)),
        "late error [bold]not markup[/bold]",
        "tail line",
    ]
    app = make(open_bot="alpha", open_tab="logs")
    async with app.run_test(size=SIZE) as pilot:
        tab, log = await _open(pilot)
        await wait_until(pilot, lambda: "tail line" in log.lines)
        await pilot.press("slash", *"error", "enter")
        await wait_until(pilot, lambda: "2/2" in tab.status_text)
        assert tab.match_line == "late error [bold]not markup[/bold]"  # newest first, verbatim
        assert app.screen.focused is log and tab.buffer.paused  # a match shown stays put
        await pilot.press("N")
        assert "1/2" in tab.status_text and tab.match_line == "ERROR disk full"
        row = list(log.lines).index("ERROR disk full")
        await wait_until(pilot, lambda: log.scroll_y <= row < log.scroll_y + log.size.height)
        await pilot.press("n")
        assert "2/2" in tab.status_text
        await pilot.press("n")  # wraps around
        assert "1/2" in tab.status_text
        await pilot.press("slash", *"nowhere", "enter")
        await wait_until(pilot, lambda: "/nowhere  no match" in tab.status_text)
        assert tab.match_line is None


async def test_n_without_a_search_stays_the_bots_snapshot_key(make, runtime) -> None:
    app = make(open_bot="alpha", open_tab="logs")
    async with app.run_test(size=SIZE) as pilot:
        tab, _log = await _open(pilot)
        assert app.screen.active_bindings["n"].binding.id == "bot.snapshot"
        await pilot.press("slash", *"ready", "enter")
        await wait_until(pilot, lambda: "1/1" in tab.status_text)
        assert app.screen.active_bindings["n"].binding.id == "logs.next"


async def test_a_hostile_query_and_line_are_shown_as_text(make, runtime) -> None:
    runtime.log_lines[("alpha", "gateway")] = ["gateway ready", "evil \x1b]0;owned\x07 [red]x"]
    app = make(open_bot="alpha", open_tab="logs")
    async with app.run_test(size=SIZE) as pilot:
        tab, log = await _open(pilot)
        await wait_until(pilot, lambda: any("evil" in line for line in log.lines))
        assert "evil \\x1b]0;owned\\x07 [red]x" in log.lines
        await pilot.press("slash", *"[red]", "enter")
        await wait_until(pilot, lambda: "/[red]  1/1" in tab.status_text)
        await pilot.press("escape")  # leaves nothing open: back to the fleet
        await wait_until(pilot, lambda: not isinstance(app.screen, BotScreen))


async def test_wrap_splits_long_lines_to_the_width_and_back(make, runtime) -> None:
    long = "x" * 250 + "END"
    runtime.log_lines[("alpha", "gateway")] = ["gateway ready", long, "short"]
    app = make(open_bot="alpha", open_tab="logs")
    async with app.run_test(size=SIZE) as pilot:
        tab, log = await _open(pilot)
        await wait_until(pilot, lambda: "short" in log.lines)
        assert long in log.lines and "wrap off" in tab.status_text
        await pilot.press("w")
        assert "wrap on" in tab.status_text and long not in log.lines
        width = log.scrollable_content_region.width
        rows = list(log.lines)
        assert all(len(r) < width for r in rows)
        assert "".join(r for r in rows if set(r) <= set("xEND")) == long
        assert rows[-1] == "short"
        await pilot.press("w")
        assert long in log.lines and "wrap off" in tab.status_text


async def test_i_shows_the_last_install_log_from_the_fleet_and_the_bot_screen(
    make, runtime, fleet
) -> None:
    from textual.widgets import Select

    from cftui.deps import install_log

    install_log.keep(
        fleet, "alpha", "npm ci of c0ffee: exit 1", ["npm ERR! 403 \x1b[2J[b]Forbidden[/b]"]
    )
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("i")  # the fleet screen: its selected bot, alpha
        await wait_until(pilot, lambda: on_bot_screen(app))
        await wait_until(pilot, lambda: bool(app.screen.query(LogsTab)))
        tab = app.screen.query_one(LogsTab)
        log = tab.query_one(Log)
        await wait_until(pilot, lambda: "npm ERR! 403 \\x1b[2J[b]Forbidden[/b]" in log.lines)
        assert "cftui: npm ci of c0ffee: exit 1" in log.lines
        assert tab.query_one("#logs-service", Select).value == "installer"
        # A new install's log replaces it: the followed tab shows the new one.
        install_log.keep(fleet, "alpha", "npm ci of beef: exit 0", ["added 1 package"])
        await wait_until(pilot, lambda: "added 1 package" in log.lines, timeout=10)
        # On the bot screen, from another service and another tab.
        tab.show_service("gateway")
        await wait_until(pilot, lambda: any("gateway of alpha ready" in ln for ln in log.lines))
        await pilot.press("1")
        await pilot.press("i")
        await wait_until(pilot, lambda: tab.query_one("#logs-service", Select).value == "installer")
        await wait_until(pilot, lambda: "added 1 package" in log.lines)
        assert app.screen.query_one(TabbedContent).active == "logs"
