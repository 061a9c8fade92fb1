"""Pilot tests: every screen and binding of the TUI, the kill switch and
unlock included. The runtime is the in-memory one (memory_runtime.py); the
fleet home, locks, events log, traffic log and snapshots are real files."""

from __future__ import annotations

import json

from textual.widgets import Button, DataTable, Input, Log, TabbedContent, TextArea

from cftui import locks
from cftui.audit.events import read_events
from cftui.fleet import FleetHome
from cftui.tui.bot_screen import BotScreen
from cftui.tui.confirm import ConfirmModal
from cftui.tui.fleet_screen import FleetScreen
from cftui.tui.fleet_table import FleetTable
from cftui.tui.help_screen import HelpScreen
from cftui.tui.locked_banner import LockedBanner
from cftui.tui.prompt import PromptModal
from cftui.tui.traffic_view import TrafficView
from tests.fakes.memory_runtime import MemoryRuntime
from tests.tui.tui_helpers import append_records, make_record, notified, on_bot_screen, wait_until

SIZE = (120, 36)


def cell(app, bot: str, column: str) -> str:
    table = app.screen.query_one(FleetTable)
    return str(table.get_cell(bot, column))


async def loaded(pilot) -> None:
    app = pilot.app
    await wait_until(pilot, lambda: isinstance(app.screen, FleetScreen) and app.statuses)
    await wait_until(pilot, lambda: app.screen.query_one(FleetTable).row_count == len(app.configs))


# --- fleet screen ------------------------------------------------------------


async def test_fleet_screen_shows_every_bot_with_state_uptime_and_traffic(make) -> None:
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await wait_until(pilot, lambda: "alpha" in app.totals)
        await wait_until(pilot, lambda: cell(app, "alpha", "calls") == "40")
        assert "running" in cell(app, "alpha", "state")
        assert cell(app, "alpha", "gateway") == "● up"
        assert cell(app, "alpha", "uptime") == "1h02m"
        assert cell(app, "alpha", "tokens") == "45.6k"
        assert "absent" in cell(app, "beta", "state")
        assert cell(app, "beta", "capture") == "off"
        assert cell(app, "beta", "locked") == ""


async def test_fleet_rows_update_in_place_from_the_events_stream(make, runtime) -> None:
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        table = app.screen.query_one(FleetTable)
        table.move_cursor(row=1)
        await wait_until(pilot, lambda: runtime.events_queue is not None)
        runtime._set("beta", "running", ("gateway",))  # the runtime reports a change
        await wait_until(pilot, lambda: cell(app, "beta", "gateway") == "● up")
        assert table.cursor_row == 1  # updated in place: the cursor did not move
        assert "partial" in cell(app, "beta", "state")


async def test_start_stop_restart_rebuild_keys_call_the_runtime(make, runtime) -> None:
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        app.screen.query_one(FleetTable).move_cursor(row=1)  # beta
        for key, call in (("S", "up"), ("x", "down"), ("r", "up"), ("b", "rebuild")):
            await pilot.press(key)
            if key != "S":  # stop, restart and rebuild ask first
                await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
                await pilot.press("tab", "enter")
            await wait_until(
                pilot,
                lambda call=call: (
                    ("beta" in str(runtime.calls[-1:])) and runtime.calls[-1][0] == call
                ),
            )
        actions = [e["action"] for e in read_events(app.home, "beta")]
        assert actions[-4:] == ["start", "stop", "restart", "rebuild"]


async def test_stop_restart_and_rebuild_ask_first_with_the_focus_on_cancel(make, runtime) -> None:
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)  # alpha, running, is selected
        for key, word in (("x", "Stop alpha?"), ("r", "Restart alpha?"), ("b", "Rebuild alpha?")):
            await pilot.press(key)
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
            assert word in str(app.screen.query_one("#question").content)
            assert isinstance(app.focused, Button) and app.focused.id == "cancel"
            await pilot.press("enter")  # Enter answers "no"
            await wait_until(pilot, lambda: isinstance(app.screen, FleetScreen))
            await pilot.press(key)
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
            await pilot.press("escape")
            await wait_until(pilot, lambda: isinstance(app.screen, FleetScreen))
        await pilot.pause()
        assert runtime.calls == []
        assert notified(app, "stop alpha cancelled") and notified(app, "rebuild alpha cancelled")


