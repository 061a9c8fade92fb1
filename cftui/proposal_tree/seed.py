"""The proposals tree made from the approved tree, and put back to it.

The tree is a bind-mount point for the running gateway, so it is never
replaced: its entries are. A seed builds the copy in a private directory
beside it (the gateway cannot reach it): the approved HEAD's blobs written
byte for byte (no checkout, so no attribute, filter or `ident` of the tree
changes a byte), a fresh git of its own holding that one commit (a shallow
clone with no remote, for the agent's optional commits), the stat cache
taken there; then the tree's entries are removed (by descriptor, never
following a link) and the copy's moved in.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

from cftui import hostgit
from cftui.errors import ProposalError
from cftui.fleet import FleetHome
from cftui.proposal_tree import approved, stat_cache
from cftui.proposal_tree.approved import EXECUTABLE, GITLINK, SYMLINK, Blob
from cftui.securefs import (
    DIR_FLAGS,
    UnsafeFile,
    agent_dir,
    make_agent_dirs,
    make_private_dirs,
    own_tree,
    remove_agent_entry,
    write_agent_file,
)


def _owner(root: Path) -> tuple[int, int] | None:
    """Whom the tree's files must belong to: its top's owner, when cftui
    (as root) is not it; None when nothing needs handing over."""
    if os.geteuid() != 0:
        return None
    st = os.lstat(root)
    return None if (st.st_uid, st.st_gid) == (0, 0) else (st.st_uid, st.st_gid)


def seed(home: FleetHome, bot: str) -> str:
    """Make (or remake) the proposals tree as a copy of the approved HEAD,
    with its own git; every proposal in it is dropped. The approved commit."""
    code = home.code_dir(bot)
    root = home.proposals_dir(bot)
    make_private_dirs(home.bot_repo(bot))
    if not os.path.lexists(root):
        os.mkdir(root, 0o755)
    elif not stat.S_ISDIR(os.lstat(root).st_mode):
        raise ProposalError(f"{root} is not a directory: move it aside and try again")
    head = approved.head(code)
    tree = approved.tree(code, head)
    with tempfile.TemporaryDirectory(dir=home.bot_repo(bot), prefix=".proposals-seed-") as tmp:
        copy = Path(tmp) / "tree"
        _clone(code, head, copy)
        _write_blobs(code, tree, copy)
        owner = _owner(root)
        if owner is not None:
            own_tree(copy, *owner)
        cache = _cache_of(copy, tree, head)
        _empty(root)
        _move_in(copy, root)
    stat_cache.save(home.proposals_index(bot), cache)
    return head


def ensure_seeded(home: FleetHome, bot: str) -> bool:
    """Seed the tree unless it is there already (what a start calls);
    whether it seeded."""
    root = home.proposals_dir(bot)
    if os.path.lexists(root) and home.proposals_index(bot).exists():
        return False
    seed(home, bot)
    return True


def reset_git(home: FleetHome, bot: str) -> None:
    """Give the tree a fresh git at the approved HEAD (the agent's commits
    dropped), keeping its files: what follows a promotion that left nothing
    pending."""
    code = home.code_dir(bot)
    root = home.proposals_dir(bot)
    head = approved.head(code)
    with tempfile.TemporaryDirectory(dir=home.bot_repo(bot), prefix=".proposals-git-") as tmp:
        copy = Path(tmp) / "tree"
        _clone(code, head, copy)
        owner = _owner(root)
        if owner is not None:
            own_tree(copy, *owner)
        remove_agent_entry(root, ".git")
        _rename_into(copy, ".git", root)
    cache = stat_cache.load(home.proposals_index(bot))
    cache.base = head
    stat_cache.save(home.proposals_index(bot), cache)


def reset_paths(home: FleetHome, bot: str, paths: Iterable[str], rev: str = "HEAD") -> list[str]:
    """Put each path of the proposals tree back as `rev` of the approved tree
    has it (removed when it has none); the paths changed."""
    code = home.code_dir(bot)
    root = home.proposals_dir(bot)
    tree = approved.tree(code, rev)
    wanted = list(dict.fromkeys(paths))
    contents = dict(
        approved.blobs(code, {tree[p].sha for p in wanted if p in tree and tree[p].mode != GITLINK})
    )
    done = []
    for path in wanted:
        try:
            blob = tree.get(path)
            if blob is None or blob.mode == GITLINK:
                if remove_agent_entry(root, path):
                    done.append(path)
                continue
            parent = path.rpartition("/")[0]
            if parent:
                make_agent_dirs(root, parent)
            _put(root, path, blob, contents[blob.sha])
            done.append(path)
        except (UnsafeFile, ValueError) as exc:
            raise ProposalError(f"cannot reset {path}: {exc}") from None
        except OSError as exc:
            raise ProposalError(f"cannot reset {path}: {exc.strerror or exc}") from None
    return done


def _put(root: Path, path: str, blob: Blob, data: bytes) -> None:
    parent, _, name = path.rpartition("/")
    with agent_dir(root, parent) as dfd:
        if dfd is None:
            raise ProposalError(f"cannot reset {path}: {root / parent} is missing")
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            st = None
    # Whatever is there now (a link, a fifo, a directory) goes first.
    if st is not None and (blob.mode == SYMLINK or not stat.S_ISREG(st.st_mode) or st.st_nlink > 1):
        remove_agent_entry(root, path)
    if blob.mode == SYMLINK:
        with agent_dir(root, parent) as dfd:
            assert dfd is not None
            os.symlink(os.fsdecode(data), name, dir_fd=dfd)
        return
    write_agent_file(root, path, data, mode=0o755 if blob.mode == EXECUTABLE else 0o644)


def _clone(code: Path, head: str, dest: Path) -> None:
    """A shallow git of `head` alone, no checkout, no remote: the agent's git."""
    try:
        hostgit.git(
            None,
            "clone",
            "-q",
            "--no-checkout",
            "--depth",
            "1",
            "--no-tags",
            f"file://{code}",
            str(dest),
            cwd=dest.parent,
            timeout=1800,
        )
        hostgit.git(dest, "remote", "remove", "origin")
        hostgit.git(dest, "read-tree", head)
    except hostgit.GitError as exc:
        raise ProposalError(f"cannot make the proposals tree: {exc}") from None


