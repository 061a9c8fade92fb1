"""The fleet screen: every bot, live, with the actions on the selected one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static

from cftui.inert import inert
from cftui.runtime.base import INSTALLER
from cftui.tui.bot_actions import BOT_BINDINGS, INSTALL_LOG_BINDING, MULTI_ACTIONS, BotActionsMixin
from cftui.tui.fleet_table import COLUMNS, FleetRow, FleetTable
from cftui.tui.footer import Footer
from cftui.tui.formatting import HEADER_ICON, agent_text
from cftui.tui.locked_banner import LockedBanner
from cftui.tui.ops_line import OpsLine
from cftui.tui.vim_keys import NAV_BINDINGS, VimNavMixin

if TYPE_CHECKING:
    from textual import getters

    from cftui.tui.app import ClawFactoryApp


class FleetScreen(VimNavMixin, BotActionsMixin, Screen):
    """The app's home screen."""

    if TYPE_CHECKING:  # Textual types self.app as App[object]
        app = getters.app(ClawFactoryApp)

    BINDINGS = [
        Binding("enter", "open('overview')", "Open", id="fleet.open", tooltip="Open the bot"),
        Binding("t", "open('traffic')", "Traffic", id="fleet.traffic", tooltip="Bot's traffic"),
        Binding("l", "open('logs')", "Logs", id="fleet.logs", tooltip="Bot's service logs"),
        # Not in the footer (it would push ^k KILL ALL off at 120 columns):
        # in the help screen and the command palette.
        Binding(
            "o",
            "cycle_sort",
            "Sort",
            show=False,
            id="fleet.sort",
            tooltip="Sort by the next column (marked ▾)",
        ),
        INSTALL_LOG_BINDING,
        Binding(
            "space",
            "mark",
            "Mark",
            show=False,
            id="fleet.mark",
            tooltip="Mark or unmark the bot: start, stop and restart act on every marked bot",
        ),
        *BOT_BINDINGS,
        *NAV_BINDINGS,
    ]

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon=HEADER_ICON)
        yield LockedBanner()
        yield Static("", id="fleet-errors")
        yield Static("", id="fleet-marks")
        yield FleetTable(clock=self.app.clock, id="fleet")
        yield OpsLine()
        yield Footer()

    def on_mount(self) -> None:
        self.app.fleet_signal.subscribe(self, self._sync)
        self.app.theme_changed_signal.subscribe(self, lambda _t: self.table.restyle())
        self._sync(None)
        self.table.focus()

    @property
    def table(self) -> FleetTable:
        return self.query_one(FleetTable)

    def _sync(self, _data: object) -> None:
        app = self.app
        counts = app.proposal_counts.counts
        rows = [
            FleetRow(
                cfg,
                app.statuses.get(name),
                app.totals.get(name),
                name in app.locked,
                counts.get(name),
                month=app.month_totals.get(name),
                operation=app.operations.get(name),
            )
            for name, cfg in app.configs.items()
        ]
        self.table.sync(rows)
        self._show_marks()
        errors = self.query_one("#fleet-errors", Static)
        errors.update(
            agent_text("\n".join(f"⚠ {inert(e)}" for e in app.status_errors), multiline=True)
        )
        errors.display = bool(app.status_errors)
        if not rows and app.configs_loaded and not app.status_errors:
            errors.update("No bots yet: create one with `cftui init BOT` or run `cftui demo`.")
            errors.display = True

    def current_bot(self) -> str | None:
        return self.table.selected_bot

    def action_mark(self) -> None:
        """Mark the cursor's bot (or unmark it), then move down a row, as
        the Proposals tab marks its rows."""
        bot = self.current_bot()
        if bot is None:
            return
        self.table.toggle_mark(bot)
        self.table.action_cursor_down()
        self._show_marks()

    def _show_marks(self) -> None:
        marks = self.query_one("#fleet-marks", Static)
        marked = self.table.marked_bots()
        marks.display = bool(marked)
        if marked:
            marks.update(
                agent_text(
                    f"{len(marked)} marked: {', '.join(marked)} · S start, x stop, r restart "
                    "act on them all · space unmarks"
                )
            )

    def action_bot(self, action: str) -> None:
        """Start, stop and restart act on the marked bots when there are
        some (then the marks go); every other action on the cursor's."""
        marked = self.table.marked_bots()
        if not marked or action not in MULTI_ACTIONS:
            super().action_bot(action)
            return

        def ran() -> None:
            self.table.clear_marks()
            self._show_marks()

        self.app.run_bot_action_many(marked, action, ran)

    def action_cycle_sort(self) -> None:
        column = self.table.cycle_sort()
        labels = {key: label for key, label, _w in COLUMNS}
        self.notify(f"sorted by {labels[column]}" if column else "in fleet.toml's order")

    def action_open(self, tab: str) -> None:
        bot = self.current_bot()
        if bot:
            self.app.open_bot(bot, tab)

    def action_install_log(self) -> None:
        bot = self.current_bot()
        if bot:
            self.app.open_bot(bot, "logs", log_service=INSTALLER)

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self) -> None:
        self.refresh_bindings()  # the footer's keys are the selected bot's

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value:
            self.app.open_bot(str(event.row_key.value), "overview")
