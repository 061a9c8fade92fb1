"""The footer is built again only when the keys it shows change (issue
#23: Textual's rebuilt and restyled its fourteen keys on every row the
fleet's cursor entered, the first paint's included)."""

from __future__ import annotations

from textual.widgets import Footer

from cftui.tui.fleet_screen import FleetScreen
from cftui.tui.fleet_table import FleetTable
from tests.tui.tui_helpers import wait_until

SIZE = (120, 36)


def shown(app) -> list[str]:
    footer = app.screen.query_one(Footer)
    return [str(key.description) for key in footer.query("FooterKey")]


async def test_a_row_with_the_same_keys_keeps_the_footer_a_lock_changes_it(make) -> None:
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, FleetScreen) and app.statuses)
        table = app.screen.query_one(FleetTable)
        await wait_until(pilot, lambda: table.row_count == 2 and "Start" in shown(app))
        footer = app.screen.query_one(Footer)
        keys = list(footer.query("FooterKey"))
        await pilot.press("j")  # beta: stopped, alpha runs, the same keys
        await wait_until(pilot, lambda: table.selected_bot == "beta")
        await pilot.press("k", "j")  # and back, and again
        await wait_until(pilot, lambda: table.selected_bot == "beta")
        await pilot.pause()
        assert all(a is b for a, b in zip(footer.query("FooterKey"), keys, strict=True))
        # Beta killed: locked, its start keys go and Unlock comes.
        await pilot.press("ctrl+x")
        await wait_until(pilot, lambda: "Unlock" in shown(app))
        assert not {"Start", "Restart", "Rebuild"} & set(shown(app))
        await pilot.press("k")  # alpha is not locked: Start again
        await wait_until(pilot, lambda: "Start" in shown(app))
        # Every key is drawn as Textual draws it: the palette's compact,
        # the others not (the footer is not compact).
        palette = [k for k in footer.query("FooterKey") if k.has_class("-command-palette")]
        others = [k for k in footer.query("FooterKey") if not k.has_class("-command-palette")]
        assert [k.compact for k in palette] == [True]
        assert others and not any(k.compact or k.has_class("-compact") for k in others)
