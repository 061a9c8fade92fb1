"""The key footer of the fleet and bot screens: Textual's, built again only
when what it shows changes.

Textual's footer throws its keys away and builds them again on every
`refresh_bindings` (each row the fleet's cursor enters, each lock, each
focus change), one rebuild per call even when several come in one frame,
and styles each new key three times (born compact, then made not compact
by the footer's binding). Here a key is born as the footer draws it (one
styling), calls in one frame make one check, and a check that finds the
same keys, states and labels as on screen keeps them: the fleet's first
paint and every j/k press styled fourteen keys for nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.widgets import Footer as TextualFooter

if TYPE_CHECKING:
    from textual.app import ComposeResult
    from textual.screen import Screen


class Footer(TextualFooter):
    """`textual.widgets.Footer`, rebuilt only when its keys change."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._check_pending = False
        self._drawn: tuple | None = None  # the keys as last composed

    def _keys(self) -> tuple:
        """Everything the footer draws from: each active binding with its
        key as displayed, its label, tooltip and whether it is enabled."""
        app = self.app
        keys = [
            (key, b.key, app.get_key_display(b), b.description, b.action, b.show, b.group, on, tip)
            for key, (_node, b, on, tip) in self.screen.active_bindings.items()
        ]
        return (*keys, self.compact, self.show_command_palette)

    def compose(self) -> ComposeResult:
        if self._bindings_ready:
            self._drawn = self._keys()
        for widget in super().compose():
            # A key that follows the footer's compactness is born with it
            # (Textual's are born compact, then restyled twice when the
            # footer's value reaches them). The palette's key follows
            # nothing (it stays compact); labels and groups have no such
            # setting.
            follows = "compact" in type(widget).__dict__
            if follows and not widget.has_class("-command-palette"):
                widget.set_reactive(TextualFooter.compact, self.compact)
                widget.set_class(self.compact, "-compact", update=False)
            yield widget

    def bindings_changed(self, screen: Screen) -> None:
        self._bindings_ready = True
        if not screen.app.app_focus:
            return
        if self.is_attached and screen is self.screen and not self._check_pending:
            self._check_pending = True
            self.call_after_refresh(self._rebuild_if_changed)

    async def _rebuild_if_changed(self) -> None:
        self._check_pending = False
        if self.is_attached and self._keys() != self._drawn:
            await self.recompose()
