"""The lines a logs tab holds: pause, plain-text search and wrapping.

Kept apart from the widget so that the rules (what a pause counts, which
lines a search finds, how a line wraps) are plain code with no Textual in
it. Lines are stored already made inert (`cftui.inert`); a search is a
case-insensitive substring match, never a pattern or markup.
"""

from __future__ import annotations

import itertools
from collections import deque

from rich.cells import chop_cells

MAX_LINES = 5000
SLACK = 500  # lines past MAX_LINES before the oldest are dropped (and the view redrawn)


def rows_of(line: str, width: int, wrap: bool) -> list[str]:
    """The screen rows one line takes: itself, or its chunks of `width` cells."""
    if not wrap or width <= 0 or not line:
        return [line]
    return chop_cells(line, width)


class LogBuffer:
    """The shown lines, and the ones that came while paused (only counted
    on screen until resumed, then shown in order)."""

    def __init__(self, max_lines: int = MAX_LINES) -> None:
        self.max_lines = max_lines
        self.lines: deque[str] = deque()
        self.pending: list[str] = []
        self.paused = False

    def add(self, line: str) -> bool:
        """Take a line; True when it should be shown now (not paused)."""
        if self.paused:
            self.pending.append(line)
            del self.pending[: max(0, len(self.pending) - self.max_lines)]
            return False
        self.lines.append(line)
        return True

    def resume(self) -> list[str]:
        """Unpause; the lines that came meanwhile, now part of the shown ones."""
        self.paused = False
        came, self.pending = self.pending, []
        self.lines.extend(came)
        return came

    def trim(self) -> bool:
        """Drop the oldest lines once well past the limit; True if any went."""
        if len(self.lines) <= self.max_lines + SLACK:
            return False
        for _ in range(len(self.lines) - self.max_lines):
            self.lines.popleft()
        return True

    def clear(self) -> None:
        self.lines.clear()
        self.pending.clear()

    def find(self, query: str) -> list[int]:
        """Indexes of the shown lines holding `query` (any case)."""
        needle = query.casefold()
        if not needle:
            return []
        return [i for i, line in enumerate(self.lines) if needle in line.casefold()]

    def row_of(self, index: int, width: int, wrap: bool) -> int:
        """The screen row where line `index` starts."""
        if not wrap:
            return index
        shown = itertools.islice(self.lines, index)
        return sum(len(rows_of(line, width, wrap)) for line in shown)

    def rows(self, width: int, wrap: bool) -> list[str]:
        """Every shown line as screen rows."""
        return [row for line in self.lines for row in rows_of(line, width, wrap)]
