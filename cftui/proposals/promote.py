"""A promotion: what the bot proposed, committed on the approved branch.

The order protects the operator: refuse a locked bot (and stay cancellable
by the kill switch, `locks.operation`), scan, refuse what cannot be
promoted, snapshot the state, then write the files into `code/` and commit
them with the bot as author and the operator as committer (one step that a
kill lets finish, so `code/` is never left half-written). The commit holds
exactly the bytes the scan read and hashed: git's staged ids are checked
against them before the commit is made. It ends with an event in
`audit/events.jsonl` and says whether the image's build inputs changed, so
the caller rebuilds only then.

Refused entries are never promoted. `promote BOT` (everything) leaves them
in the proposals and lists them; `promote BOT PATH...` naming one of them
promotes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import re
import socket
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cftui import hostgit, locks, snapshots
from cftui.audit.events import record_event
from cftui.errors import CftuiError, ProposalError, UsageError
from cftui.fleet import BotConfig, FleetHome
from cftui.progress import Progress, ProgressEvent, no_progress
from cftui.proposal_tree import approved, seed
from cftui.proposal_tree.approved import EXECUTABLE, run, run_bytes
from cftui.proposals import mirror, save_deps
from cftui.proposals.model import Change, Refusal
from cftui.proposals.scan import scan_with_contents
from cftui.securefs import UnsafeFile, make_agent_dirs, remove_agent_entry, write_agent_file

if TYPE_CHECKING:
    from cftui.runtime.base import Runtime

_EVENT_PATHS = 200
_REMOTE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass
class PromoteResult:
    bot: str
    before: str
    commit: str
    paths: list[str]
    refused: list[Refusal] = field(default_factory=list)  # left in the proposals
    snapshot: str | None = None
    build_inputs_changed: bool = False
    source: str | None = None  # REMOTE/BRANCH of `promote --from`
    rebuilt: bool = False  # set by `rollout`
    restarted: bool = False
    notes: list[str] = field(default_factory=list)


def author(bot: str) -> str:
    return f"{bot} <{bot}@bots.clawfactory.invalid>"


def committer(code: Path) -> tuple[str, str]:
    """The operator: the approved repository's own `user.*` if set, else
    the login name at this host."""
    try:
        name = hostgit.git(code, "config", "user.name")
    except hostgit.GitError:
        name = ""
    try:
        email = hostgit.git(code, "config", "user.email")
    except hostgit.GitError:
        email = ""
    try:
        login = getpass.getuser()
    except (KeyError, OSError):
        login = "operator"
    return name or login, email or f"{login}@{socket.gethostname() or 'localhost'}"


def select(changes: list[Change], refused: list[Refusal], paths: Sequence[str]) -> list[Change]:
    """The changes named by `paths` (files, or directories holding them);
    all of them when `paths` is empty. Naming a refused path refuses all."""
    if not paths:
        return list(changes)
    chosen: dict[str, Change] = {}
    for raw in paths:
        want = raw.strip("/")
        if not want or want.startswith("../") or "/../" in f"/{want}/":
            raise UsageError(f"{raw!r} is not a path inside the proposals")
        bad = [r for r in refused if r.path == want or r.path.startswith(want + "/")]
        if bad:
            raise ProposalError(
                f"{bad[0].path} cannot be promoted: {bad[0].reason}; nothing was promoted"
            )
        hits = [c for c in changes if c.path == want or c.path.startswith(want + "/")]
        if not hits:
            raise UsageError(f"{raw!r} is not a proposal of this bot (see `cftui proposals`)")
        chosen.update((c.path, c) for c in hits)
    return sorted(chosen.values(), key=lambda c: c.path)


def build_inputs(code: Path) -> str | None:
    """The digest that decides whether the gateway image is rebuilt (the
    same one the image builder labels images with); None without one."""
    from cftui.runtime.images.gateway import gateway_source_hash

    try:
        return gateway_source_hash(code)
    except CftuiError:
        return None


async def promote(
    home: FleetHome,
    bot: BotConfig,
    paths: Sequence[str] = (),
    message: str | None = None,
    *,
    runtime: Runtime | None = None,
    progress: Progress = no_progress,
    reviewed: Mapping[str, str | None] | None = None,
) -> PromoteResult:
    """Promote the named proposals (all, when none are named). With
    `reviewed` (path -> the sha the operator saw, as scanned), refuse when
    anything chosen is not exactly what was reviewed."""
    async with locks.operation(home, bot.name, "promote"):
        found, contents = await asyncio.to_thread(
            scan_with_contents, home, bot.name, with_commits=False
        )
        if not found.seeded:
            raise ProposalError(f"{bot.name} has no proposals tree yet: nothing to promote")
        code = home.code_dir(bot.name)
        saved = await asyncio.to_thread(save_deps.changes, code, found)
        deps = saved.changes
        if reviewed is not None:  # a review that did not show them does not promote them
            deps = [c for c in deps if c.path in reviewed]
        contents.update(saved.contents)
        refused = found.refused + saved.refused
        chosen = select(found.changes + deps, refused, paths)
        if not chosen:
            raise ProposalError(f"{bot.name} proposes nothing to promote")
        if reviewed is not None:
            _check_reviewed(bot.name, chosen, reviewed)
        approved.branch(code)
        before_inputs = await asyncio.to_thread(build_inputs, code)
        info = await snapshots.snapshot(
            home, bot, "pre-promote", runtime=runtime, progress=progress
        )
        progress(ProgressEvent("promote", 0, None, f"committing {len(chosen)} file(s)"))
        text = message or default_message(bot.name, [c.path for c in chosen])
        commit = await locks.finish_first(
            asyncio.to_thread(commit_files, code, found.approved, chosen, contents, bot.name, text)
        )
        after_inputs = await asyncio.to_thread(build_inputs, code)
        result = PromoteResult(
            bot.name,
            found.approved,
            commit,
            [c.path for c in chosen],
            refused=[] if paths else refused,
            snapshot=info.name,
            build_inputs_changed=before_inputs is None or before_inputs != after_inputs,
        )
        _record(home, result)
        promoted = {c.path for c in chosen}
        left = [c for c in found.changes if c.path not in promoted]
        if not left and not found.refused:
            await asyncio.to_thread(seed.reset_git, home, bot.name)
        from_save = [c.path for c in deps if c.path in promoted]
        if from_save:  # the tree's copy follows the approved tree
            await asyncio.to_thread(seed.reset_paths, home, bot.name, from_save)
        await _send_back(home, result)
        return result


async def _send_back(home: FleetHome, result: PromoteResult) -> None:
    """The gateway's own copy of the proposals (a Lima VM's) made like the
    host's again; the promotion stands if that fails (it is sent at the
    bot's next start), and says so."""
    try:
        await mirror.send_back(home, result.bot)
    except CftuiError as exc:
        result.notes.append(f"{exc} (it is sent at the next start)")


