"""The banner no operator can miss: the kill switch holds bots locked."""

from __future__ import annotations

from textual.widgets import Static


class LockedBanner(Static):
    """Shown on every screen while any bot is locked; hidden otherwise."""

    DEFAULT_CSS = """
    LockedBanner {
        display: none;
        width: 100%;
        height: 3;
        content-align: center middle;
        text-style: bold;
        background: $error;
        color: $text;
        border: heavy $error-darken-2;
        padding: 0 1;
    }
    LockedBanner.-locked { display: block; }
    """

    def on_mount(self) -> None:
        self.watch(self.app, "locked", self._show, init=True)

    def _show(self, locked: frozenset[str]) -> None:
        self.set_class(bool(locked), "-locked")
        if not locked:
            self.update("")
            return
        total = len(getattr(self.app, "bot_names", ())) or len(locked)
        names = ", ".join(sorted(locked))
        if len(names) > 40:
            names = names[:39] + "…"
        scope = "WHOLE FLEET LOCKED" if len(locked) >= total else f"{len(locked)} BOT(S) LOCKED"
        self.update(
            f"■ KILL SWITCH ENGAGED ■ {scope}: {names} · nothing restarts until you unlock (U)"
        )
