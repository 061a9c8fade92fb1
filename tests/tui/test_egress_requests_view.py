"""Pilot tests of the egress requests on the Proposals tab and in the fleet
table's count: ledgers written by hand in the egress proxy's format, the
domain's real allow and dismiss underneath, the in-memory runtime."""

from __future__ import annotations

import json
from datetime import timedelta

from rich.text import Text
from textual.widgets import DataTable, Static

from cftui import locks
from cftui.audit.events import read_events
from cftui.fleet import FleetHome
from cftui.tui.confirm import ConfirmModal
from cftui.tui.egress_requests_view import EgressRequestsView
from cftui.tui.fleet_table import FleetTable
from tests.proposals.egress_ledger import entry, write_ledger
from tests.tui.tui_helpers import NOW, notified, wait_until

SIZE = (140, 40)
MARKUP_HOST = "[bold red]pwned[/][link=http://x]y[/link]"


def view_of(app) -> EgressRequestsView:
    return app.screen.query_one(EgressRequestsView)


def table_of(app) -> DataTable:
    return view_of(app).query_one("#egress-table", DataTable)


async def opened(pilot, count: int) -> EgressRequestsView:
    app = pilot.app
    await wait_until(pilot, lambda: app.screen.query(EgressRequestsView))
    view = view_of(app)
    await wait_until(pilot, lambda: view.inbox is not None and len(view._keys) == count)
    return view


async def focus_table(pilot) -> None:
    table = table_of(pilot.app)
    table.focus()
    await wait_until(pilot, lambda: pilot.app.focused is table)


async def confirm(pilot, *, yes: bool = True) -> str:
    app = pilot.app
    await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
    question = app.screen.question
    await wait_until(pilot, lambda: app.focused is not None and app.focused.id == "cancel")
    await pilot.press(*(("tab", "enter") if yes else ("enter",)))
    await wait_until(pilot, lambda: not isinstance(app.screen, ConfirmModal))
    return question


def two_requests_narrow() -> dict:
    return entry(
        "api.github.com",
        method="POST",
        path="/repos/acme/x",
        rule="api.github.com GET /repos/acme/",
        first=NOW - timedelta(seconds=30),
        last=NOW - timedelta(seconds=30),
        connect=False,
    )


def two_requests(fleet: FleetHome) -> None:
    write_ledger(
        fleet,
        "alpha",
        [
            entry(
                "api.example.com",
                count=3,
                first=NOW - timedelta(hours=2),
                last=NOW - timedelta(minutes=5),
            ),
            two_requests_narrow(),
        ],
    )


def cells(app, key: str) -> list[str]:
    table = table_of(app)
    return [str(c) for c in table.get_row(key)]


async def test_the_table_lists_each_refused_request_newest_first(make, fleet: FleetHome) -> None:
    two_requests(fleet)
    app = make(open_bot="alpha", open_tab="proposals")
    async with app.run_test(size=SIZE) as pilot:
        view = await opened(pilot, 2)
        assert not view.has_class("-empty") and view.display
        narrow = "api.github.com:443 POST /repos/acme/x"
        assert view._keys == [narrow, "api.example.com:443"]
        assert cells(app, "api.example.com:443") == [
            "api.example.com:443",
            "3",
            "2h ago",
            "5m ago",
            "CONNECT",
            "api.example.com:443",
        ]
        target, count, first, _last, attempt, suggest = cells(app, narrow)
        assert (target, count, first, attempt) == (
            "api.github.com:443",
            "1",
            "30s ago",
            "POST /repos/acme/x",
        )
        assert suggest.startswith("api.github.com POST /repos/acme/x")
        assert "(missed: api.github.com GET /repos/acme/)" in suggest
        status = view.query_one("#egress-status", Static).content
        assert "2 egress request(s)" in str(status)


async def test_nothing_refused_shows_no_section(make, fleet: FleetHome) -> None:
    app = make(open_bot="alpha", open_tab="proposals")
    async with app.run_test(size=SIZE) as pilot:
        view = await opened(pilot, 0)
        assert view.has_class("-empty") and not view.display


