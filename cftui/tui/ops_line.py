"""One line saying what long operations are running and how far along."""

from __future__ import annotations

from textual.widgets import Static

from cftui.tui.formatting import agent_text


class OpsLine(Static):
    """Follows the app's `ops_text`; hidden when nothing runs."""

    DEFAULT_CSS = """
    OpsLine { height: 1; display: none; background: $boost; color: $text-muted; padding: 0 1; }
    OpsLine.-busy { display: block; }
    """

    def on_mount(self) -> None:
        self.watch(self.app, "ops_text", self._show, init=True)

    def _show(self, text: str) -> None:
        self.set_class(bool(text), "-busy")
        self.update(agent_text(text))  # progress lines quote the agent's build