async def test_capture_key_turns_capture_on_in_fleet_toml(make, fleet: FleetHome) -> None:
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("c")  # alpha is selected
        await wait_until(pilot, lambda: fleet.bot("alpha").capture)
        await wait_until(pilot, lambda: cell(app, "alpha", "capture") == "● on")


async def test_snapshot_key_asks_a_label_and_creates_an_encrypted_snapshot(
    make, fleet: FleetHome
) -> None:
    (fleet.state_dir("alpha") / "memo.txt").write_text("remember")
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, PromptModal))
        app.screen.query_one(Input).value = "before-test"
        await pilot.press("enter")
        await wait_until(
            pilot, lambda: any(fleet.snapshots_dir("alpha").glob("before-test--*.tar.age"))
        )


async def test_enter_opens_the_bot_and_escape_comes_back(make) -> None:
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("enter")
        await wait_until(pilot, lambda: on_bot_screen(app))
        assert app.screen.bot == "alpha"
        assert app.screen.query_one(TabbedContent).active == "overview"
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, FleetScreen))


# --- the kill switch -----------------------------------------------------------


async def test_ctrl_k_kills_the_whole_fleet_even_from_a_text_input(
    make, runtime: MemoryRuntime, fleet: FleetHome
) -> None:
    app = make(open_bot="alpha", open_tab="traffic")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: on_bot_screen(app))
        await pilot.press("slash")
        assert isinstance(app.focused, Input)
        await pilot.press("ctrl+k")
        await wait_until(
            pilot,
            lambda: (
                {c for c in runtime.calls if c[0] == "kill"}
                == {("kill", "alpha"), ("kill", "beta")}
            ),
        )
        assert app.screen.query_one(Input).value == ""  # the key was not typed into the field
        assert locks.locked_bots(fleet) == ["alpha", "beta"]
        banner = app.screen.query_one(LockedBanner)
        await wait_until(pilot, lambda: banner.has_class("-locked"))
        assert "WHOLE FLEET LOCKED" in str(banner.content)
        assert any(e["action"] == "kill" for e in read_events(fleet))


async def test_ctrl_k_works_with_a_dialog_open(make, runtime: MemoryRuntime, fleet) -> None:
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("ctrl+k")
        await wait_until(pilot, lambda: locks.locked_bots(fleet) == ["alpha", "beta"])
        await wait_until(pilot, lambda: len([c for c in runtime.calls if c[0] == "kill"]) == 2)


async def test_ctrl_x_kills_only_the_selected_bot_without_asking(make, runtime, fleet) -> None:
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("ctrl+x")
        await wait_until(pilot, lambda: ("kill", "alpha") in runtime.calls)
        assert not isinstance(app.screen, ConfirmModal)
        assert locks.locked_bots(fleet) == ["alpha"]
        await wait_until(pilot, lambda: "LOCKED" in cell(app, "alpha", "state"))
        assert "LOCKED" not in cell(app, "beta", "state")
        assert cell(app, "alpha", "gateway") == "✖ killed"


async def test_a_locked_bot_refuses_to_start(make, runtime, fleet) -> None:
    locks.lock_bots(fleet, ["beta"])
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        app.screen.query_one(FleetTable).move_cursor(row=1)
        await pilot.press("S")
        await wait_until(pilot, lambda: notified(app, "beta is locked by the kill switch"))
        assert ("up", "beta") not in runtime.calls


async def test_a_kill_during_a_start_worker_cancels_it(make, runtime, fleet) -> None:
    import asyncio

    runtime.building = asyncio.Event()  # beta's start holds in its "build"
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        app.screen.query_one(FleetTable).move_cursor(row=1)
        await pilot.press("S")
        await wait_until(pilot, runtime.build_started.is_set)
        await pilot.press("ctrl+k")
        await wait_until(pilot, lambda: notified(app, "start cancelled: beta is locked"))
        runtime.building.set()
        await wait_until(pilot, lambda: not [w for w in app.workers if w.group == "op-beta"])
        assert "running" not in runtime.states["beta"].values()
        assert locks.locked_bots(fleet) == ["alpha", "beta"]


