"""Read-only mode (`cftui --readonly`): a colleague may look, not act.

The one list of what acts on the fleet, by action name, that every entry
point asks: the app's `run_action` (every key and footer click goes through
it), its footer check (acting keys are hidden), and the command palette.

The kill switch stays available (ctrl+k for the fleet, ctrl+x for one bot):
stopping a runaway bot is always allowed, it loses nothing, and only an
operator without `--readonly` can unlock and start it again.
"""

from __future__ import annotations

# Actions that change a bot, its stack, its files or its proposals.
ACTING = frozenset(
    {
        "bot",  # start/stop/restart/rebuild/snapshot/capture (kill: see below)
        "unlock",
        "unlock_bot",
        "save",  # config tab
        "revert",
        "allow",  # egress requests
        "dismiss",
        "promote_selected",
        "promote_all",
        "promote_from",
        "reject_selected",
        "reject_all",
        "accept_drift",
        "revert_drift",
        "create",  # snapshots tab
        "restore",
        "rename",
        "delete",
    }
)

# The app's own actions that only look (move, open, filter, reload...): not
# consulted by `refuses`, listed so that a test can require every binding of
# the app to be classified here, acting or viewing, as new ones are added.
VIEWING = frozenset(
    {
        "back",
        "cancel",
        "clear",
        "clear_filter",
        "close",
        "close_find",  # logs tab: find, next/prev match, pause, wrap
        "cycle_sort",
        "find",
        "first",
        "focus_filter",
        "follow",
        "help",
        "install_log",
        "mark",
        "move",
        "nav",
        "next_match",
        "open",
        "open_detail",
        "page",
        "pause",
        "quit",
        "refused",
        "reload",
        "tab",
        "toggle_detail",
        "toggle_theme",
        "validate",
        "wrap",
    }
)

# What read-only mode still does, named the way `action_bot` names it.
ALWAYS_ALLOWED = frozenset({"kill", "kill_all"})


def _verb(action: str, parameters: tuple[object, ...]) -> str:
    """`bot('start')` is the verb `start`; any other action is its own verb."""
    if action == "bot" and parameters:
        return str(parameters[0])
    return action


def refuses(action: str, parameters: tuple[object, ...] = ()) -> bool:
    """Whether read-only mode refuses this action."""
    verb = _verb(action, parameters)
    if verb in ALWAYS_ALLOWED:
        return False
    return action in ACTING or verb in ACTING


def refusal(action: str, parameters: tuple[object, ...] = ()) -> str:
    """The one line a refused action gets."""
    verb = _verb(action, parameters).replace("_", " ")
    return f"read-only mode: {verb} refused (only viewing and the kill switch are allowed)"
