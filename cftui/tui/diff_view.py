"""A unified diff as the operator reads it: added, removed, hunk and header
lines in the theme's colours, every line inert (the agent wrote both the
paths in the headers and the content), cut at a bound so that a huge
proposal costs the screen no more than a few thousand lines."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import ScrollableContainer
from textual.widgets import Static

from cftui.inert import inert

# More than this many lines and the view says where to read the rest.
MAX_SHOWN_LINES = 3000

_HEADERS = ("diff --git ", "--- ", "+++ ", "new file mode ", "deleted file", "new mode ")


def _tone(line: str) -> str:
    """Which component class one diff line takes."""
    if line.startswith(_HEADERS):
        return "header"
    if line.startswith("@@"):
        return "hunk"
    if line.startswith("+"):
        return "added"
    if line.startswith("-"):
        return "removed"
    if line.startswith(("#", "\\", "Binary files ")):
        return "note"
    return ""


class DiffView(ScrollableContainer):
    """Scrolls both ways; lines are never wrapped, so columns stay columns."""

    COMPONENT_CLASSES = {
        "diff--added",
        "diff--removed",
        "diff--hunk",
        "diff--header",
        "diff--note",
    }

    DEFAULT_CSS = """
    DiffView { height: 1fr; border-left: solid $panel-lighten-2; }
    DiffView > #diff-text { width: auto; padding: 0 1; }
    DiffView > .diff--added { color: $success; }
    DiffView > .diff--removed { color: $error; }
    DiffView > .diff--hunk { color: $accent; }
    DiffView > .diff--header { text-style: bold; }
    DiffView > .diff--note { color: $text-muted; text-style: italic; }
    """

    def compose(self) -> ComposeResult:
        yield Static("", id="diff-text")

    def show_message(self, text: Text | str) -> None:
        """A note in place of a diff (a refusal, an error, nothing selected)."""
        shown = text if isinstance(text, Text) else Text(inert(text, multiline=True))
        self.query_one("#diff-text", Static).update(shown)
        self.scroll_home(animate=False)

    def show_diff(self, diff: str, *, heading: str = "", rest_hint: str = "") -> None:
        """`diff` as highlighted lines; `rest_hint` says where to read what
        is cut off past MAX_SHOWN_LINES."""
        out = Text(no_wrap=True, overflow="ignore")
        if heading:
            out.append(inert(heading, multiline=True) + "\n\n", style="bold")
        lines = diff.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        styles = {t: self.get_component_rich_style(f"diff--{t}") for t in _TONES}
        for line in lines[:MAX_SHOWN_LINES]:
            tone = _tone(line)
            out.append(inert(line.replace("\t", "    ")), style=styles[tone] if tone else "")
            out.append("\n")
        if len(lines) > MAX_SHOWN_LINES:
            cut = len(lines) - MAX_SHOWN_LINES
            out.append(f"… {cut} more lines. {rest_hint}".rstrip(), style=styles["note"])
        if not lines:
            out.append("(no textual difference)", style=styles["note"])
        self.query_one("#diff-text", Static).update(out)
        self.scroll_home(animate=False)


_TONES = ("added", "removed", "hunk", "header", "note")
