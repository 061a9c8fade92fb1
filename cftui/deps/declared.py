"""What a bot may have installed: the dependency list of its approved
revision, and how the save directory the gateway writes differs from it.

The save directory (`workspace/<bot>_save/`) is one of the gateway's
writable paths: its files in `code/` are whatever the agent last wrote.
So the list that counts is the one committed on the approved branch, read
from the approved HEAD through the one host git (`proposal_tree.approved`),
never from the files on disk. The files on disk are read only to show the
operator what the bot wants (a dependency change), as hostile input: no
link followed, bounded size, names validated, one-line reasons.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cftui.deps.manifest import LOCKFILE, MANIFEST, MAX_BYTES, Declared, ManifestError, parse
from cftui.errors import CftuiError
from cftui.proposal_tree import approved
from cftui.securefs import UnsafeFile, read_agent_file

DepStatus = Literal["added", "removed", "changed"]
# npm's per-project settings (the registry): approved like the list itself.
NPMRC = ".npmrc"


def save_dir(bot: str) -> str:
    """The save directory, relative to `code/` (fleet.DEFAULT_WRITABLE's)."""
    return f"workspace/{bot}_save"


@dataclass(frozen=True)
class ApprovedDeps:
    """The approved revision's package.json and lockfile bytes (None: absent)."""

    commit: str
    manifest: bytes | None
    lockfile: bytes | None
    npmrc: bytes | None = None  # the approved registry settings, if any

    def files(self) -> dict[str, bytes]:
        """What the installer is given: the approved files present."""
        named = {MANIFEST: self.manifest, LOCKFILE: self.lockfile, NPMRC: self.npmrc}
        return {name: data for name, data in named.items() if data is not None}

    @property
    def declared(self) -> bool:
        return self.manifest is not None

    def digest(self) -> str:
        """What the installer's cache is keyed by: both files' bytes."""
        h = hashlib.sha256()
        for part in (self.manifest, self.lockfile, self.npmrc):
            h.update(b"-" if part is None else b"+%d:" % len(part))
            h.update(part or b"")
        return h.hexdigest()


@dataclass(frozen=True)
class DepChange:
    """One package the save directory's package.json declares differently."""

    name: str
    status: DepStatus
    approved: str | None  # the approved version spec; None when added
    proposed: str | None  # the save directory's; None when removed


@dataclass
class DepProposal:
    """How the save directory's dependency files differ from the approved ones."""

    path: str  # the package.json, relative to code/
    changes: list[DepChange] = field(default_factory=list)
    lockfile_changed: bool = False
    note: str | None = None  # why the save directory's file cannot be read

    @property
    def pending(self) -> bool:
        return bool(self.changes or self.lockfile_changed or self.note)


def approved_deps(code: Path, bot: str, head: str | None = None) -> ApprovedDeps:
    """The dependency files of the approved HEAD (or commit `head`), from git:
    only their three entries are listed, never the whole tree (a scan of a
    large tree pays nothing for them)."""
    head = head or approved.head(code)
    base = save_dir(bot)
    names = (MANIFEST, LOCKFILE, NPMRC)
    out = approved.run_bytes(
        code, "--literal-pathspecs", "ls-tree", "-z", head, "--", *(f"{base}/{n}" for n in names)
    )
    found: dict[str, bytes] = {}
    for record in out.split(b"\0"):
        meta, _, raw_path = record.partition(b"\t")
        if not raw_path:
            continue
        mode, kind, sha = meta.split(b" ")
        if kind != b"blob" or int(mode, 8) not in (approved.REGULAR, approved.EXECUTABLE):
            continue
        found[raw_path.decode("utf-8", "surrogateescape").rpartition("/")[2]] = approved.blob(
            code, sha.decode()
        )
    return ApprovedDeps(head, found.get(MANIFEST), found.get(LOCKFILE), found.get(NPMRC))


def approved_declared(deps: ApprovedDeps, bot: str) -> Declared | None:
    """The approved list parsed (None when none is committed); ManifestError
    when the committed file is not a list npm could install."""
    if deps.manifest is None:
        return None
    return parse(deps.manifest, f"{save_dir(bot)}/{MANIFEST} (approved)")


def proposed(code: Path, bot: str, head: str | None = None) -> DepProposal:
    """The save directory's dependency files against the approved ones."""
    deps = approved_deps(code, bot, head)
    rel = f"{save_dir(bot)}/{MANIFEST}"
    result = DepProposal(rel)
    try:
        mine = read_agent_file(code, rel, MAX_BYTES)
        lock = read_agent_file(code, f"{save_dir(bot)}/{LOCKFILE}", MAX_BYTES * 64)
    except UnsafeFile as exc:
        result.note = str(exc)
        return result
    except OSError as exc:
        result.note = f"cannot read {rel}: {exc.strerror or exc}"
        return result
    result.lockfile_changed = lock != deps.lockfile
    if mine == deps.manifest:
        return result
    try:
        old = approved_declared(deps, bot)
        new = None if mine is None else parse(mine, rel)
    except ManifestError as exc:
        result.note = str(exc)
        return result
    result.changes = diff(old, new)
    return result


def diff(old: Declared | None, new: Declared | None) -> list[DepChange]:
    """Added, removed and version-changed packages, by name."""
    a = old.dependencies if old else {}
    b = new.dependencies if new else {}
    out = [DepChange(n, "added", None, b[n]) for n in b if n not in a]
    out += [DepChange(n, "removed", a[n], None) for n in a if n not in b]
    out += [DepChange(n, "changed", a[n], b[n]) for n in a if n in b and a[n] != b[n]]
    return sorted(out, key=lambda c: c.name)


def scan_note(code: Path, bot: str, head: str | None = None) -> DepProposal | None:
    """What `cftui proposals` shows: the dependency proposal when there is
    one, None when the save directory says what the approved tree says."""
    try:
        found = proposed(code, bot, head)
    except CftuiError as exc:
        found = DepProposal(f"{save_dir(bot)}/{MANIFEST}", note=str(exc).splitlines()[0])
    return found if found.pending else None
