"""What a scan of the proposals finds: plain values the CLI prints, the TUI
shows and `--json` writes, so each face says the same thing."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from cftui.deps.declared import DepProposal

Status = Literal["added", "changed", "removed"]


@dataclass(frozen=True)
class Change:
    """One file that differs from the approved tree."""

    path: str
    status: Status
    size: int | None  # the proposed file's bytes; None when removed
    old_size: int | None  # the approved file's bytes; None when added
    lines_added: int | None  # None: binary, or too large to count
    lines_removed: int | None
    binary: bool = False
    executable: bool = False
    sha: str | None = None  # git blob id of the proposed content, as scanned


@dataclass(frozen=True)
class Refusal:
    """An entry of the proposals tree that can never be promoted, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class AgentCommit:
    """A commit the agent made in the proposals tree's own git."""

    id: str
    author: str
    date: str  # RFC 3339 UTC
    summary: str


@dataclass
class Proposals:
    """Everything the bot proposes, against the approved HEAD."""

    bot: str
    approved: str  # commit id of the approved HEAD
    branch: str
    seeded: bool = True
    changes: list[Change] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    commits: list[AgentCommit] = field(default_factory=list)
    commits_note: str | None = None  # why the commits could not all be read
    config_drift: list[str] = field(default_factory=list)  # changed keys of openclaw.json
    # The save directory's package.json against the approved one (None: the same).
    dependencies: DepProposal | None = None

    @property
    def count(self) -> int:
        """What the fleet table shows: files, and the config and the
        dependency list, each if it differs."""
        return (
            len(self.changes)
            + (1 if self.config_drift else 0)
            + (1 if self.dependencies is not None else 0)
        )

    def change(self, path: str) -> Change | None:
        return next((c for c in self.changes if c.path == path), None)

    def refusal(self, path: str) -> Refusal | None:
        return next((r for r in self.refused if r.path == path), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "bot": self.bot,
            "approved": self.approved,
            "branch": self.branch,
            "seeded": self.seeded,
            "changes": [asdict(c) for c in self.changes],
            "refused": [asdict(r) for r in self.refused],
            "commits": [asdict(c) for c in self.commits],
            "commits_note": self.commits_note,
            "config_drift": self.config_drift,
            "dependencies": None if self.dependencies is None else asdict(self.dependencies),
        }
