"""The actions on one bot, shared by the fleet screen (selected row) and the
bot screen (its bot): same keys, same palette entries, same code path."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.binding import Binding

if TYPE_CHECKING:
    from cftui.tui.app import ClawFactoryApp


BOT_BINDINGS = [
    Binding("s", "bot('start')", "Start", id="bot.start", tooltip="Start the bot's stack"),
    Binding("x", "bot('stop')", "Stop", id="bot.stop", tooltip="Stop the bot's stack cleanly"),
    Binding("r", "bot('restart')", "Restart", id="bot.restart", tooltip="Stop, then start"),
    Binding(
        "b", "bot('rebuild')", "Rebuild", id="bot.rebuild", tooltip="Rebuild the gateway image"
    ),
    Binding(
        "n",
        "bot('snapshot')",
        "Snapshot",
        id="bot.snapshot",
        tooltip="Encrypted snapshot of state/",
    ),
    Binding("c", "bot('capture')", "Capture", id="bot.capture", tooltip="Turn MITM capture on/off"),
    # A chord no navigation habit reaches (never a bare letter: `j` then `k`
    # to move back up killed a bot), the same on every screen; priority, so
    # that an input with focus cannot swallow it (as ctrl+k, the kill switch).
    Binding(
        "ctrl+x",
        "bot('kill')",
        "Kill bot",
        priority=True,
        id="bot.kill",
        tooltip="Kill this bot now (no confirmation) and lock it",
    ),
]

ACTIONS = ("start", "stop", "restart", "rebuild", "snapshot", "capture", "kill")


class BotActionsMixin:
    """For a Screen: `action_bot(name)` runs the action on `current_bot()`."""

    if TYPE_CHECKING:  # the screen it is mixed into is a Screen of this app

        @property
        def app(self) -> ClawFactoryApp: ...

    def current_bot(self) -> str | None:  # pragma: no cover - overridden
        raise NotImplementedError

    def action_bot(self, action: str) -> None:
        bot = self.current_bot()
        if bot is None:
            self.app.notify("no bot selected", severity="warning")
            return
        self.app.run_bot_action(bot, action)