async def test_markup_looking_hostnames_render_literally(make, fleet: FleetHome) -> None:
    write_ledger(
        fleet,
        "alpha",
        [entry(MARKUP_HOST, first=NOW, last=NOW, suggest=f"{MARKUP_HOST}\x1b[2J:443")],
    )
    app = make(open_bot="alpha", open_tab="proposals")
    async with app.run_test(size=SIZE) as pilot:
        await opened(pilot, 1)
        key = f"{MARKUP_HOST}:443"
        cell = table_of(app).get_cell(key, "target")
        assert isinstance(cell, Text) and cell.plain == key and not cell.spans
        suggest = table_of(app).get_cell(key, "suggest")
        assert isinstance(suggest, Text) and suggest.plain == f"{MARKUP_HOST}\\x1b[2J:443"
        await focus_table(pilot)
        await pilot.press("a")
        question = await confirm(pilot, yes=False)
        assert f"  {MARKUP_HOST}\\x1b[2J:443\n" in question and "\x1b" not in question
        shown = app.screen.query_one("#egress-table", DataTable)
        assert shown is table_of(app)


async def test_allow_asks_naming_the_pattern_then_adds_it_live(make, fleet: FleetHome) -> None:
    two_requests(fleet)
    app = make(open_bot="alpha", open_tab="proposals")
    async with app.run_test(size=SIZE) as pilot:
        await opened(pilot, 2)
        await focus_table(pilot)
        await pilot.press("down", "a")  # the unlisted host, under the newest entry
        question = await confirm(pilot)
        assert "Add this to the egress allowlist of alpha?" in question
        assert "\n  api.example.com:443\n" in question and "refused 3 time(s)" in question
        await wait_until(pilot, lambda: notified(app, "added to the egress allowlist"))
        view = view_of(app)
        await wait_until(pilot, lambda: view._keys == ["api.github.com:443 POST /repos/acme/x"])
    assert fleet.bot("alpha").egress_allow == ("api.example.com:443",)
    control = json.loads(fleet.egress_control("alpha").read_text())
    assert control["allow"] == ["api.example.com:443"]
    (event,) = [e for e in read_events(fleet, "alpha") if e["action"] == "egress-allow"]
    assert event["key"] == "api.example.com:443"


async def test_an_allow_the_grammar_refuses_fails_in_one_line(make, fleet: FleetHome) -> None:
    write_ledger(fleet, "alpha", [entry("a.example", first=NOW, suggest="not a pattern!")])
    app = make(open_bot="alpha", open_tab="proposals")
    async with app.run_test(size=SIZE) as pilot:
        await opened(pilot, 1)
        await focus_table(pilot)
        await pilot.press("a")
        await confirm(pilot)
        await wait_until(pilot, lambda: notified(app, "alpha: allow failed:"))
        assert len(view_of(app)._keys) == 1
    assert fleet.bot("alpha").egress_allow == ()


async def test_a_cancelled_allow_changes_nothing(make, fleet: FleetHome) -> None:
    two_requests(fleet)
    app = make(open_bot="alpha", open_tab="proposals")
    async with app.run_test(size=SIZE) as pilot:
        await opened(pilot, 2)
        await focus_table(pilot)
        await pilot.press("a")
        await confirm(pilot, yes=False)
        await wait_until(pilot, lambda: notified(app, "allow cancelled; nothing changed"))
        assert len(view_of(app)._keys) == 2
    assert fleet.bot("alpha").egress_allow == ()
    assert not [e for e in read_events(fleet, "alpha") if e["action"].startswith("egress")]


async def test_allow_is_refused_while_the_bot_is_locked(make, fleet: FleetHome) -> None:
    two_requests(fleet)
    locks.lock_bots(fleet, ["alpha"])
    app = make(open_bot="alpha", open_tab="proposals")
    async with app.run_test(size=SIZE) as pilot:
        await opened(pilot, 2)
        await wait_until(pilot, lambda: "alpha" in app.locked)
        await focus_table(pilot)
        await pilot.press("a")
        await wait_until(pilot, lambda: notified(app, "alpha: allow is locked by the kill switch"))
        assert not isinstance(app.screen, ConfirmModal)
    assert fleet.bot("alpha").egress_allow == ()


