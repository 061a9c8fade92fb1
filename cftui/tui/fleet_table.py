"""The fleet table: one row per bot, keyed by bot name, updated in place.

Rows are never cleared and rebuilt (that resets the cursor): changed cells
are updated, new bots added, removed bots dropped, all in one batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import DataTable

from cftui.audit.traffic.budget import budget_left
from cftui.hosts.config import LOCAL
from cftui.humanize import format_uptime, format_usd, human_count
from cftui.runtime.status import SERVICES
from cftui.tui.formatting import state_look

if TYPE_CHECKING:
    from cftui.audit.traffic.totals import Totals
    from cftui.fleet import BotConfig
    from cftui.runtime.status import BotStatus

# Money: today's and this month's spend, and what a budget leaves (the
# smaller of the day's and the month's). "+" after a sum: some calls of it
# have no price (`cftui costs` counts them); "?" when none has one.
COST_COLUMNS = (
    ("cost_today", "Today$", 7),
    ("cost_month", "Month$", 7),
    ("budget_left", "Left$", 7),
)

COLUMNS = (
    ("bot", "Bot", 11),
    ("host", "Host", 8),  # shown only when a bot is on another host (#21)
    ("runtime", "Runtime", 7),
    ("state", "State", 11),
    *((svc, svc, max(8, len(svc))) for svc in SERVICES),
    ("uptime", "Uptime", 6),
    ("calls", "Calls", 5),
    ("tokens", "Tokens", 6),
    ("proposals", "Props", 5),
    ("capture", "MITM", 4),  # capture; short, so that 120 columns hold the row
    ("locked", "Locked", 6),
    # Last: 120 columns hold the row up to Locked, which must stay in view.
    *COST_COLUMNS,
)

# Which columns stay when the terminal is narrow, most important first: a
# column shows only if every one before it here does, so what is left out is
# always the least telling (the services' own states, then the runtime).
PRIORITY = (
    "bot",
    "host",
    "state",
    "uptime",
    "locked",
    "calls",
    "tokens",
    *(key for key, _label, _width in COST_COLUMNS),
    "proposals",
    "capture",
    "gateway",
    "llm-proxy",
    "egress",
    "front",
    "runtime",
)

CELL_PADDING = 1  # DataTable's default, on each side of a cell


SORT_MARK = " ▾"  # after the label of the column the rows are sorted by
MARK = "● "  # before the name of a bot marked with space (as the Proposals tab marks)


def columns_for(width: int, sorted_by: str | None = None, *, hosts: bool = False) -> list[str]:
    """The keys of the columns that fit in `width` cells, in display order:
    the longest prefix of PRIORITY that fits (the bot's name always). The
    column sorted by is wider by its mark. The host column only with
    `hosts` (a bot elsewhere than here): a one-machine fleet keeps its room."""
    widths = {key: w + 2 * CELL_PADDING for key, _label, w in COLUMNS}
    if sorted_by in widths:
        widths[sorted_by] += len(SORT_MARK)
    chosen: set[str] = set()
    used = 0
    for key in PRIORITY:
        if key == "host" and not hosts:
            continue
        used += widths[key]
        if used > width and chosen:
            break
        chosen.add(key)
    return [key for key, _label, _width in COLUMNS if key in chosen]


# A service's state in eight cells.
SERVICE_WORDS = {
    "running": "● up",
    "starting": "◐ start",
    "restarting": "◐ restart",
    "unhealthy": "▲ sick",
    "stopped": "○ stop",
    "killed": "✖ killed",
    "missing": "· none",
    "unknown": "? unk",
}


@dataclass
class FleetRow:
    """Everything one row shows."""

    config: BotConfig
    status: BotStatus | None
    totals: Totals | None
    locked: bool
    proposals: int | None = None  # None: no proposals tree (yet)
    month: Totals | None = None  # this calendar month's calls, tokens and cost
    operation: str | None = None  # an operation in flight ("start"): the state says so at once


def sort_value(row: FleetRow, column: str, now: datetime) -> tuple:
    """What the rows are ordered by for `column`: names and states A to Z,
    counts, money and uptime largest first, the budget left smallest first
    (the bot closest to its limit on top); unknown values last."""
    st, totals, month = row.status, row.totals, row.month
    missing = float("inf")
    if column == "bot":
        value: object = row.config.name
    elif column == "host":
        value = group_key(row)
    elif column == "runtime":
        value = row.config.runtime
    elif column == "state":
        value = "locked" if row.locked else (st.state if st else "~")
    elif column in SERVICES:
        svc = st.services.get(column) if st else None
        value = svc.state if svc else "~"
    elif column == "uptime":
        gw = st.services.get("gateway") if st else None
        up = gw.uptime_seconds(now) if gw else None
        value = -up if up is not None else missing
    elif column in ("calls", "tokens"):
        value = -getattr(totals, column) if totals else missing
    elif column == "proposals":
        value = -row.proposals if row.proposals is not None else missing
    elif column == "capture":
        value = not row.config.capture
    elif column == "locked":
        value = not row.locked
    elif column in ("cost_today", "cost_month"):
        t = totals if column == "cost_today" else month
        value = -t.cost_usd if t and t.calls else missing
    else:  # budget_left
        cfg = row.config
        left = budget_left(cfg.daily_usd_budget, cfg.monthly_usd_budget, totals, month)
        value = left if left is not None else missing
    return (value, row.config.name)


def group_key(row: FleetRow) -> tuple[bool, str]:
    """Rows are grouped by host: this machine's bots first, then each
    host's by its name."""
    host = row.config.host
    return (host != LOCAL, host)


def spend_text(totals: Totals | None) -> str:
    """A spend cell: `$1.23`, `$1.23+` (and unpriced calls), `?` (calls,
    none priced), `-` (no calls, or not counted yet)."""
    if totals is None or not totals.calls:
        return "-"
    if not totals.priced:
        return "?"
    return format_usd(totals.cost_usd) + ("+" if totals.unpriced else "")


class FleetTable(DataTable):
    """The fleet, one row per bot (j/k beside the arrows: the screen's)."""

    COMPONENT_CLASSES = {
        "fleet--ok",
        "fleet--warn",
        "fleet--bad",
        "fleet--muted",
        "fleet--locked",
        "fleet--marked",
    }

    DEFAULT_CSS = """
    FleetTable { height: 1fr; }
    FleetTable > .fleet--ok { color: $success; }
    FleetTable > .fleet--warn { color: $warning; }
    FleetTable > .fleet--bad { color: $error; text-style: bold; }
    FleetTable > .fleet--muted { color: $text-muted; }
    FleetTable > .fleet--locked { color: $text; background: $error; text-style: bold; }
    FleetTable > .fleet--marked { color: $accent; text-style: bold; }
    """

    def __init__(self, clock: Callable[[], datetime], **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.clock = clock
        self._rows: dict[str, FleetRow] = {}
        # The cells as last drawn: a diff against cells rebuilt from the old
        # row would read the clock now, and the uptime would never move.
        self._shown: dict[str, dict[str, Text | str]] = {}
        self.shown_columns: list[str] = []  # the keys of the columns on screen
        self.sort_column: str | None = None  # None: the order of fleet.toml
        # The bots marked with space: start, stop and restart act on them all.
        self.marked: set[str] = set()
        self.has_hosts = False  # a bot on another host: the Host column, rows grouped by host

    def on_mount(self) -> None:
        self._fit_columns()

    def on_resize(self) -> None:
        self._fit_columns()

    def _fit_columns(self, force: bool = False) -> None:
        """Show the columns the width holds (by PRIORITY); the rest are named
        in the tooltip. A change rebuilds the table, keeping the cursor."""
        width = self.scrollable_content_region.width or self.app.size.width
        visible = columns_for(width, self.sort_column, hosts=self.has_hosts)
        if visible == self.shown_columns and not force:
            return
        selected = self.selected_bot
        self.shown_columns = visible
        self.clear(columns=True)
        for key, label, w in COLUMNS:
            if key == self.sort_column:
                self.add_column(label + SORT_MARK, key=key, width=w + len(SORT_MARK))
            elif key in visible:
                self.add_column(label, key=key, width=w)
        for name, cells in self._shown.items():
            self.add_row(*(cells[k] for k in visible), key=name)
        hidden = [
            label
            for key, label, _w in COLUMNS
            if key not in visible and (key != "host" or self.has_hosts)
        ]
        self.tooltip = f"Hidden at this width: {', '.join(hidden)}" if hidden else None
        self._sort()
        if selected:
            self.select_bot(selected)

    def cycle_sort(self) -> str | None:
        """Sort by the next shown column (after the last: fleet.toml's order
        again); the column now sorted by, marked in the header."""
        order: list[str | None] = [None, *self.shown_columns]
        at = order.index(self.sort_column) if self.sort_column in order else 0
        self.sort_column = order[(at + 1) % len(order)]
        self._fit_columns(force=True)
        return self.sort_column

    def _sort(self) -> None:
        """Order the rows by the sort column (or as fleet.toml lists them),
        when that moves a row: DataTable's sort redraws every cell, and the
        table is synced on every status, totals and proposals answer."""
        if not self._rows:
            return
        now = self.clock()
        names = list(self._rows)
        column = self.sort_column if self.sort_column in self.shown_columns else None

        def key(name: str) -> tuple:
            row = self._rows[name]
            order = sort_value(row, column, now) if column else (names.index(name),)
            return (group_key(row), *order) if self.has_hosts else order

        wanted = sorted(names, key=key)
        if wanted == [str(row.key.value) for row in self.ordered_rows]:
            return
        rank = {name: i for i, name in enumerate(wanted)}
        selected = self.selected_bot
        # The bot column's cell is the name, marked or not (a name never
        # starts with the mark: `fleet.validate_bot_name`).
        self.sort("bot", key=lambda cell: rank[str(cell).removeprefix(MARK)])
        if selected:
            self.select_bot(selected)

    def _styled(self, text: str, tone: str) -> Text:
        return Text(text, style=self.get_component_rich_style(f"fleet--{tone}"), no_wrap=True)

    def _cells(self, row: FleetRow) -> dict[str, Text | str]:
        st = row.status
        name = row.config.name
        cells: dict[str, Text | str] = {
            "bot": (
                self._styled(MARK + name, "marked")
                if name in self.marked
                else Text(name, style="bold")
            ),
            "host": row.config.host,
            "runtime": row.config.runtime,
        }
        if st is None:
            cells["state"] = self._styled("… loading", "muted")
        elif st.error:
            # Its engine or host did not answer: not known, never "stopped"
            # (the reason is above the table, once); the next poll asks again.
            cells["state"] = self._styled(*state_look(st.state))
        elif row.operation and not row.locked:
            cells["state"] = self._styled(f"◐ {row.operation}…", "warn")
        else:
            cells["state"] = self._styled(*state_look("locked" if row.locked else st.state))
        for svc in SERVICES:
            s = st.services.get(svc) if st else None
            if s is None:
                cells[svc] = self._styled("-", "muted")
            else:
                word, tone = state_look(s.state)
                cells[svc] = self._styled(SERVICE_WORDS.get(s.state, word), tone)
        gw = st.services.get("gateway") if st else None
        uptime = gw.uptime_seconds(self.clock()) if gw else None
        cells["uptime"] = format_uptime(uptime)
        totals = row.totals
        cells["calls"] = human_count(totals.calls) if totals else "-"
        cells["tokens"] = human_count(totals.tokens) if totals else "-"
        cells.update(self._cost_cells(row))
        n = row.proposals
        cells["proposals"] = (
            self._styled("-" if n is None else "0", "muted")
            if not n
            else self._styled(str(n), "warn")
        )
        cells["capture"] = (
            self._styled("● on", "warn") if row.config.capture else self._styled("off", "muted")
        )
        cells["locked"] = self._styled("■ YES", "locked") if row.locked else ""
        return cells

    def _cost_cells(self, row: FleetRow) -> dict[str, Text | str]:
        cfg = row.config
        left = budget_left(cfg.daily_usd_budget, cfg.monthly_usd_budget, row.totals, row.month)
        budget = (cfg.daily_usd_budget or cfg.monthly_usd_budget) > 0
        if left is None:
            left_cell = self._styled("…" if budget else "-", "muted")
        else:
            smallest = min(b for b in (cfg.daily_usd_budget, cfg.monthly_usd_budget) if b > 0)
            tone = "bad" if left <= 0 else "warn" if left < 0.2 * smallest else "ok"
            left_cell = self._styled("spent" if left <= 0 else format_usd(left), tone)
        return {
            "cost_today": spend_text(row.totals),
            "cost_month": spend_text(row.month),
            "budget_left": left_cell,
        }

    def sync(self, rows: list[FleetRow]) -> None:
        """Make the table show `rows`: update changed cells only."""
        wanted = {r.config.name for r in rows}
        has_hosts = any(r.config.host != LOCAL for r in rows)
        if has_hosts != self.has_hosts:
            self.has_hosts = has_hosts
            self._fit_columns(force=True)
        with self.app.batch_update():
            for name in [n for n in self._rows if n not in wanted]:
                self.remove_row(name)
                del self._rows[name]
                del self._shown[name]
                self.marked.discard(name)
            for row in rows:
                name = row.config.name
                cells = self._cells(row)
                if name not in self._rows:
                    self.add_row(*(cells[k] for k in self.shown_columns), key=name)
                else:
                    old = self._shown[name]
                    for key in self.shown_columns:
                        if (value := cells[key]) != old[key]:
                            self.update_cell(name, key, value)
                self._rows[name] = row
                self._shown[name] = cells
            self._sort()

    def toggle_mark(self, bot: str) -> None:
        """Mark the bot's row, or unmark it (shown before its name)."""
        self.marked ^= {bot}
        self._redraw_name(bot)

    def clear_marks(self) -> None:
        marked, self.marked = self.marked, set()
        for bot in marked:
            self._redraw_name(bot)

    def marked_bots(self) -> list[str]:
        """The marked bots in the order the table shows them."""
        return [str(row.key.value) for row in self.ordered_rows if row.key.value in self.marked]

    def _redraw_name(self, bot: str) -> None:
        row = self._rows.get(bot)
        if row is None:
            return
        cell = self._cells(row)["bot"]
        self._shown[bot]["bot"] = cell
        self.update_cell(bot, "bot", cell)

    def restyle(self) -> None:
        """Re-render every cell (after a theme change)."""
        rows = list(self._rows.values())
        with self.app.batch_update():
            for row in rows:
                cells = self._shown[row.config.name] = self._cells(row)
                for key in self.shown_columns:
                    self.update_cell(row.config.name, key, cells[key])

    @property
    def selected_bot(self) -> str | None:
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:
            return None
        return str(key.value) if key is not None else None

    def select_bot(self, bot: str) -> None:
        with contextlib.suppress(Exception):
            self.move_cursor(row=self.get_row_index(bot))
