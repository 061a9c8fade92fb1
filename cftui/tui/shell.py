"""The shell key (`s`, as in k9s): the app steps aside for `cftui shell BOT`
and comes back when the shell exits.

The command is the runtime's own (`Runtime.shell_argv`, the one `cftui
shell` runs), in the bot's gateway. The app is suspended meanwhile (Textual
gives the terminal back, then redraws), so the runner is the one seam a
Pilot test replaces: a headless app has no terminal to hand over.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cftui.errors import UsageError

if TYPE_CHECKING:
    from textual.app import App

    from cftui.runtime.status import BotStatus

SHELL_SERVICE = "gateway"

# How the app runs the shell's argv: it returns the shell's exit status.
Runner = Callable[["App[Any]", list[str]], int]


def run_suspended(app: App[Any], argv: list[str]) -> int:
    """The terminal handed to `argv` until it exits, the app suspended."""
    with app.suspend():
        try:
            return subprocess.run(argv, check=False).returncode
        except OSError as exc:
            raise UsageError(f"cannot run {argv[0]}: {exc.strerror}") from None


def not_running(bot: str, status: BotStatus | None) -> str | None:
    """Why there is no shell to open in `bot` now (one line), or None."""
    service = status.services.get(SHELL_SERVICE) if status else None
    if service is None or not service.up:
        state = service.state if service else "not known yet"
        return f"shell: {bot}'s {SHELL_SERVICE} is not running ({state}): start it with S"
    return None


def outcome(bot: str, code: int) -> str:
    """What the toast says when the app is back."""
    left = f"left the shell in {bot}'s {SHELL_SERVICE}"
    return left if code in (0, 130) else f"{left} (exit status {code})"
