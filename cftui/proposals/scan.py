"""What the bot proposes: how its proposals tree differs from the approved
HEAD (`cftui proposals`).

One pass over the tree: each entry is judged on its lstat (`hostile`), a
regular file's content is known from cftui's stat cache when provably
unchanged and hashed otherwise, and compared with the approved tree's blob.
Only the files that differ are read again, to count their lines.
"""

from __future__ import annotations

import contextlib
import gc
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from cftui.deps import declared
from cftui.errors import CftuiError, ProposalError
from cftui.fleet import FleetHome
from cftui.proposal_tree import approved, stat_cache
from cftui.proposal_tree.approved import EXECUTABLE, GITLINK, REGULAR, SYMLINK, Blob
from cftui.proposals import agent_git
from cftui.proposals.content import blob_id, is_binary, line_counts, read_at
from cftui.proposals.hostile import file_refusal, link_refusal
from cftui.proposals.mirror import bring_home
from cftui.proposals.model import Change, Proposals, Refusal
from cftui.proposals.walk import open_tree, walk


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """The walk makes no cycles but tens of thousands of objects: the cyclic
    collector would rescan the cache's entries again and again (a third of
    a 50,000-file scan)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def git_mode(st: os.stat_result) -> int:
    return EXECUTABLE if st.st_mode & stat.S_IXUSR else REGULAR


def scan(home: FleetHome, bot: str, *, with_commits: bool = True) -> Proposals:
    """Everything the bot proposes (read-only; allowed while it is locked)."""
    found, _contents = scan_with_contents(home, bot, with_commits=with_commits)
    return found


def scan_with_contents(
    home: FleetHome, bot: str, *, with_commits: bool = True
) -> tuple[Proposals, dict[str, bytes]]:
    """The scan, and the proposed bytes of each added or changed file as they
    were read and hashed (what a promotion commits, so it commits exactly
    what was compared)."""
    bring_home(home, bot)  # a Lima gateway writes its VM's copy
    code = home.code_dir(bot)
    head = approved.head(code)
    try:
        on = approved.branch(code)
    except ProposalError:
        on = "(detached)"
    result = Proposals(bot, head, on)
    result.dependencies = declared.scan_note(code, bot)  # the save dir, not the tree
    root = home.proposals_dir(bot)
    try:
        fd = open_tree(root)
    except OSError as exc:
        raise ProposalError(f"cannot read {root}: {exc.strerror or exc}") from None
    if fd is None:
        result.seeded = False
        return result, {}
    tree = approved.tree(code)
    cache = stat_cache.load(home.proposals_index(bot))
    started = stat_cache.now_ns()
    contents: dict[str, bytes] = {}
    seen: set[str] = set()
    refused_dirs: list[str] = []
    try:
        with _no_gc():
            for e in walk(fd):
                seen.add(e.rel)
                if e.refused is not None:
                    result.refused.append(Refusal(e.rel, e.refused))
                    if stat.S_ISDIR(e.st.st_mode):
                        refused_dirs.append(e.rel + "/")
                    continue
                _judge(e, tree.get(e.rel), cache, started, result, contents)
    finally:
        os.close(fd)
    _removed(tree, seen, refused_dirs, result)
    if cache.dirty:
        cache_path = home.proposals_index(bot)
        if cache_path.parent.is_dir():
            stat_cache.save(cache_path, cache, stamp=started)
    _count_lines(code, tree, result, contents)
    result.changes.sort(key=lambda c: c.path)
    result.refused.sort(key=lambda r: r.path)
    if with_commits:
        stop = {head} | ({cache.base} if cache.base else set())
        result.commits, result.commits_note = agent_git.commits(root, stop)
    result.config_drift = _drift_keys(home, bot)
    return result, contents


def _judge(e, want: Blob | None, cache, started: int, result: Proposals, contents) -> None:
    st = e.st
    if stat.S_ISLNK(st.st_mode):
        try:
            target = os.readlink(e.name, dir_fd=e.dir_fd)
        except OSError:
            return  # gone since the listing
        same = (
            want is not None and want.mode == SYMLINK and want.sha == blob_id(os.fsencode(target))
        )
        if not same:
            result.refused.append(Refusal(e.rel, link_refusal(target)))
        return
    reason = file_refusal(st)
    if reason is not None:
        result.refused.append(Refusal(e.rel, reason))
        return
    sha = cache.lookup(e.rel, st)
    data = None
    if sha is None:
        got = read_at(e.dir_fd, e.name, st)
        if got is None:
            result.refused.append(Refusal(e.rel, "changed while it was read: scan again"))
            return
        data, after = got
        sha = blob_id(data)
        if after.st_ino:
            cache.record(e.rel, after, sha, started)
        st = after if after.st_ino else st
    mode = git_mode(st)
    if want is not None and want.mode == mode and want.sha == sha:
        return
    if data is None:  # known from the cache but different: read it for the review
        got = read_at(e.dir_fd, e.name, st)
        if got is None or blob_id(got[0]) != sha:
            result.refused.append(Refusal(e.rel, "changed while it was read: scan again"))
            return
        data = got[0]
    contents[e.rel] = data
    result.changes.append(
        Change(
            e.rel,
            "added" if want is None else "changed",
            len(data),
            None,
            None,
            None,
            binary=is_binary(data),
            executable=mode == EXECUTABLE,
            sha=sha,
        )
    )


def _removed(tree: dict[str, Blob], seen: set[str], refused_dirs: list[str], result) -> None:
    gitlinks = [p + "/" for p, b in tree.items() if b.mode == GITLINK]
    for path, blob in tree.items():
        if path in seen or blob.mode == GITLINK or any(path.startswith(g) for g in gitlinks):
            continue
        under = next((d for d in refused_dirs if path.startswith(d)), None)
        if under is None:
            under = _shadowing(path, seen)
        if under is not None:
            result.refused.append(
                Refusal(path, f"under {under.rstrip('/')}, which is refused: not removed")
            )
            continue
        result.changes.append(Change(path, "removed", None, None, None, None))


def _shadowing(path: str, seen: set[str]) -> str | None:
    """A parent of `path` that is now a file, link or special file (refused
    or proposed itself): the removal follows from it and is not one alone."""
    parts = path.split("/")
    for i in range(1, len(parts)):
        parent = "/".join(parts[:i])
        if parent in seen:
            return parent
    return None


def _count_lines(code: Path, tree: dict[str, Blob], result: Proposals, contents) -> None:
    olds = {c.path: tree[c.path] for c in result.changes if c.path in tree}
    wanted = {b.sha for b in olds.values() if b.mode in (REGULAR, EXECUTABLE)}
    old_bytes = dict(approved.blobs(code, wanted)) if wanted else {}
    for i, c in enumerate(result.changes):
        old = old_bytes.get(olds[c.path].sha) if c.path in olds else None
        added, removed = line_counts(old, contents.get(c.path))
        if c.status == "removed":
            binary = old is not None and is_binary(old)
        else:
            binary = c.binary or (old is not None and is_binary(old))
        result.changes[i] = Change(
            c.path,
            c.status,
            c.size,
            None if old is None and c.path not in olds else _size(olds.get(c.path), old),
            added,
            removed,
            binary=binary,
            executable=c.executable,
            sha=c.sha,
        )


def _size(blob: Blob | None, old: bytes | None) -> int | None:
    if old is not None:
        return len(old)
    return None if blob is None else 0


def _drift_keys(home: FleetHome, bot: str) -> list[str]:
    from cftui.gateway import drift as config_drift

    try:
        return config_drift.drift(home, bot).changed
    except CftuiError:
        return []