async def test_unlock_asks_first_with_the_focus_on_cancel(make, fleet) -> None:
    locks.lock_bots(fleet, ["alpha", "beta"])
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        banner = app.screen.query_one(LockedBanner)
        assert banner.has_class("-locked")
        await pilot.press("U")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        assert isinstance(app.focused, Button) and app.focused.id == "cancel"
        await pilot.press("enter")  # Enter answers "no"
        await wait_until(pilot, lambda: notified(app, "Unlock cancelled"))
        assert locks.locked_bots(fleet) == ["alpha", "beta"]
        await pilot.press("U")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("tab", "enter")  # move to Unlock on purpose
        await wait_until(pilot, lambda: locks.locked_bots(fleet) == [])
        await wait_until(pilot, lambda: not banner.has_class("-locked"))
        assert any(e["action"] == "unlock" for e in read_events(fleet))


# --- help, palette, theme, quit -----------------------------------------------


async def test_help_lists_every_binding(make) -> None:
    from cftui.tui.app import binding_groups
    from cftui.tui.help_screen import _key_label

    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        text = _text(app, "#help-table")
        for _scope, bindings in binding_groups():
            for binding in bindings:
                assert _key_label(binding) in text
        assert "ctrl+k" in text
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, FleetScreen))


async def test_every_binding_has_an_id_and_a_tooltip() -> None:
    from cftui.tui.app import binding_groups

    for _scope, bindings in binding_groups():
        for binding in bindings:
            assert binding.id, binding
            assert binding.tooltip or binding.description, binding


async def test_palette_offers_every_bot_action(make) -> None:
    from cftui.tui.commands import FleetCommands

    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        provider = FleetCommands(app.screen)
        titles = [title for title, _cb, _help in provider._commands()]
        for action in ("Start", "Stop", "Restart", "Rebuild", "Snapshot", "Capture", "Kill"):
            assert f"{action} beta" in titles
        assert "Kill the whole fleet" in titles
        assert "Open alpha: traffic" in titles


async def test_ctrl_t_switches_between_dark_and_light(make) -> None:
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        assert app.theme == "textual-dark"
        await pilot.press("ctrl+t")
        assert app.theme == "cftui-light"


async def test_q_quits_and_leaves_the_fleet_running(make, runtime) -> None:
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("q")
    assert app.return_code == 0
    assert not [c for c in runtime.calls if c[0] in ("kill", "down")]


# --- bot screen tabs -------------------------------------------------------------


async def test_open_lands_on_the_asked_tab_and_number_keys_switch(make) -> None:
    app = make(open_bot="beta", open_tab="snapshots")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: on_bot_screen(app))
        tabs = app.screen.query_one(TabbedContent)
        assert tabs.active == "snapshots"
        await wait_until(pilot, lambda: app.screen.query("#snapshots-table"))
        await pilot.pause()
        await pilot.press("1")
        await wait_until(pilot, lambda: tabs.active == "overview")


async def test_a_tab_key_before_the_tabs_are_mounted_is_not_lost(make) -> None:
    """On a busy machine a number key can reach the bot screen before its
    tabs are mounted: Textual then refuses the tab ("No Tab with id"), which
    took the whole TUI down."""
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        screen = BotScreen("alpha")
        app.push_screen(screen)
        screen.show_tab("traffic")  # the same tick: nothing is mounted yet
        await wait_until(pilot, lambda: screen.is_mounted)
        await wait_until(pilot, lambda: screen.query_one(TabbedContent).active == "traffic")
        await wait_until(pilot, lambda: screen.query("#traffic TrafficTab"))


async def test_a_tab_key_between_compose_and_mount_is_not_lost(make) -> None:
    """The same key once the tabs are composed but not yet mounted."""

    class Early(BotScreen):
        def compose(self):
            yield from super().compose()
            self.call_next(self.show_tab, "traffic")  # tabs composed, not mounted

    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        screen = Early("alpha")
        app.push_screen(screen)
        await wait_until(pilot, lambda: screen.is_mounted)
        await wait_until(pilot, lambda: screen.query_one(TabbedContent).active == "traffic")