def _check_reviewed(bot: str, chosen: list[Change], reviewed: Mapping[str, str | None]) -> None:
    """The agent may rewrite a file between the review and the promotion."""
    stale = [c.path for c in chosen if c.path not in reviewed or reviewed[c.path] != c.sha]
    if stale:
        raise ProposalError(
            f"{bot}: {stale[0]} changed since it was reviewed: review it again; nothing promoted"
        )


def default_message(bot: str, paths: list[str]) -> str:
    shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
    return f"Promote {bot}'s proposal: {shown}"


def commit_files(
    code: Path,
    expected_head: str,
    chosen: list[Change],
    contents: dict[str, bytes],
    bot: str,
    message: str,
) -> str:
    """Write the chosen files into `code/`, stage exactly them, check git
    staged the bytes that were reviewed, and commit; the new commit id."""
    if approved.head(code) != expected_head:
        raise ProposalError(f"{code} moved while the proposals were read: promote again")
    staged = run(code, "diff", "--cached", "--name-only")
    if staged:
        raise ProposalError(
            f"{code} has staged changes cftui did not make: commit or reset them, then promote"
        )
    written: list[str] = []
    try:
        for c in chosen:
            written.append(c.path)
            _apply(code, c, contents)
        spec = b"".join(os.fsencode(c.path) + b"\0" for c in chosen)
        run_bytes(
            code,
            "--literal-pathspecs",
            "add",
            "-A",
            "--pathspec-from-file=-",
            "--pathspec-file-nul",
            input=spec,
        )
        _check_staged(code, chosen)
        name, email = committer(code)
        run(
            code,
            "-c",
            f"user.name={name}",
            "-c",
            f"user.email={email}",
            "commit",
            "-q",
            "--no-verify",
            f"--author={author(bot)}",
            "-m",
            message,
        )
    except (ProposalError, UnsafeFile, OSError, ValueError) as exc:
        _undo(code, expected_head, written)
        if isinstance(exc, ProposalError):
            raise
        raise ProposalError(f"cannot promote into {code}: {exc}; code/ left as it was") from None
    return approved.head(code)


