"""The capture tab: MITM flows, decrypted on demand in a thread and kept in
memory only (never written anywhere)."""

from __future__ import annotations

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
        self.entries: list[Any] = []

    def compose(self) -> ComposeResult:
        yield Static("Capture is decrypted when you open this tab.", id="capture-status")
        table: DataTable[str | Text] = DataTable(
            cursor_type="row", zebra_stripes=True, id="capture-table"
        )
        for col, width in (("Time", 24), ("Method", 7), ("St", 4), ("URL", 52), ("Size", 10)):
            table.add_column(col, width=width)
        yield table
        with VerticalScroll(id="capture-detail"):
            yield Static(id="capture-text")

    def activate(self) -> None:
        if not self._started:
            self._started = True
            self.action_reload()
        self.query_one(DataTable).focus()

    def action_reload(self) -> None:
        self.query_one("#capture-status", Static).update("Decrypting…")
        self._load()

    @work(thread=True, exclusive=True, group="capture", exit_on_error=False)
    def _load(self) -> None:
        # Imported here, in the worker: crypto stays out of the app's start-up.
        from cftui.audit.capture import CaptureReader
        from cftui.errors import CftuiError

        try:
            reader = CaptureReader(self.app.home, self.bot)
            entries = reader.page(PAGE, newest_first=True)
            skipped = reader.skipped.describe() if reader.skipped.total else ""
        except CftuiError as exc:
            self.app.call_from_thread(self._show, None, str(exc))
            return
        entries.reverse()  # newest last, like the traffic tab
        self.app.call_from_thread(self._show, entries, skipped)

    def _show(self, entries: list[Any] | None, note: str) -> None:
        status = self.query_one("#capture-status", Static)
        table = self.query_one(DataTable)
        table.clear()
        if entries is None:
            status.update(agent_text(note))
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
        config = self.app.configs.get(self.bot)
        state = "ON" if config and config.capture else "off"
        text = f"capture {state} · {len(entries)} newest flows (decrypted in memory only)"
        if not entries:
            text = f"capture {state} · nothing captured yet (turn it on with c)"
        if note:
            text += f" · skipped: {note}"
        status.update(agent_text(text))
        if entries:
            table.move_cursor(row=len(entries) - 1)

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