def _write_blobs(code: Path, tree: dict[str, Blob], dest: Path) -> None:
    """The approved files, byte for byte, into the private copy."""
    by_sha: dict[str, list[tuple[str, Blob]]] = {}
    made: set[Path] = set()
    for path, blob in tree.items():
        if blob.mode == GITLINK:
            (dest / path).mkdir(parents=True, exist_ok=True)
            continue
        by_sha.setdefault(blob.sha, []).append((path, blob))
    for sha, data in approved.blobs(code, by_sha):
        for path, blob in by_sha[sha]:
            target = dest / path
            if target.parent not in made:
                target.parent.mkdir(parents=True, exist_ok=True)
                made.add(target.parent)
            if blob.mode == SYMLINK:
                os.symlink(os.fsdecode(data), target)
                continue
            mode = 0o755 if blob.mode == EXECUTABLE else 0o644
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
            with os.fdopen(fd, "wb") as f:
                f.write(data)


def _cache_of(copy: Path, tree: dict[str, Blob], head: str) -> stat_cache.StatCache:
    """The records of the fresh copy, judged already: it is the approved
    HEAD, byte for byte (what the seed wrote, in a directory the gateway
    cannot reach). Entries made within the racy window are hashed again by
    the first scan."""
    cache = stat_cache.StatCache(base=head, fresh=True)
    taken = stat_cache.now_ns()  # before the lstat calls: what is racy, is so for sure
    fd = os.open(copy, DIR_FLAGS)
    try:
        _record_dir(cache, fd, "", tree, head, taken)
    finally:
        os.close(fd)
    return cache


def _record_dir(
    cache: stat_cache.StatCache,
    dfd: int,
    prefix: str,
    tree: dict[str, Blob],
    head: str,
    taken: int,
) -> None:
    names: list[str] = []
    values: list[int] = []
    shas: list[str] = []
    subdirs: list[str] = []
    newest = 0
    with os.scandir(dfd) as it:
        for entry in it:
            st = entry.stat(follow_symlinks=False)
            names.append(entry.name)
            values.extend(stat_cache.fields(st))
            if stat.S_ISDIR(st.st_mode):
                shas.append(stat_cache.NO_SHA)
                if not (entry.name == ".git" and not prefix):
                    subdirs.append(entry.name)
                continue
            newest = max(newest, st.st_ctime_ns)
            blob = tree.get(prefix + entry.name)
            shas.append(blob.sha if blob is not None else stat_cache.NO_SHA)
    key = stat_cache.dir_key(names, values)
    record = stat_cache.Record(stat_cache.digest(key), head, [], newest, taken)
    cache.put(prefix, record, stat_cache.Detail(key, "".join(shas), taken))
    for name in subdirs:
        child = os.open(name, DIR_FLAGS, dir_fd=dfd)
        try:
            _record_dir(cache, child, f"{prefix}{name}/", tree, head, taken)
        finally:
            os.close(child)


def _empty(root: Path) -> None:
    fd = os.open(root, DIR_FLAGS)
    try:
        for name in os.listdir(fd):
            remove_agent_entry(root, name)
    finally:
        os.close(fd)


def _move_in(copy: Path, root: Path) -> None:
    for name in sorted(os.listdir(copy)):
        _rename_into(copy, name, root)


def _rename_into(copy: Path, name: str, root: Path) -> None:
    """Move `copy/name` to `root/name`; something the gateway put there
    meanwhile is removed first (once), never followed."""
    src = os.open(copy, DIR_FLAGS)
    dst = os.open(root, DIR_FLAGS)
    try:
        for attempt in range(2):
            try:
                os.rename(name, name, src_dir_fd=src, dst_dir_fd=dst)
                return
            except OSError as exc:
                if attempt or exc.errno not in (
                    errno.EEXIST,
                    errno.ENOTEMPTY,
                    errno.EISDIR,
                    errno.ENOTDIR,
                ):
                    raise ProposalError(
                        f"cannot move {name} into {root}: {exc.strerror or exc}"
                    ) from None
                remove_agent_entry(root, name)
    finally:
        os.close(src)
        os.close(dst)
