"""The save directory's dependency files as promotable changes.

The gateway writes `workspace/<bot>_save/` in `code/` itself (a writable
path), not in the proposals tree, so the scan of the tree never sees its
`package.json`. A promotion still goes through the one path every change
takes (`promote.commit_files`: the bytes read here are the bytes committed,
checked against git's staged ids); this module only supplies those changes:
each dependency file of the save directory whose bytes differ from the
approved commit's, read with no link followed and bounded in size.

A reject puts them back as the approved commit has them (`put_back`), by
name, never through a link: the save directory is the gateway's, so only
its dependency files are touched, nothing else the bot saved there.

One the bot cannot have promoted: a package.json that is not a valid
dependency list (its one-line reason is the refusal), and a file the bot
proposes twice, in its save directory and in the proposals tree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cftui.deps.declared import save_dir
from cftui.deps.manifest import LOCKFILE, MANIFEST, MAX_BYTES
from cftui.errors import ProposalError
from cftui.proposal_tree import approved
from cftui.proposals.content import blob_id, is_binary, line_counts
from cftui.proposals.model import Change, Proposals, Refusal, Status
from cftui.securefs import (
    UnsafeFile,
    agent_dir,
    make_agent_dirs,
    read_agent_file,
    remove_agent_entry,
    write_agent_file,
)

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


def pending(code: Path, found: Proposals) -> list[str]:
    """The save directory's dependency files a reject can put back: those
    that differ from the approved commit, and those that cannot be read."""
    saved = changes(code, found)
    return [c.path for c in saved.changes] + [r.path for r in saved.refused]


def put_back(code: Path, bot: str, rels: list[str], head: str) -> list[str]:
    """Each named save-directory file as the approved commit `head` has it
    (removed when it has none): whatever stands at the name (a link, a fifo,
    a file of any size) is removed by name, never read or followed, then the
    committed bytes written, given to the directory's owner (the gateway's
    user). A link on the way to the save directory is refused in one line
    (UnsafeFile), nothing touched. The paths put back."""
    tree = approved.tree(code, head) if rels else {}
    done = []
    for rel in rels:
        try:
            if _put_back_one(code, bot, rel, tree):
                done.append(rel)
        except (UnsafeFile, ValueError) as exc:
            raise ProposalError(f"cannot reject {rel}: {exc}") from None
        except OSError as exc:
            raise ProposalError(f"cannot reject {rel}: {exc.strerror or exc}") from None
    return done


def _put_back_one(code: Path, bot: str, rel: str, tree: dict[str, approved.Blob]) -> bool:
    base = save_dir(bot)
    if rel not in paths(bot):
        raise ValueError(f"not a dependency file of {bot}'s save directory")
    with agent_dir(code, base):  # refuses a link anywhere on the way, before anything
        pass
    want = tree.get(rel)
    data = None
    if want is not None and want.mode in (approved.REGULAR, approved.EXECUTABLE):
        data = approved.blob(code, want.sha)
    removed = remove_agent_entry(code, rel)
    if data is not None:
        make_agent_dirs(code, base)
        mode = 0o755 if want is not None and want.mode == approved.EXECUTABLE else 0o644
        write_agent_file(code, rel, data, mode=mode)
    return removed or data is not None
