"""Short, fixed-width words for states and statuses in tables, and agent text
as a widget shows it (sizes and counts: `cftui.humanize`, shared with the CLI)."""

from __future__ import annotations

from rich.text import Text

from cftui.inert import inert
from cftui.runtime import status as states

# Header icon: a glyph every terminal font has (Textual's default ⭘ is not).
HEADER_ICON = "◆"

# state -> (glyph word, tone); tone picks a component style (ok/warn/bad/muted)
STATE_LOOK = {
    states.RUNNING: ("● running", "ok"),
    states.STARTING: ("◐ starting", "warn"),
    states.RESTARTING: ("◐ restarting", "warn"),
    states.UNHEALTHY: ("▲ unhealthy", "bad"),
    states.STOPPED: ("○ stopped", "muted"),
    states.KILLED: ("✖ killed", "bad"),
    states.MISSING: ("· missing", "muted"),
    states.UNKNOWN: ("? unknown", "warn"),
    "partial": ("◑ partial", "warn"),
    "absent": ("· absent", "muted"),
    "locked": ("■ LOCKED", "locked"),
}


def agent_text(value: object, style: str = "", *, multiline: bool = False) -> Text:
    """What the agent wrote (or the engine relayed), as a widget shows it:
    a `Text`, so no Rich markup in it is interpreted, with its control and
    format characters escaped, so none reaches the terminal."""
    return Text(inert(value, multiline=multiline), style=style)


def state_look(state: str) -> tuple[str, str]:
    return STATE_LOOK.get(state, (state, "muted"))


def status_tone(status: object) -> str:
    if not isinstance(status, int) or status == 0 or status >= 500:
        return "bad"
    if status >= 400:
        return "warn"
    return "ok"
