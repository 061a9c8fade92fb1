"""The save directory's dependency files as promotable changes.

The gateway writes `workspace/<bot>_save/` in `code/` itself (a writable
path), not in the proposals tree, so the scan of the tree never sees its
`package.json`. A promotion still goes through the one path every change
takes (`promote.commit_files`: the bytes read here are the bytes committed,
checked against git's staged ids); this module only supplies those changes:
each dependency file of the save directory whose bytes differ from the
approved commit's, read with no link followed and bounded in size.

One the bot cannot have promoted: a package.json that is not a valid
dependency list (its one-line reason is the refusal), and a file the bot
proposes twice, in its save directory and in the proposals tree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cftui.deps.declared import save_dir
from cftui.deps.manifest import LOCKFILE, MANIFEST, MAX_BYTES
from cftui.proposal_tree import approved
from cftui.proposals.content import blob_id, is_binary, line_counts
from cftui.proposals.model import Change, Proposals, Refusal, Status
from cftui.securefs import UnsafeFile, read_agent_file

_LIMITS = {MANIFEST: MAX_BYTES, LOCKFILE: MAX_BYTES * 64}


def paths(bot: str) -> list[str]:
    """The dependency files of the save directory, relative to `code/`."""
    return [f"{save_dir(bot)}/{name}" for name in _LIMITS]


@dataclass
class SaveChanges:
    """What the save directory adds to a promotion's choice."""

    changes: list[Change] = field(default_factory=list)
    contents: dict[str, bytes] = field(default_factory=dict)
    refused: list[Refusal] = field(default_factory=list)  # never promoted; named, they refuse


def changes(code: Path, found: Proposals) -> SaveChanges:
    """The save directory's dependency files that differ from the approved
    HEAD, as changes with their bytes; those that cannot be promoted as
    refusals (so a hostile file blocks only its own promotion)."""
    out = SaveChanges()
    deps = found.dependencies
    if deps is None:
        return out
    if deps.note:
        out.refused = [Refusal(p, deps.note) for p in paths(found.bot)]
        return out
    tree = approved.tree(code, found.approved)
    for rel, limit in zip(paths(found.bot), _LIMITS.values(), strict=True):
        try:
            data = read_agent_file(code, rel, limit)
        except UnsafeFile as exc:
            out.refused.append(Refusal(rel, str(exc)))
            continue
        except OSError as exc:
            out.refused.append(Refusal(rel, f"cannot read it: {exc.strerror or exc}"))
            continue
        want = tree.get(rel)
        sha = None if data is None else blob_id(data)
        if (want is None and data is None) or (want is not None and want.sha == sha):
            continue
        if found.change(rel) is not None or found.refusal(rel) is not None:
            out.refused.append(
                Refusal(
                    rel,
                    "proposed both in the save directory and in the proposals tree: reject one",
                )
            )
            continue
        old = None if want is None else approved.blob(code, want.sha)
        added, removed = line_counts(old, data)
        status: Status = "added" if want is None else ("removed" if data is None else "changed")
        if data is not None:
            out.contents[rel] = data
        out.changes.append(
            Change(
                rel,
                status,
                None if data is None else len(data),
                None if old is None else len(old),
                added,
                removed,
                binary=data is not None and is_binary(data),
                sha=sha,
            )
        )
    return out
