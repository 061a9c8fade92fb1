"""The egress requests of the Proposals tab: hosts the egress proxy refused,
each one allowed (its suggested pattern joins the allowlist, live) or
dismissed from here (`cftui.proposals.egress_inbox` does both).

Every host, method and path in it came from the agent: cells are inert
`Text`, confirmations `markup=False`. The ledger is read in a thread worker;
allow and dismiss run as app workers (leaving the screen never cancels one)
behind a confirmation that names exactly the pattern added, or the entry
hidden. Hidden while there is nothing to show.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Static
from textual.worker import get_current_worker

from cftui import locks
from cftui.errors import CftuiError
from cftui.humanize import format_ago
from cftui.inert import inert
from cftui.proposals.egress_inbox import DEFAULT_WINDOW, EgressInbox
from cftui.proposals.egress_requests import EgressRequest
from cftui.tui.confirm import ConfirmModal
from cftui.tui.formatting import agent_text

if TYPE_CHECKING:
    from textual import getters

    from cftui.tui.app import ClawFactoryApp


COLUMNS = ("target", "count", "first", "last", "attempt", "suggest")
# The last column is as wide as its widest cell (the table scrolls sideways).
HEADINGS: tuple[tuple[str, int | None], ...] = (
    ("Refused host", 26),
    ("Count", 5),
    ("First", 7),
    ("Last", 7),
    ("Attempt", 24),
    ("Allow adds (rule missed)", None),
)


def _hours(window: timedelta) -> str:
    return f"{window.total_seconds() / 3600:g} h"


class EgressRequestsView(Vertical):
    """A table of the bot's pending egress requests, with allow and dismiss."""

    if TYPE_CHECKING:  # Textual types self.app as App[object]
        app = getters.app(ClawFactoryApp)

    DEFAULT_CSS = """
    EgressRequestsView { height: auto; max-height: 14; border-top: solid $panel-lighten-2; }
    EgressRequestsView.-empty { display: none; }
    EgressRequestsView #egress-status { height: auto; padding: 0 1; color: $text-muted; }
    EgressRequestsView #egress-status.-error { color: $warning; }
    EgressRequestsView #egress-table { height: auto; max-height: 12; }
    """

    BINDINGS = [
        Binding(
            "a",
            "allow",
            "Allow host",
            id="egress_requests.allow",
            tooltip="Add the request's suggested pattern to the egress allowlist, live; asks",
        ),
        Binding(
            "d",
            "dismiss",
            "Dismiss",
            id="egress_requests.dismiss",
            tooltip="Hide the request until it is refused again after 24 h; asks first",
        ),
    ]

    class Read(Message):
        """The worker read the inbox."""

        def __init__(self, inbox: EgressInbox) -> None:
            super().__init__()
            self.inbox = inbox

    def __init__(self, bot: str, *, id: str | None = None) -> None:
        super().__init__(id=id, classes="-empty")
        self.bot = bot
        self.inbox: EgressInbox | None = None
        self.busy = False
        self.window = DEFAULT_WINDOW
        self._keys: list[str] = []

    def compose(self) -> ComposeResult:
        yield Static("", id="egress-status")
        table: DataTable[Text | str] = DataTable(
            cursor_type="row", zebra_stripes=True, id="egress-table"
        )
        for key, (label, width) in zip(COLUMNS, HEADINGS, strict=True):
            table.add_column(label, key=key, width=width)
        yield table

    def on_mount(self) -> None:
        self.app.fleet_signal.subscribe(self, self._fleet_changed)

    def _fleet_changed(self, _data: object) -> None:
        """The app's periodic read saw a different count, or the section is
        in view (its counts and times move): read again."""
        if self.inbox is None or self.busy:
            return
        counted = self.app.proposal_counts.egress_count(self.bot, self.inbox.count)
        if counted != self.inbox.count or (self.display and self.screen.is_current):
            self.reload()

    # --- read ---------------------------------------------------------------
    def reload(self) -> None:
        self._read()

    @work(thread=True, exclusive=True, group="egress-requests-read", exit_on_error=False)
    def _read(self) -> None:
        from cftui.proposals.egress_inbox import read_inbox

        inbox = read_inbox(self.app.home, self.bot)
        if not get_current_worker().is_cancelled:
            self.post_message(self.Read(inbox))

    @on(Read)
    def _shown(self, message: Read) -> None:
        inbox = message.inbox
        self.inbox = inbox
        self._fill(inbox)
        self.app.egress_requests_seen(self.bot, inbox.count)

    def _fill(self, inbox: EgressInbox) -> None:
        """Rows keyed by the entry's key: updated in place while the list is
        the same, made again (the cursor kept on its row) when it changed."""
        table = self.query_one(DataTable)
        here = self._cursor_key()
        now = self.app.clock()
        keys = [r.key for r in inbox.pending]
        with self.app.batch_update():
            if keys == self._keys:
                for r in inbox.pending:
                    for column, cell in zip(COLUMNS, self._cells(r, now), strict=True):
                        table.update_cell(r.key, column, cell)
            else:
                self._keys = keys
                table.clear()
                for r in inbox.pending:
                    table.add_row(*self._cells(r, now), key=r.key)
                if here in keys:
                    table.move_cursor(row=keys.index(here))
        self.set_class(not (inbox.pending or inbox.notes), "-empty")
        status = self.query_one("#egress-status", Static)
        status.update(agent_text(self._summary(inbox), multiline=True))
        status.set_class(bool(inbox.notes), "-error")

    @staticmethod
    def _cells(r: EgressRequest, now: datetime) -> list[Text | str]:
        suggest = agent_text(r.suggest) if r.suggest else Text("(none can admit it)", "italic")
        if r.rule:
            suggest.append_text(agent_text(f"  (missed: {r.rule})", "italic"))
        return [
            agent_text(r.target),
            str(r.count),
            format_ago((now - r.first_at).total_seconds()),
            format_ago((now - r.last_at).total_seconds()),
            agent_text(r.attempt),
            suggest,
        ]

    def _summary(self, inbox: EgressInbox) -> str:
        parts = [f"{inbox.count} egress request(s): hosts the egress proxy refused"]
        if inbox.hidden:
            parts.append(f"{inbox.hidden} dismissed or allowed")
        if inbox.ledger.dropped:
            parts.append(f"{inbox.ledger.dropped} older dropped by the proxy")
        text = " · ".join(parts) + "\na allow (adds the pattern shown) · d dismiss"
        return "\n".join([text, *(f"⚠ {n}" for n in inbox.notes)])

    def _cursor_key(self) -> str | None:
        table = self.query_one(DataTable)
        row = table.cursor_row
        return self._keys[row] if table.row_count and 0 <= row < len(self._keys) else None

    def _under_cursor(self) -> EgressRequest | None:
        key = self._cursor_key()
        if key is None or self.inbox is None:
            return None
        return next((r for r in self.inbox.pending if r.key == key), None)

    # --- allow / dismiss ----------------------------------------------------------
    def action_allow(self) -> None:
        if self.bot in self.app.locked:
            self.app.notify(locks.locked_message(self.bot, "allow"), severity="error", markup=False)
            return
        request = self._under_cursor()
        if request is None:
            self.app.notify(f"{self.bot}: no egress request selected to allow")
            return
        if request.suggest is None:
            self.app.notify(
                inert(f"{self.bot}: no allowlist entry can admit {request.key}: d dismisses it"),
                severity="warning",
                markup=False,
            )
            return
        seen = f"refused {request.count} time(s), last: {request.attempt}"
        question = (
            f"Add this to the egress allowlist of {self.bot}?\n\n"
            f"  {inert(request.suggest)}\n\n"
            f"({inert(seen)})\n"
            "The running egress proxy applies it at once, without a restart."
        )
        self._ask(question, "Allow", lambda: self._start("allow", request))

    def action_dismiss(self) -> None:
        request = self._under_cursor()
        if request is None:
            self.app.notify(f"{self.bot}: no egress request selected to dismiss")
            return
        question = (
            f"Dismiss this egress request of {self.bot}?\n\n"
            f"  {inert(request.key)}\n\n"
            "Nothing is allowed. It is hidden until the proxy refuses it again more than "
            f"{_hours(self.window)} from now."
        )
        self._ask(question, "Dismiss", lambda: self._start("dismiss", request))

    def _ask(self, question: str, label: str, then) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                then()
            else:
                self.app.notify(f"{self.bot}: {label.lower()} cancelled; nothing changed")

        self.app.push_screen(ConfirmModal(question, label), answered)

    def _start(self, action: str, request: EgressRequest) -> None:
        self.busy = True
        app, bot, key, window = self.app, self.bot, request.key, self.window

        def operate() -> None:
            from cftui.proposals import egress_inbox

            try:
                if action == "allow":
                    result = egress_inbox.allow(app.home, bot, key)
                    state = result.applied.confirmed
                    done = f"{result.pattern} added to the egress allowlist" + (
                        " (applied by the running proxy)"
                        if state
                        else " (the proxy applies it when it starts)"
                        if state is None
                        else " (the running proxy has not confirmed it yet)"
                    )
                    if result.already:
                        done = f"{result.pattern} was already on the egress allowlist"
                else:
                    egress_inbox.dismiss(app.home, bot, key, window=window)
                    done = f"egress request {key} dismissed"
            except CftuiError as exc:
                app.call_from_thread(self._done, f"{action} failed: {exc}", True)
                return
            except Exception as exc:  # a worker must report, never die silently
                app.call_from_thread(
                    self._done, f"{action} failed: {type(exc).__name__}: {exc}", True
                )
                return
            app.call_from_thread(self._done, done, False)

        app.run_worker(
            operate,
            thread=True,
            group=f"egress-requests-op-{bot}",
            description=f"{action} {bot}",
            exit_on_error=False,
        )

    def _done(self, text: str, error: bool) -> None:
        self.busy = False
        self.app.notify(
            inert(f"{self.bot}: {text}"),
            severity="error" if error else "information",
            timeout=8 if error else 5,
            markup=False,
        )
        if self.is_mounted:
            self.reload()
