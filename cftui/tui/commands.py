"""The command palette (ctrl+p): every bot action for every bot, the kill
switch, unlock, opening any bot's tab, and the actions on its proposals."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

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
        yield "Kill the whole fleet", app.action_kill_all, "the kill switch (ctrl+k)"
        yield "Unlock the fleet", app.action_unlock, "lift the kill switch (asks first)"
        yield "Help: every key", app.action_help, "?"
        for bot in getattr(app, "bot_names", ()):
            for action in ACTIONS:
                title = f"{action.capitalize()} {bot}"
                yield title, partial(app.run_bot_action, bot, action), HELP[action]
            unlock = partial(app.action_unlock, [bot])
            yield f"Unlock {bot}", unlock, "lift the kill switch on this bot only (asks first)"
            for tab in TABS:
                yield f"Open {bot}: {tab}", partial(app.open_bot, bot, tab), f"{bot}'s {tab} tab"
            for title, action, help_text in PROPOSAL_COMMANDS:
                command = partial(app.proposals_command, bot, action)
                yield f"{title} {bot}", command, f"{help_text} (asks first)"

    async def discover(self) -> Hits:
        for title, callback, help_text in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, callback, help_text in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
