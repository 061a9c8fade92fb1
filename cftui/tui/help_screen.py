"""`?`: every key binding of the app, grouped by where it works."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEY_NAMES = {"question_mark": "?", "slash": "/", "delete": "del", "escape": "esc"}


def _key_label(binding: Binding) -> str:
    keys = (k.strip() for k in binding.key.split(","))
    return ", ".join(KEY_NAMES.get(k, k) for k in keys)


class HelpScreen(ModalScreen[None]):
    """Lists (scope, bindings) pairs the app hands it."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; background: $background 60%; }
    HelpScreen > VerticalScroll {
        width: 90; height: 90%; border: thick $primary; background: $panel; padding: 0 1;
    }
    """

    BINDINGS = [
        Binding("escape,question_mark,q", "close", "Close", id="help.close", tooltip="Close help"),
    ]

    def __init__(self, groups: list[tuple[str, list[Binding]]]) -> None:
        super().__init__()
        self.groups = groups

    def compose(self) -> ComposeResult:
        table = Table(expand=True, box=None, show_header=True, header_style="bold")
        table.add_column("Where", ratio=1, no_wrap=True)
        table.add_column("Key", ratio=1, no_wrap=True)
        table.add_column("Does", ratio=3)
        for scope, bindings in self.groups:
            for binding in bindings:
                what = binding.tooltip or binding.description or binding.action
                if binding.priority:
                    what += " (works everywhere, even in a text field)"
                table.add_row(scope, Text(_key_label(binding), style="bold"), what)
            table.add_row("", "", "")
        with VerticalScroll():
            yield Static(Text("Keys — ctrl+p opens the command palette", style="bold"))
            yield Static(table, id="help-table")

    def action_close(self) -> None:
        self.dismiss(None)
