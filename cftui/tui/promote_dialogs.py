"""The Proposals tab's promotion dialogs: the confirmation of a promotion,
with its commit message (the CLI's `-m`, prefilled, editable), and the
question `promote --from` asks first (which REMOTE/BRANCH).

Both keep ConfirmModal's rule: the focus starts on Cancel, so Enter or
Escape never promotes by accident; Enter in the text field only moves on to
the Promote button. What they show may name the agent's files and commit
subjects: it reaches the screen with `markup=False`, made inert by the
caller.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from cftui.errors import UsageError
from cftui.inert import inert

_CSS = """
{name} {{ align: center middle; background: $background 60%; }}
{name} > Vertical {{
    width: 80; height: auto; max-height: 90%;
    border: thick $warning; background: $panel; padding: 1 2;
}}
{name} #question {{ margin-bottom: 1; }}
{name} Input {{ margin-bottom: 1; }}
{name} #problem {{ color: $text-error; height: auto; }}
{name} Horizontal {{ height: auto; align-horizontal: right; }}
{name} Button {{ margin-left: 2; }}
"""


class PromoteModal(ModalScreen[str | None]):
    """Ask before a promotion, with its commit message: dismisses with the
    message (stripped, never empty) or None."""

    DEFAULT_CSS = _CSS.format(name="PromoteModal")

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="promote.cancel", tooltip="Promote nothing"),
    ]

    def __init__(self, question: str, message: str) -> None:
        super().__init__()
        self.question = question
        self.message = message

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.question, id="question", markup=False)  # names agent files
            yield Label("Commit message:")
            yield Input(self.message, id="message", select_on_focus=False)
            yield Static("", id="problem", markup=False)
            with Horizontal():
                yield Button("Cancel", id="cancel", variant="primary")
                yield Button("Promote", id="confirm", variant="error")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    @on(Input.Submitted, "#message")
    def _submitted(self) -> None:
        self.query_one("#confirm", Button).focus()

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#confirm")
    def _confirm(self) -> None:
        message = self.query_one("#message", Input).value.strip()
        if not message:
            self.query_one("#problem", Static).update("A promotion needs a commit message.")
            self.query_one("#message", Input).focus()
            return
        self.dismiss(message)


class PromoteFromModal(ModalScreen[str | None]):
    """Ask which REMOTE/BRANCH to fast-forward the approved branch to;
    dismisses with it (checked as `cftui promote --from` checks it) or None.
    What it would bring is shown next, in a confirmation, once fetched."""

    DEFAULT_CSS = _CSS.format(name="PromoteFromModal")

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="promote_from.cancel", tooltip="Give up"),
    ]

    def __init__(self, bot: str, branch: str, value: str) -> None:
        super().__init__()
        self.bot = bot
        self.branch = branch
        self.value = value

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(
                f"Fast-forward {self.bot}'s approved branch {inert(self.branch)} to a branch "
                "a human reviewed and merged elsewhere (cftui promote --from).\n\n"
                "Which REMOTE/BRANCH? It is fetched, and what it brings is shown before "
                "anything changes.",
                id="question",
                markup=False,
            )
            yield Input(self.value, placeholder="origin/main", id="source")
            yield Static("", id="problem", markup=False)
            with Horizontal():
                yield Button("Cancel", id="cancel", variant="primary")
                yield Button("Fetch", id="confirm", variant="warning")

    def on_mount(self) -> None:
        self.query_one("#source", Input).focus()

    @on(Input.Submitted, "#source")
    @on(Button.Pressed, "#confirm")
    def _confirm(self) -> None:
        from cftui.proposals.promote import parse_source

        spec = self.query_one("#source", Input).value.strip()
        try:
            parse_source(spec)
        except UsageError as exc:
            self.query_one("#problem", Static).update(inert(str(exc)))
            return
        self.dismiss(spec)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
