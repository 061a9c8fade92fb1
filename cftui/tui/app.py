"""The Textual app (placeholder until the TUI lands)."""

from __future__ import annotations

from cftui.errors import NotYetAvailable
from cftui.fleet import FleetHome


def run_app(home: FleetHome, open_bot: str | None = None, open_tab: str | None = None) -> int:
    raise NotYetAvailable("the TUI is not yet available in this version of cftui")
