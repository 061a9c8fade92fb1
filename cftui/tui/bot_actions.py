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
    # A locked bot's start keys are off the footer; pressed, they say why.
    Binding(
        "s,r,b",
        "refused",
        show=False,
        id="bot.locked",
        tooltip="A bot the kill switch holds says why it does not start",
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

# Viewing, on both screens: the last dependency install's output (the Logs
# tab on its `installer` entry), one key from a start's progress. Off the
# footer (it would push ^k KILL ALL off at 120 columns): in help and the palette.
INSTALL_LOG_BINDING = Binding(
    "i",
    "install_log",
    "Install log",
    show=False,
    id="bot.install_log",
    tooltip="The last dependency install's output (npm's, through the egress)",
)

ACTIONS = ("start", "stop", "restart", "rebuild", "snapshot", "capture", "kill")
LOCKED_OUT = ("start", "restart", "rebuild")  # what the kill switch's lock refuses


class BotActionsMixin:
    """For a Screen: `action_bot(name)` runs the action on `current_bot()`."""

    if TYPE_CHECKING:  # the screen it is mixed into is a Screen of this app

        @property
        def app(self) -> ClawFactoryApp: ...

    def current_bot(self) -> str | None:  # pragma: no cover - overridden
        raise NotImplementedError

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The footer offers only what can be done: no start, restart or
        rebuild for a locked bot, no unlock for one that is not."""
        bot = self.current_bot()
        locked = bot is not None and bot in self.app.locked
        if action == "bot" and parameters and parameters[0] in LOCKED_OUT:
            return not locked
        if action in ("refused", "unlock_bot"):
            return locked
        return True

    def action_refused(self) -> None:
        bot = self.current_bot()
        self.app.notify(f"{bot} is locked by the kill switch: unlock (U) first", severity="error")

    def action_unlock_bot(self) -> None:
        bot = self.current_bot()
        if bot is not None:
            self.app.action_unlock([bot])

    def action_bot(self, action: str) -> None:
        bot = self.current_bot()
        if bot is None:
            self.app.notify("no bot selected", severity="warning")
            return
        self.app.run_bot_action(bot, action)
