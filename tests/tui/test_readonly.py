"""`cftui --readonly` (issue #23): a colleague may look but not act. Every
acting key, footer entry and palette command is refused with one line and
hidden; viewing and the kill switch still work."""

from __future__ import annotations

import importlib
import pkgutil

import pytest
from textual.binding import Binding
from textual.widgets import Footer

import cftui.tui
from cftui import locks
from cftui.fleet import FleetHome
from cftui.tui import readonly
from cftui.tui.bot_actions import ACTIONS
from cftui.tui.commands import FleetCommands
from cftui.tui.config_tab import ConfigTab
from cftui.tui.egress_requests_view import EgressRequestsView
from cftui.tui.fleet_screen import FleetScreen
from cftui.tui.fleet_table import FleetTable
from cftui.tui.proposals_tab import ProposalsTab
from cftui.tui.snapshots_tab import SnapshotsTab
from tests.tui.tui_helpers import notified, on_bot_screen, wait_until

SIZE = (120, 36)
REFUSED = "read-only mode:"


def footer_keys(app) -> set[str]:
    footer = app.screen.query_one(Footer)
    return {str(item.description) for item in footer.query("FooterKey")}


def refusals(app) -> int:
    return sum(REFUSED in n.message for n in app._notifications)


def every_binding() -> list[Binding]:
    """Every binding declared by a class of the TUI package."""
    found: list[Binding] = []
    for info in pkgutil.iter_modules(cftui.tui.__path__):
        module = importlib.import_module(f"cftui.tui.{info.name}")
        for value in vars(module).values():
            if isinstance(value, type) and value.__module__ == module.__name__:
                found += [b for b in vars(value).get("BINDINGS", ()) if isinstance(b, Binding)]
            elif isinstance(value, list):
                found += [b for b in value if isinstance(b, Binding)]
    return found


def test_every_binding_of_the_app_is_classified() -> None:
    """A new binding must be declared acting or viewing in `readonly`."""
    names = {b.action.partition("(")[0] for b in every_binding()}
    assert len(names) > 20
    known = readonly.ACTING | readonly.VIEWING | readonly.ALWAYS_ALLOWED
    assert names - known == set()


def test_the_verbs_refused_and_allowed() -> None:
    for verb in ACTIONS:
        assert readonly.refuses("bot", (verb,)) == (verb != "kill"), verb
    assert not readonly.refuses("kill_all")
    assert readonly.refuses("unlock") and readonly.refuses("promote_all")
    assert not readonly.refuses("open", ("traffic",)) and not readonly.refuses("reload")
    assert readonly.refusal("bot", ("start",)).count("\n") == 0


async def test_fleet_keys_are_refused_and_hidden(make, fleet: FleetHome, runtime) -> None:
    locks.lock_bots(fleet, ["beta"])  # so that U (unlock) would be offered
    app = make(read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, FleetScreen) and app.statuses)
        table = app.screen.query_one(FleetTable)
        await wait_until(pilot, lambda: table.row_count == 2)
        await pilot.pause()
        assert "READ-ONLY" in app.title
        keys = footer_keys(app)
        assert not keys & {"Start", "Stop", "Restart", "Rebuild", "Snapshot", "Capture", "Unlock"}
        assert {"KILL ALL", "Kill bot", "Logs"} <= keys, keys
        calls_before = list(runtime.calls)
        config_before = fleet.bots()["alpha"]
        for n, key in enumerate(("s", "x", "r", "b", "n", "c", "U"), start=1):
            await pilot.press(key)
            await wait_until(pilot, lambda n=n: refusals(app) == n)
            assert isinstance(app.screen, FleetScreen), key  # no question, no prompt
            assert not app.operations, key
        assert notified(app, "read-only mode: stop refused")
        assert locks.locked_bots(fleet) == ["beta"]  # unlock refused
        assert fleet.bots()["alpha"] == config_before  # capture not toggled
        assert runtime.calls == calls_before  # nothing reached the engine
        await pilot.press("enter")  # viewing works
        await wait_until(pilot, lambda: on_bot_screen(app))


async def test_the_kill_switch_stays_available(make, fleet: FleetHome) -> None:
    app = make(read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, FleetScreen) and app.statuses)
        await wait_until(pilot, lambda: app.screen.query_one(FleetTable).row_count == 2)
        await pilot.press("ctrl+x")  # alpha, selected
        await wait_until(pilot, lambda: locks.locked_bots(fleet) == ["alpha"])
        await pilot.press("ctrl+k")
        await wait_until(pilot, lambda: locks.locked_bots(fleet) == ["alpha", "beta"])
        assert refusals(app) == 0


async def test_the_palette_offers_and_runs_no_acting_command(make, fleet: FleetHome) -> None:
    app = make(read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.configs_loaded)
        provider = FleetCommands(app.screen)
        titles = [title for title, _cb, _help in provider._commands()]
        assert "Kill the whole fleet" in titles and "Kill alpha" in titles
        assert "Open alpha: traffic" in titles
        acting = ("Start", "Stop", "Restart", "Rebuild", "Snapshot", "Capture", "Unlock")
        acting += ("Promote", "Reject", "Accept", "Revert")
        assert not [t for t in titles if t.startswith(acting)], titles
        # Reached another way, the same entry points refuse.
        app.run_bot_action("alpha", "start")
        app.proposals_command("alpha", "promote_all")
        app.action_unlock()
        await wait_until(pilot, lambda: refusals(app) == 3)
        assert not app.operations and isinstance(app.screen, FleetScreen)


TAB_CASES = [
    ("snapshots", SnapshotsTab),
    ("config", ConfigTab),
    ("proposals", ProposalsTab),
    ("proposals", EgressRequestsView),
]


@pytest.mark.parametrize(("tab", "widget"), TAB_CASES, ids=lambda c: getattr(c, "__name__", c))
async def test_every_acting_key_of_a_tab_is_refused(make, tab: str, widget: type) -> None:
    """Each acting binding of the tab, run as its key would run it."""
    app = make(read_only=True, open_bot="alpha", open_tab=tab)
    acting = [b for b in widget.BINDINGS if readonly.refuses(*_parsed(b.action))]
    assert acting
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: on_bot_screen(app))
        node = await _query(pilot, app, widget)
        screen = app.screen
        for n, binding in enumerate(acting, start=1):
            assert await app.run_action(binding.action, node)
            await wait_until(pilot, lambda n=n: refusals(app) == n)
            assert app.screen is screen, binding.action  # nothing asked, nothing done
        shown = {b.binding.action for b in app.screen.active_bindings.values()}
        assert not shown & {b.action for b in acting}


async def test_a_tab_key_press_is_refused(make, fleet: FleetHome) -> None:
    app = make(read_only=True, open_bot="alpha", open_tab="snapshots")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: on_bot_screen(app))
        tab = await _query(pilot, app, SnapshotsTab)
        tab.focus()
        await pilot.pause()
        await pilot.press("n")
        await wait_until(pilot, lambda: notified(app, "read-only mode: create refused"))
        await pilot.pause()
        assert not any(fleet.snapshots_dir("alpha").glob("*"))


def _parsed(action: str) -> tuple[str, tuple[object, ...]]:
    name, _, rest = action.partition("(")
    return name, (rest.rstrip(")").strip("'"),) if rest else ()


async def _query(pilot, app, widget: type):
    await wait_until(pilot, lambda: bool(app.screen.query(widget)))
    return app.screen.query_one(widget)
