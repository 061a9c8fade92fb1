"""The logs tab: one service's log, followed live from the runtime, or
the last dependency install's output (`installer`, cftui's own file).

For k9s/lazydocker hands: `p` pauses (new lines are counted, not shown,
until resumed), `/` finds plain text with `n`/`N` for the next/previous
match, `w` wraps long lines. The agent's text is made inert and shown in a
`Log`, which never reads markup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Log, Select, Static

from cftui.errors import CftuiError
from cftui.inert import inert
from cftui.runtime.base import LOG_SERVICES
from cftui.tui.log_buffer import LogBuffer, rows_of

if TYPE_CHECKING:
    from textual import getters

    from cftui.tui.app import ClawFactoryApp


class LogsTab(Vertical):
    """Pick a service; its last lines, then new ones as they come."""

    if TYPE_CHECKING:  # Textual types self.app as App[object]
        app = getters.app(ClawFactoryApp)

    DEFAULT_CSS = """
    LogsTab { height: 1fr; }
    LogsTab #logs-bar { height: auto; }
    LogsTab Select { width: 30; }
    LogsTab #logs-find { width: 1fr; display: none; }
    LogsTab #logs-find.-shown { display: block; }
    LogsTab Log { height: 1fr; }
    LogsTab #logs-status { height: 1; background: $boost; color: $text-muted; padding: 0 1; }
    """

    BINDINGS = [
        Binding("ctrl+l", "clear", "Clear", id="logs.clear", tooltip="Clear the shown lines"),
        Binding("p", "pause", "Pause", id="logs.pause", tooltip="Stop/resume following"),
        Binding("slash", "find", "Find", id="logs.find", tooltip="Find plain text in the log"),
        Binding("n", "next_match(1)", "Next", id="logs.next", tooltip="Next match"),
        Binding("N", "next_match(-1)", "Prev", id="logs.prev", tooltip="Previous match"),
        Binding("w", "wrap", "Wrap", id="logs.wrap", tooltip="Wrap long lines on/off"),
        Binding(
            "escape",
            "close_find",
            "Close find",
            show=False,
            id="logs.close_find",
            tooltip="Leave the find field",
        ),
    ]

    def __init__(self, bot: str, service: str = "gateway") -> None:
        super().__init__()
        self.bot = bot
        self.service = service if service in LOG_SERVICES else "gateway"
        self._started = False
        self.buffer = LogBuffer()
        self.wrap = False
        self.query_text = ""
        self.matches: list[int] = []
        self.match = -1  # index into self.matches
        self._width = 0

    def compose(self) -> ComposeResult:
        with Horizontal(id="logs-bar"):
            yield Select(
                [(s, s) for s in LOG_SERVICES],
                value=self.service,
                allow_blank=False,
                id="logs-service",
            )
            yield Input(placeholder="find (plain text, enter)", id="logs-find")
        yield Log(max_lines=None, id="logs-view", auto_scroll=True)
        yield Static("", id="logs-status")

    @property
    def log_view(self) -> Log:
        return self.query_one("#logs-view", Log)

    def activate(self) -> None:
        if not self._started:
            self._started = True
            self._follow(self.service)
        self.log_view.focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # n/N belong to a search; without one they reach the bot's keys (n: snapshot).
        if action == "next_match":
            return bool(self.query_text)
        if action == "close_find":  # else escape goes back to the fleet
            return self.screen.focused is self.query_one("#logs-find", Input)
        return True

    # --- lines ---------------------------------------------------------------

    def _width_now(self) -> int:
        return max(1, self.log_view.scrollable_content_region.width - 1)

    def _add(self, text: str) -> None:
        if self.buffer.add(text):
            if self.buffer.trim():
                self._redraw()
            else:
                self.log_view.write_lines(rows_of(text, self._width, self.wrap))
        self._show_status()

    def _redraw(self) -> None:
        log = self.log_view
        self._width = self._width_now()
        log.clear()
        log.write_lines(self.buffer.rows(self._width, self.wrap))

    def on_resize(self, _event: events.Resize) -> None:
        if self.wrap and self._width_now() != self._width:
            self._redraw()
        self._width = self._width_now()

    def show_service(self, service: str) -> None:
        """Switch to `service`'s log (the Select follows, and so the stream)."""
        if service in LOG_SERVICES:
            self.query_one("#logs-service", Select).value = service

    @on(Select.Changed, "#logs-service")
    def _service(self, event: Select.Changed) -> None:
        if event.value != self.service and isinstance(event.value, str):
            self.service = event.value
            self.action_clear()
            if self._started:
                self._follow(self.service)

    def action_clear(self) -> None:
        self.buffer.clear()
        self.matches, self.match = [], -1
        self.log_view.clear()
        self._show_status()

    # --- pause, wrap -----------------------------------------------------------

    def action_pause(self) -> None:
        log = self.log_view
        if self.buffer.paused:
            came = self.buffer.resume()
            rows = [row for line in came for row in rows_of(line, self._width, self.wrap)]
            log.auto_scroll = True
            log.write_lines(rows)
            if self.buffer.trim():
                self._redraw()
            log.scroll_end(animate=False)
        else:
            self.buffer.paused = True
            log.auto_scroll = False
        self._show_status()

    def action_wrap(self) -> None:
        self.wrap = not self.wrap
        self._redraw()
        if self.match >= 0:
            self._scroll_to_match()
        elif not self.buffer.paused:
            self.log_view.scroll_end(animate=False)
        self._show_status()

    # --- find ----------------------------------------------------------------

    def action_find(self) -> None:
        field = self.query_one("#logs-find", Input)
        field.add_class("-shown")
        self.screen.set_focus(field)

    def action_close_find(self) -> None:
        field = self.query_one("#logs-find", Input)
        if not self.query_text:
            field.remove_class("-shown")
        self.log_view.focus()

    async def on_key(self, event: events.Key) -> None:
        """Keys typed right after '/' reach the log (the focus moves only once
        '/' is handled): they are typed into the field, and Enter submits it,
        so none reaches the bot's keys (s starts the bot, x stops it)."""
        field = self.query_one("#logs-find", Input)
        if self.screen.focused is not field or event.key == "escape":
            return
        if event.is_printable and event.character:
            event.stop()
            field.insert_text_at_cursor(event.character)
        elif event.key == "enter":
            event.stop()
            await field.action_submit()

    @on(Input.Submitted, "#logs-find")
    def _find(self, event: Input.Submitted) -> None:
        event.stop()
        self.query_text = event.value
        self.matches = self.buffer.find(self.query_text)
        self.match = -1
        if not self.query_text:
            event.input.remove_class("-shown")
        self.log_view.focus()
        self.refresh_bindings()
        if self.matches:
            self.action_next_match(1)
        else:
            self._show_status()

    def action_next_match(self, step: int) -> None:
        self.matches = self.buffer.find(self.query_text)  # lines may have come or gone
        if not self.matches:
            self.match = -1
            self._show_status()
            return
        if self.match < 0:
            self.match = len(self.matches) - 1 if step > 0 else 0  # newest first
        else:
            self.match = (self.match + step) % len(self.matches)
        if not self.buffer.paused:
            self.action_pause()  # a match shown stays put: p resumes following
        self._scroll_to_match()
        self._show_status()

    def _scroll_to_match(self) -> None:
        row = self.buffer.row_of(self.matches[self.match], self._width, self.wrap)
        self.log_view.scroll_to(y=max(0, row - 2), animate=False)

    @property
    def match_line(self) -> str | None:
        """The line of the current match (what the status shows)."""
        if 0 <= self.match < len(self.matches) and self.matches[self.match] < len(
            self.buffer.lines
        ):
            return self.buffer.lines[self.matches[self.match]]
        return None

    # --- status --------------------------------------------------------------

    def _show_status(self) -> None:
        parts: list[str] = []
        if self.buffer.paused:
            parts.append(f"⏸ paused · {len(self.buffer.pending)} new lines (p resumes)")
        else:
            parts.append("following")
        parts.append("wrap on" if self.wrap else "wrap off")
        if self.query_text:
            if self.matches and self.match >= 0:
                parts.append(f"/{self.query_text}  {self.match + 1}/{len(self.matches)} (n/N)")
            else:
                parts.append(f"/{self.query_text}  no match")
        text = Text(" · ".join(parts))  # a Text: the query is never read as markup
        self.query_one("#logs-status", Static).update(text)

    @property
    def status_text(self) -> str:
        return str(self.query_one("#logs-status", Static).render())

    # --- the stream ----------------------------------------------------------

    @work(exclusive=True, group="logs", exit_on_error=False)
    async def _follow(self, service: str) -> None:
        config = self.app.configs.get(self.bot)
        if config is None:
            return
        self._width = self._width_now()
        self._add(f"── {self.bot}/{service} ──")
        try:
            runtime = self.app.runtimes.for_bot(config)
            async for line in runtime.logs(config, service, follow=True, tail=200):
                self._add(inert(line.text.rstrip("\n")))  # the agent's own output
        except CftuiError as exc:
            self._add(inert(f"logs not available: {exc}"))
            return
        self._add("── end of log stream ──")