async def test_dismiss_hides_the_row_and_records_it(make, fleet: FleetHome) -> None:
    two_requests(fleet)
    app = make(open_bot="alpha", open_tab="proposals")
    async with app.run_test(size=SIZE) as pilot:
        await opened(pilot, 2)
        await focus_table(pilot)
        await pilot.press("down", "d")  # "d" here dismisses; it does not reject files
        question = await confirm(pilot)
        assert "\n  api.example.com:443\n" in question and "24 h" in question
        view = view_of(app)
        await wait_until(pilot, lambda: view._keys == ["api.github.com:443 POST /repos/acme/x"])
        await wait_until(
            pilot, lambda: notified(app, "egress request api.example.com:443 dismissed")
        )
    (event,) = [e for e in read_events(fleet, "alpha") if e["action"] == "egress-dismiss"]
    assert event["key"] == "api.example.com:443"
    assert fleet.bot("alpha").egress_allow == ()


async def test_a_hostile_ledger_says_so_in_one_line_and_shows_the_rest(
    make, fleet: FleetHome
) -> None:
    write_ledger(fleet, "alpha", [entry(first=NOW), {**entry("bad.example"), "port": "x" * 10**5}])
    app = make(open_bot="alpha", open_tab="proposals")
    async with app.run_test(size=SIZE) as pilot:
        view = await opened(pilot, 1)
        status = str(view.query_one("#egress-status", Static).content)
        assert "skipped 1 bad entry (first: port is not an integer)" in status
        assert view.query_one("#egress-status").has_class("-error")


async def test_fleet_table_counts_egress_requests_and_notifies_when_they_go_up(
    make, fleet: FleetHome
) -> None:
    write_ledger(fleet, "beta", [entry("a.example", first=NOW)])
    app = make(status_interval=0.2)
    async with app.run_test(size=SIZE) as pilot:
        table = app.screen.query_one(FleetTable)
        await wait_until(pilot, lambda: table.row_count == 2)
        # beta has no proposals tree yet: its egress requests are its count
        await wait_until(pilot, lambda: str(table.get_cell("beta", "proposals")) == "1")
        assert not notified(app, "proposes")  # what was there at start is not news
        write_ledger(fleet, "beta", [entry("a.example", first=NOW), entry("b.example", first=NOW)])
        await wait_until(pilot, lambda: str(table.get_cell("beta", "proposals")) == "2")
        await wait_until(
            pilot, lambda: notified(app, "beta proposes 2 changes (2 egress requests)")
        )


async def test_counts_move_in_place_while_the_section_is_shown(make, fleet: FleetHome) -> None:
    two_requests(fleet)
    app = make(open_bot="alpha", open_tab="proposals", status_interval=0.2)
    async with app.run_test(size=SIZE) as pilot:
        await opened(pilot, 2)
        await focus_table(pilot)
        await pilot.press("down")
        write_ledger(
            fleet,
            "alpha",
            [
                entry(
                    "api.example.com",
                    count=9,
                    first=NOW - timedelta(hours=2),
                    last=NOW - timedelta(minutes=1),
                ),
                two_requests_narrow(),
            ],
        )
        await wait_until(
            pilot, lambda: cells(app, "api.example.com:443")[1:4] == ["9", "2h ago", "1m ago"]
        )
        assert table_of(app).cursor_row == 1  # the same rows: updated, the cursor kept
        # refused again: now the newest, first in the list; the cursor follows it
        write_ledger(
            fleet,
            "alpha",
            [
                entry("api.example.com", count=10, first=NOW - timedelta(hours=2), last=NOW),
                two_requests_narrow(),
            ],
        )
        await wait_until(pilot, lambda: view_of(app)._keys[0] == "api.example.com:443")
        assert table_of(app).cursor_row == 0
