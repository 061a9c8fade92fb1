"""The command palette (ctrl+p): every bot action for every bot, the kill
switch, unlock, opening any bot's tab, and the actions on its proposals.
In read-only mode (`cftui.tui.readonly`) the acting ones are not offered."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

from cftui.tui import readonly
from cftui.tui.bot_actions import ACTIONS
from cftui.tui.tabs import TABS

if TYPE_CHECKING:
    from cftui.tui.app import ClawFactoryApp

HELP = {
    "start": "start the stack",
    "stop": "stop the stack cleanly",
    "restart": "stop, then start",
    "rebuild": "rebuild the gateway image and restart",
    "snapshot": "encrypted snapshot of state/",
    "capture": "turn MITM capture on or off",
    "shell": "a shell in its gateway (s; the app returns when it exits)",
    "kill": "kill now and lock (ctrl+x, no confirmation)",
}

# (title, tab action, help): each opens the Proposals tab, which asks first.
PROPOSAL_COMMANDS = (
    ("Promote all proposals of", "promote_all", "review, then commit them to the approved code"),
    ("Reject all proposals of", "reject_all", "put the proposals back to the approved code"),
    (
        "Promote a merged branch into",
        "promote_from",
        "fast-forward to REMOTE/BRANCH (promote --from)",
    ),
    ("Accept the config drift of", "accept_drift", "the gateway's openclaw.json becomes approved"),
    ("Revert the config drift of", "revert_drift", "write the approved openclaw.json back"),
)


class FleetCommands(Provider):
    """Commands built from the fleet as the app knows it now."""

    def _commands(self) -> Iterator[tuple[str, Callable[[], object], str]]:
        app = cast("ClawFactoryApp", self.app)  # Provider types it App[object]
        for command in self._all_commands(app):
            title, callback, help_text, action, params = command
            if not (app.read_only and readonly.refuses(action, params)):
                yield title, callback, help_text

    def _all_commands(
        self, app: ClawFactoryApp
    ) -> Iterator[tuple[str, Callable[[], object], str, str, tuple[object, ...]]]:
        """Each command with the action it is (as `readonly` names them)."""
        kill_all = app.action_kill_all
        yield "Kill the whole fleet", kill_all, "the kill switch (ctrl+k)", "kill_all", ()
        unlock_all = app.action_unlock
        yield "Unlock the fleet", unlock_all, "lift the kill switch (asks first)", "unlock", ()
        yield "Help: every key", app.action_help, "?", "help", ()
        for bot in getattr(app, "bot_names", ()):
            for action in ACTIONS:
                title = f"{action.capitalize()} {bot}"
                run = partial(app.run_bot_action, bot, action)
                yield title, run, HELP[action], "bot", (action,)
            unlock = partial(app.action_unlock, [bot])
            help_unlock = "lift the kill switch on this bot only (asks first)"
            yield f"Unlock {bot}", unlock, help_unlock, "unlock", ()
            for tab in TABS:
                show = partial(app.open_bot, bot, tab)
                yield f"Open {bot}: {tab}", show, f"{bot}'s {tab} tab", "open", ()
            for title, action, help_text in PROPOSAL_COMMANDS:
                command = partial(app.proposals_command, bot, action)
                yield f"{title} {bot}", command, f"{help_text} (asks first)", action, ()

    async def discover(self) -> Hits:
        for title, callback, help_text in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, callback, help_text in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
