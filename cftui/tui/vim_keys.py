"""`j`/`k` move wherever a list or a pane moves, on every screen.

The screen holds the binding, so the focused widget's own keys win (the
traffic view binds j/k itself, an input or the config editor types them) and
every other list (fleet, capture, snapshots, proposals) and scroller (logs,
detail panes, overview) moves the same way. `k` does nothing else anywhere:
it used to kill the selected bot, and `j` then `k` to move back up killed it.
"""

from __future__ import annotations

from textual.binding import Binding

NAV_BINDINGS = [
    Binding("j", "nav(1)", "Down", show=False, id="nav.down", tooltip="Next row / scroll down"),
    Binding("k", "nav(-1)", "Up", show=False, id="nav.up", tooltip="Previous row / scroll up"),
]


class VimNavMixin:
    """For a Screen: `action_nav(step)` moves the focused list or scroller."""

    def action_nav(self, step: int) -> None:
        widget = getattr(self, "focused", None)  # the Screen's (a reactive on Screen)
        names = ("cursor_down", "scroll_down") if step > 0 else ("cursor_up", "scroll_up")
        for name in names:
            action = getattr(widget, f"action_{name}", None)
            if action is not None:
                action()
                return
