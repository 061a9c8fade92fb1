"""The capture tab: MITM flows, decrypted on demand in a thread and kept in
memory only (never written anywhere)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import DataTable, Static

from cftui.humanize import human_bytes
from cftui.tui.formatting import agent_text
from cftui.tui.traffic_tab import body_view

if TYPE_CHECKING:
    from textual import getters

    from cftui.tui.app import ClawFactoryApp

PAGE = 500
FOLLOW_SECONDS = 1.0


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """What tells a changed capture log from the one last read."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class CaptureTab(Vertical):
    """The newest captured flows; enter shows one decrypted."""

    if TYPE_CHECKING:  # Textual types self.app as App[object]
        app = getters.app(ClawFactoryApp)

    DEFAULT_CSS = """
    CaptureTab { height: 1fr; }
    CaptureTab #capture-status { height: auto; padding: 0 1; color: $text-muted; }
    CaptureTab DataTable { height: 1fr; }
    CaptureTab #capture-detail { height: 40%; border-top: solid $primary; padding: 0 1; }
    """

    BINDINGS = [
        Binding("f5", "reload", "Reload", id="capture.reload", tooltip="Decrypt the newest again"),
    ]

    def __init__(self, bot: str) -> None:
        super().__init__()
        self.bot = bot
        self._started = False
        self._polling = False
        self._stamp: tuple[int, int, int] | None = None
        self._count: int | None = None  # None: nothing read yet (or an error)
        self._note = "Capture is decrypted when you open this tab."
        self._skipped = ""
        self.entries: list[Any] = []

    def compose(self) -> ComposeResult:
        yield Static("", id="capture-status")
        table: DataTable[str | Text] = DataTable(
            cursor_type="row", zebra_stripes=True, id="capture-table"
        )
        for col, width in (("Time", 24), ("Method", 7), ("HTTP", 4), ("URL", 52), ("Size", 10)):
            table.add_column(col, width=width)
        yield table
        with VerticalScroll(id="capture-detail"):
            yield Static(id="capture-text")

    def on_mount(self) -> None:
        # The state is the header's (fleet.toml as the app read it), drawn
        # again whenever the app's fleet state changes: after `c` the tab
        # says what the header says, on and off.
        self.app.fleet_signal.subscribe(self, lambda _data: self._render_status())
        self._render_status()
        self.set_interval(FOLLOW_SECONDS, self._poll)

    def activate(self) -> None:
        if not self._started:
            self._started = True
            self.action_reload()
        self.query_one(DataTable).focus()

    def action_reload(self) -> None:
        self._count, self._note = None, "Decrypting…"
        self._render_status()
        self._load(force=True)

    def _poll(self) -> None:
        """Follow the capture log as the traffic tab follows its log: a
        stat in the worker, a decrypt only when the file changed."""
        if self._started and not self._polling:
            self._polling = True
            self._load(force=False)

    @work(thread=True, exclusive=True, group="capture", exit_on_error=False)
    def _load(self, force: bool) -> None:
        # Imported here, in the worker: crypto stays out of the app's start-up.
        from cftui.audit.capture import CaptureReader
        from cftui.errors import CftuiError

        stamp = _stamp(self.app.home.capture_log(self.bot))
        if not force and stamp == self._stamp:
            self.app.call_from_thread(self._idle)
            return
        try:
            reader = CaptureReader(self.app.home, self.bot)
            entries = reader.page(PAGE, newest_first=True)
            skipped = reader.skipped.describe() if reader.skipped.total else ""
        except CftuiError as exc:
            self.app.call_from_thread(self._show, None, str(exc), stamp)
            return
        entries.reverse()  # newest last, like the traffic tab
        self.app.call_from_thread(self._show, entries, skipped, stamp)

    def _idle(self) -> None:
        self._polling = False

    def _show(
        self, entries: list[Any] | None, note: str, stamp: tuple[int, int, int] | None
    ) -> None:
        self._polling = False
        self._stamp = stamp
        table = self.query_one(DataTable)
        # Following: a cursor on the newest row stays on the newest row.
        at_end = table.row_count == 0 or table.cursor_row >= table.row_count - 1
        row = table.cursor_row
        table.clear()
        if entries is None:
            self._count, self._note, self._skipped = None, note, ""
            self._render_status()
            return
        self.entries = entries
        for i, entry in enumerate(entries):
            try:
                ts, method, st, url, size, _dur = entry.summary()
            except Exception:
                table.add_row("?", "", "", Text("unreadable flow", style="dim"), "", key=str(i))
                continue
            # The flow is what the agent sent: Text cells, never DataTable's markup.
            cells = (agent_text(v) for v in (ts, method, st))
            url_cell = agent_text(url)
            url_cell.truncate(52)
            table.add_row(*cells, url_cell, human_bytes(size), key=str(i))
        self._count, self._skipped = len(entries), note
        self._render_status()
        if entries:
            table.move_cursor(row=len(entries) - 1 if at_end else min(row, len(entries) - 1))

    def _render_status(self) -> None:
        config = self.app.configs.get(self.bot)
        on = bool(config and config.capture)
        text = "capture ON" if on else "capture off"
        if self._count is None:
            text += f" · {self._note}"
        elif self._count:
            text += f" · {self._count} newest flows (decrypted in memory only; new ones follow)"
        elif on:
            text += " · nothing captured yet: flows show here as the agent makes them"
        else:
            text += " · nothing captured (turn it on with c)"
        if self._skipped:
            text += f" · skipped: {self._skipped}"
        self.query_one("#capture-status", Static).update(agent_text(text))

    @on(DataTable.RowHighlighted, "#capture-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        try:
            entry = self.entries[int(str(event.row_key.value))]
            record = entry.record
        except (ValueError, IndexError, TypeError):
            record = None
        except Exception:
            record = None
        if record is None:
            shown: Any = Text("This flow could not be decrypted or parsed.", style="dim")
        else:
            shown = body_view(record)
        self.query_one("#capture-text", Static).update(shown)
