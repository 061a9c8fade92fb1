"""Progress of a long operation (an image build, a snapshot, a restore).

A leaf module: the domain reports through a `Progress` callback, and the two
faces show it (the CLI with `rich.progress`, the TUI with a `ProgressBar`),
so the runtimes, snapshots and faces share this without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ProgressEvent:
    """One step of a long operation (an image build, a snapshot)."""

    task: str
    done: float = 0
    total: float | None = None
    message: str = ""


Progress = Callable[[ProgressEvent], None]


def no_progress(_event: ProgressEvent) -> None:
    """The progress callback for callers that show none."""