async def test_overview_shows_services_limits_and_allowlist(make, fleet) -> None:
    fleet.update_bot("alpha", egress_allow=("api.example.com",))
    app = make(open_bot="alpha")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: on_bot_screen(app) and app.statuses)
        await wait_until(pilot, lambda: "api.example.com" in _text(app, "#overview-config"))
        config = _text(app, "#overview-config")
        assert "memory 2048 MiB" in config and "127.0.0.1:" in config
        assert "clawfactory/llm-proxy" in _text(app, "#overview-services")


def _text(app, selector: str) -> str:
    from rich.console import Console

    console = Console(width=200, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    widget = app.screen.query_one(selector)
    console.print(getattr(widget, "content", None) or widget.render())
    return console.export_text()


async def test_logs_tab_follows_the_selected_service(make, runtime) -> None:
    runtime.log_lines[("alpha", "gateway")] = ["gateway listening on 18789"]
    app = make(open_bot="alpha", open_tab="logs")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: on_bot_screen(app))
        log = app.screen.query_one(Log)
        await wait_until(pilot, lambda: any("18789" in line for line in log.lines))


async def test_traffic_tab_shows_the_newest_calls_and_follows_appends(make, fleet) -> None:
    app = make(open_bot="alpha", open_tab="traffic")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: on_bot_screen(app))
        view = app.screen.query_one(TrafficView)
        await wait_until(pilot, lambda: view.row_count == 40 and view.cursor == 39)
        await wait_until(pilot, lambda: view.scroll_y > 0)  # the newest rows are on screen
        append_records(fleet.traffic_log("alpha"), [make_record(40, model="appended-model")])
        await wait_until(pilot, lambda: view.row_count == 41 and view.cursor == 40)
        await wait_until(pilot, lambda: "appended-model" in _text(app, "#traffic-detail Static"))
        await wait_until(pilot, lambda: "41 calls" in _text(app, "#traffic-totals"))


async def test_scrolling_up_pauses_following_and_end_resumes(make, fleet) -> None:
    app = make(open_bot="alpha", open_tab="traffic")
    async with app.run_test(size=SIZE) as pilot:
        view = None
        await wait_until(pilot, lambda: on_bot_screen(app))
        view = app.screen.query_one(TrafficView)
        await wait_until(pilot, lambda: view.cursor == 39)
        await pilot.press("up", "up")
        assert view.cursor == 37 and not view.following
        append_records(fleet.traffic_log("alpha"), [make_record(40)])
        await wait_until(pilot, lambda: view.row_count == 41)
        assert view.cursor == 37
        await wait_until(pilot, lambda: "1 new below" in _text(app, "#traffic-totals"))
        await pilot.press("end")
        assert view.cursor == 40 and view.following


async def test_traffic_filter_runs_in_a_worker_and_shows_matches_and_totals(make) -> None:
    app = make(open_bot="alpha", open_tab="traffic")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: on_bot_screen(app))
        view = app.screen.query_one(TrafficView)
        await wait_until(pilot, lambda: view.row_count == 40)
        await pilot.press("slash")
        await pilot.press(*"status:5xx", "enter")
        await wait_until(pilot, lambda: view.row_count == 4)
        assert [view.line_of(r) for r in range(4)] == [9, 19, 29, 39]
        await wait_until(pilot, lambda: "4 calls" in _text(app, "#traffic-totals"))
        assert "errors 4" in _text(app, "#traffic-totals")
        await pilot.press("ctrl+l")
        await wait_until(pilot, lambda: view.row_count == 40)


async def test_a_bad_traffic_filter_is_refused_in_one_line(make) -> None:
    app = make(open_bot="alpha", open_tab="traffic")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: on_bot_screen(app))
        view = app.screen.query_one(TrafficView)
        await wait_until(pilot, lambda: view.row_count == 40)
        await pilot.press("slash", *"status:abc", "enter")
        await wait_until(pilot, lambda: any("bad status" in n.message for n in app._notifications))
        assert view.row_count == 40


async def test_traffic_detail_pretty_prints_request_and_response(make) -> None:
    app = make(open_bot="alpha", open_tab="traffic")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: on_bot_screen(app))
        await wait_until(pilot, lambda: "call-000039" in _text(app, "#traffic-detail Static"))
        detail = _text(app, "#traffic-detail Static")
        assert '"content": "question 39"' in detail
        assert "upstream overloaded" in detail


