"""The logs tab: one service's log, followed live from the runtime."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Log, Select

from cftui.errors import CftuiError
from cftui.inert import inert
from cftui.runtime.base import SERVICES

if TYPE_CHECKING:
    from textual import getters

    from cftui.tui.app import ClawFactoryApp

MAX_LINES = 5000


class LogsTab(Vertical):
    """Pick a service; its last lines, then new ones as they come."""

    if TYPE_CHECKING:  # Textual types self.app as App[object]
        app = getters.app(ClawFactoryApp)

    DEFAULT_CSS = """
    LogsTab { height: 1fr; }
    LogsTab Select { width: 30; }
    LogsTab Log { height: 1fr; }
    """

    BINDINGS = [
        Binding("ctrl+l", "clear", "Clear", id="logs.clear", tooltip="Clear the shown lines"),
    ]

    def __init__(self, bot: str) -> None:
        super().__init__()
        self.bot = bot
        self.service = "gateway"
        self._started = False

    def compose(self) -> ComposeResult:
        yield Select(
            [(s, s) for s in SERVICES], value=self.service, allow_blank=False, id="logs-service"
        )
        yield Log(max_lines=MAX_LINES, id="logs-view", auto_scroll=True)

    def activate(self) -> None:
        if not self._started:
            self._started = True
            self._follow(self.service)
        self.query_one(Log).focus()

    @on(Select.Changed, "#logs-service")
    def _service(self, event: Select.Changed) -> None:
        if event.value != self.service and isinstance(event.value, str):
            self.service = event.value
            self.query_one(Log).clear()
            if self._started:
                self._follow(self.service)

    def action_clear(self) -> None:
        self.query_one(Log).clear()

    @work(exclusive=True, group="logs", exit_on_error=False)
    async def _follow(self, service: str) -> None:
        log = self.query_one(Log)
        config = self.app.configs.get(self.bot)
        if config is None:
            return
        log.write_line(f"── {self.bot}/{service} ──")
        try:
            runtime = self.app.runtimes.for_bot(config)
            async for line in runtime.logs(config, service, follow=True, tail=200):
                log.write_line(inert(line.text.rstrip("\n")))  # the agent's own output
        except CftuiError as exc:
            log.write_line(inert(f"logs not available: {exc}"))
            return
        log.write_line("── end of log stream ──")
