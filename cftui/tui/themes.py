"""The app's light theme: Textual's light theme with state colours dark
enough to read. Its own green on its grey was about 1.6:1 (`● up` under
tmux's 256 colours, issue #22); these keep at least 4.5:1 on the surfaces
the tables sit on in true colour, and 3.9:1 quantised to 256 colours (that
palette has no darker amber than olive #5f5f00; green and red keep 4.6:1)."""

from __future__ import annotations

from dataclasses import replace

from textual.theme import BUILTIN_THEMES, Theme

DARK = "textual-dark"
LIGHT = "cftui-light"

LIGHT_THEME: Theme = replace(
    BUILTIN_THEMES["textual-light"],
    name=LIGHT,
    success="#116329",
    warning="#5C3900",
    error="#8B0A1F",
)
