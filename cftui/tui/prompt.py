"""Ask for one line of text (a snapshot label, a new name)."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static


class PromptModal(ModalScreen[str | None]):
    """Dismisses with the text entered, or None on Escape."""

    DEFAULT_CSS = """
    PromptModal { align: center middle; background: $background 60%; }
    PromptModal > Vertical {
        width: 64; height: auto; border: thick $primary; background: $panel; padding: 1 2;
    }
    PromptModal Input { margin-top: 1; }
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="prompt.cancel", tooltip="Give up")]

    def __init__(self, question: str, value: str = "", placeholder: str = "") -> None:
        super().__init__()
        self.question = question
        self.value = value
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.question, markup=False)  # may name a snapshot
            yield Input(self.value, placeholder=self.placeholder, id="answer")

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)