def _apply(code: Path, c: Change, contents: dict[str, bytes]) -> None:
    if c.status == "removed":
        remove_agent_entry(code, c.path)
        return
    parent = c.path.rpartition("/")[0]
    if parent:
        make_agent_dirs(code, parent)
    remove_if_not_file(code, c.path)
    write_agent_file(code, c.path, contents[c.path], mode=0o755 if c.executable else 0o644)


def remove_if_not_file(root: Path, rel: str) -> None:
    """A directory (or link) where a file is promoted goes first."""
    try:
        st = os.stat(root / rel, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        return
    if not stat.S_ISREG(st.st_mode):
        remove_agent_entry(root, rel)


def _check_staged(code: Path, chosen: list[Change]) -> None:
    raw = run_bytes(code, "diff", "--cached", "--raw", "-z", "--no-renames", "--no-abbrev")
    fields = raw.split(b"\0")
    staged: dict[str, str] = {}
    for meta, path in zip(fields[0::2], fields[1::2], strict=False):
        if not meta:
            continue
        parts = meta.decode().split()
        staged[os.fsdecode(path)] = parts[3]
    want = {c.path: (c.sha or "0" * 40) for c in chosen}
    if staged != want:
        odd = sorted(set(staged.items()) ^ set(want.items()))
        raise ProposalError(
            f"git staged something other than the reviewed files ({odd[0][0]}): nothing promoted"
        )


def _undo(code: Path, head: str, written: list[str]) -> None:
    """Put `code/` back as HEAD has it after a failed promotion."""
    with contextlib.suppress(ProposalError):
        run(code, "reset", "-q", head)
    tree = approved.tree(code, head)
    blobs = dict(approved.blobs(code, {tree[p].sha for p in written if p in tree}))
    for path in written:
        try:
            if path in tree:
                remove_if_not_file(code, path)
                parent = path.rpartition("/")[0]
                if parent:
                    make_agent_dirs(code, parent)
                mode = 0o755 if tree[path].mode == EXECUTABLE else 0o644
                write_agent_file(code, path, blobs[tree[path].sha], mode=mode)
            else:
                remove_agent_entry(code, path)
        except (OSError, UnsafeFile, ValueError):
            continue


def _record(home: FleetHome, result: PromoteResult) -> None:
    record_event(
        home,
        "promote",
        result.bot,
        commit=result.commit,
        before=result.before,
        paths=result.paths[:_EVENT_PATHS],
        count=len(result.paths),
        source=result.source,
        snapshot=result.snapshot,
        build_inputs_changed=result.build_inputs_changed,
        refused=[r.path for r in result.refused][:_EVENT_PATHS],
    )


def parse_source(spec: str) -> tuple[str, str]:
    """`REMOTE/BRANCH`, each part a plain name git accepts."""
    remote, sep, branch_name = spec.partition("/")
    if not sep or not _REMOTE_RE.fullmatch(remote) or not branch_name:
        raise UsageError(f"--from {spec!r}: use REMOTE/BRANCH, e.g. origin/main")
    if (
        branch_name.startswith("-")
        or ".." in branch_name
        or not re.fullmatch(r"[A-Za-z0-9._/-]{1,200}", branch_name)
    ):
        raise UsageError(f"--from {spec!r}: {branch_name!r} is not a branch name")
    return remote, branch_name


@dataclass(frozen=True)
class FastForward:
    """What `promote --from REMOTE/BRANCH` would do, fetched and checked:
    the approved branch moved from `before` to `target`, through `count`
    commits (the newest `commits`, as "id summary"), changing `paths`."""

    source: str
    branch: str
    before: str
    target: str
    count: int
    commits: list[str]
    paths: list[str]


_PREVIEW_COMMITS = 20


def _fetched_target(code: Path, bot: str, spec: str) -> tuple[str, str]:
    """Fetch REMOTE/BRANCH into `code/` and check that it fast-forwards
    the approved HEAD: (HEAD, the branch's commit)."""
    remote, branch_name = parse_source(spec)
    run(
        code, "fetch", "--quiet", "--no-tags", remote,
        f"+refs/heads/{branch_name}:refs/remotes/{remote}/{branch_name}",
    )  # fmt: skip
    before = approved.head(code)
    target = run(code, "rev-parse", "--verify", f"refs/remotes/{remote}/{branch_name}^{{commit}}")
    if target == before:
        raise ProposalError(f"{bot}: already at {spec} ({before[:12]}): nothing to promote")
    try:
        run(code, "merge-base", "--is-ancestor", before, target)
    except ProposalError:
        raise ProposalError(
            f"{spec} does not fast-forward {code} ({before[:12]} is not in its history): "
            "merge it by hand"
        ) from None
    return before, target


def preview_from(home: FleetHome, bot: str, spec: str) -> FastForward:
    """Fetch REMOTE/BRANCH and say what promoting it would fast-forward
    (nothing is changed but the remote-tracking ref): what the TUI shows
    before it asks. Blocking (git fetch): run it in a thread."""
    parse_source(spec)
    code = home.code_dir(bot)
    branch_name = approved.branch(code)
    before, target = _fetched_target(code, bot, spec)
    count = int(run(code, "rev-list", "--count", f"{before}..{target}") or 0)
    log = run(
        code, "log", f"-n{_PREVIEW_COMMITS}", "--no-decorate", "--format=%h %s",
        f"{before}..{target}",
    )  # fmt: skip
    return FastForward(
        spec,
        branch_name,
        before,
        target,
        count,
        log.splitlines(),
        approved.changed_paths(code, before, target),
    )


async def promote_from(
    home: FleetHome,
    bot: BotConfig,
    spec: str,
    *,
    runtime: Runtime | None = None,
    progress: Progress = no_progress,
    expected: str | None = None,
) -> PromoteResult:
    """Fast-forward the approved branch to REMOTE/BRANCH (a branch a human
    reviewed and merged elsewhere); what the controller's webhook calls.
    With `expected` (the commit a preview showed), refuse when the branch
    has moved since. The proposals tree follows: a path the agent had not
    touched takes the new approved content, one it had changed keeps the
    agent's version."""
    parse_source(spec)
    async with locks.operation(home, bot.name, "promote"):
        code = home.code_dir(bot.name)
        approved.branch(code)
        progress(ProgressEvent("promote", 0, None, f"fetching {spec}"))
        before, target = await asyncio.to_thread(_fetched_target, code, bot.name, spec)
        if expected is not None and target != expected:
            raise ProposalError(
                f"{bot.name}: {spec} moved since it was reviewed (now {target[:12]}, "
                f"was {expected[:12]}): review it again; nothing promoted"
            )
        pending: set[str] = set()
        if os.path.lexists(home.proposals_dir(bot.name)):
            found, _ = await asyncio.to_thread(
                scan_with_contents, home, bot.name, with_commits=False
            )
            pending = {c.path for c in found.changes} | {r.path for r in found.refused}
        before_inputs = await asyncio.to_thread(build_inputs, code)
        info = await snapshots.snapshot(
            home, bot, "pre-promote", runtime=runtime, progress=progress
        )
        progress(ProgressEvent("promote", 0, None, f"fast-forward to {target[:12]}"))
        await locks.finish_first(
            asyncio.to_thread(run, code, "merge", "--ff-only", "--quiet", target)
        )
        after = await asyncio.to_thread(approved.head, code)
        paths = await asyncio.to_thread(approved.changed_paths, code, before, after)
        after_inputs = await asyncio.to_thread(build_inputs, code)
        result = PromoteResult(
            bot.name,
            before,
            after,
            paths,
            snapshot=info.name,
            build_inputs_changed=before_inputs is None or before_inputs != after_inputs,
            source=spec,
        )
        _record(home, result)
        if os.path.lexists(home.proposals_dir(bot.name)):
            follow = [p for p in paths if p not in pending]
            await asyncio.to_thread(seed.reset_paths, home, bot.name, follow)
            kept = sorted(set(paths) & pending)
            if kept:
                result.notes.append(
                    f"{len(kept)} path(s) the bot had changed keep its version in the proposals"
                )
            await _send_back(home, result)
        return result