async def test_traffic_tab_notices_truncation(make, fleet) -> None:
    app = make(open_bot="alpha", open_tab="traffic")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: on_bot_screen(app))
        view = app.screen.query_one(TrafficView)
        await wait_until(pilot, lambda: view.row_count == 40)
        fleet.traffic_log("alpha").write_bytes(json.dumps(make_record(99)).encode() + b"\n")
        await wait_until(pilot, lambda: view.row_count == 1)


async def test_capture_tab_says_when_nothing_was_captured(make) -> None:
    app = make(open_bot="alpha", open_tab="capture")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: on_bot_screen(app))
        await wait_until(pilot, lambda: "nothing captured" in _text(app, "#capture-status"))


async def test_snapshots_tab_creates_renames_and_deletes_with_confirmation(
    make, fleet: FleetHome
) -> None:
    (fleet.state_dir("beta") / "memo.txt").write_text("remember")
    app = make(open_bot="beta", open_tab="snapshots")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: on_bot_screen(app))
        table = app.screen.query_one("#snapshots-table", DataTable)
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, PromptModal))
        app.screen.query_one(Input).value = "first"
        await pilot.press("enter")
        await wait_until(pilot, lambda: table.row_count == 1)
        await pilot.press("e")
        await wait_until(pilot, lambda: isinstance(app.screen, PromptModal))
        app.screen.query_one(Input).value = "renamed"
        await pilot.press("enter")
        await wait_until(pilot, lambda: any(fleet.snapshots_dir("beta").glob("renamed--*")))
        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        assert app.focused.id == "cancel"
        await pilot.press("enter")
        await wait_until(pilot, lambda: notified(app, "delete of renamed--"))
        assert any(fleet.snapshots_dir("beta").glob("renamed--*"))  # Cancel kept it
        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("tab", "enter")
        await wait_until(pilot, lambda: not any(fleet.snapshots_dir("beta").glob("renamed--*")))
        await wait_until(pilot, lambda: table.row_count == 0)


async def test_snapshots_tab_restores_only_after_confirmation(
    make, fleet: FleetHome, runtime: MemoryRuntime
) -> None:
    from cftui import snapshots

    memo = fleet.state_dir("alpha") / "memo.txt"
    memo.write_text("old")
    snapshots.create_snapshot(fleet, "alpha", "keep")
    memo.write_text("new")
    app = make(open_bot="alpha", open_tab="snapshots")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: on_bot_screen(app))
        table = app.screen.query_one("#snapshots-table", DataTable)
        await wait_until(pilot, lambda: table.row_count == 1)
        await pilot.press("R")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        assert app.focused.id == "cancel"
        await pilot.press("escape")
        await wait_until(pilot, lambda: notified(app, "restore of keep--"))
        assert memo.read_text() == "new"
        assert ("stop_gateway", "alpha") not in runtime.calls
        await pilot.press("R")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("tab", "enter")
        await wait_until(pilot, lambda: memo.read_text() == "old", timeout=15)
        assert ("stop_gateway", "alpha") in runtime.calls  # it was running


async def test_config_tab_edits_validates_and_reverts(make, fleet: FleetHome) -> None:
    from cftui.gateway import config as gc

    gc.write_config(fleet, "alpha", {"gateway": {"port": 1}, "apiKey": "sk-secret"}, reason="t")
    app = make(open_bot="alpha", open_tab="config")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: on_bot_screen(app))
        area = app.screen.query_one(TextArea)
        await wait_until(pilot, lambda: '"port": 1' in area.text)
        assert "sk-secret" not in area.text  # credentials masked on screen
        area.load_text(area.text.replace('"port": 1', '"port": 2'))
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: gc.read_config(fleet, "alpha")["gateway"]["port"] == 2)
        assert gc.read_config(fleet, "alpha")["apiKey"] == "sk-secret"  # mask not written
        area.load_text("{ not json")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: "not valid JSON5" in _text(app, "#config-status"))
        assert gc.read_config(fleet, "alpha")["gateway"]["port"] == 2
        await pilot.press("f4")
        await wait_until(pilot, lambda: gc.read_config(fleet, "alpha")["gateway"]["port"] == 1)
