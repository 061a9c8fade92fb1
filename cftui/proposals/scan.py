"""What the bot proposes: how its proposals tree differs from the approved
HEAD (`cftui proposals`).

One pass over the tree, a directory at a time. A directory whose listing
(every name with its lstat) is exactly what cftui's stat cache recorded, judged
against the same approved commit, holds what it held: its verdict is replayed
and only the files it proposes are read (their bytes are what a promotion
commits). Anywhere else each entry is judged on its lstat (`hostile`), a
regular file's content is known from the record when provably unchanged and
hashed otherwise, and compared with the approved tree's blob, read from the
approved listing of that commit (kept by commit id, so git lists a big tree
once). Only the files that differ are read again, to count their lines.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from cftui.deps import declared
from cftui.errors import CftuiError, ProposalError
from cftui.fleet import FleetHome
from cftui.proposal_tree import approved, stat_cache
from cftui.proposal_tree.approved import EXECUTABLE, GITLINK, REGULAR, SYMLINK, Blob, Listing
from cftui.proposal_tree.stat_cache import NO_SHA, Detail, Found, Record, StatCache
from cftui.proposals import agent_git
from cftui.proposals.content import blob_id, is_binary, line_counts, read_at
from cftui.proposals.hostile import file_refusal, link_refusal
from cftui.proposals.mirror import bring_home
from cftui.proposals.model import Change, Proposals, Refusal
from cftui.proposals.walk import Dir, open_tree, walk

Counts = tuple[int | None, int | None, int | None, bool]
LISTING_NAME = ".proposals-approved"  # beside the stat cache: the approved listing


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """The cyclic collector off for a while (see the scan)."""
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
    head, on = approved.head_and_branch(code)
    result = Proposals(bot, head, on or "(detached)")
    result.dependencies = declared.scan_note(code, bot, head)  # the save dir, not the tree
    root = home.proposals_dir(bot)
    try:
        fd = open_tree(root)
    except OSError as exc:
        raise ProposalError(f"cannot read {root}: {exc.strerror or exc}") from None
    if fd is None:
        result.seeded = False
        return result, {}
    index = home.proposals_index(bot)
    try:
        # The records, the walk and the verdicts make no cycles, but tens of
        # thousands of objects: in a process with a big heap (the TUI's) the
        # cyclic collector would walk all of it again and again meanwhile.
        with _no_gc():
            cache = stat_cache.load(index)
            judge = _Judge(code, head, cache, index.with_name(LISTING_NAME), result)
            for d in walk(fd):
                judge.directory(d)
            _count_lines(code, result, judge.contents, judge.olds, judge.counted)
            judge.keep_records()
            cache.forget([k for k in cache.dirs if k not in judge.visited])
            if cache.dirty and index.parent.is_dir():
                stat_cache.save(index, cache)
    finally:
        os.close(fd)
    result.changes.sort(key=lambda c: c.path)
    result.refused.sort(key=lambda r: r.path)
    if with_commits:
        stop = {head} | ({cache.base} if cache.base else set())
        result.commits, result.commits_note = agent_git.commits(root, stop)
    result.config_drift = _drift_keys(home, bot)
    return result, judge.contents


class _Judge:
    """The verdict on each directory the walk lists, and the records the
    next scan replays."""

    def __init__(
        self, code: Path, head: str, cache: StatCache, listing_file: Path, result: Proposals
    ) -> None:
        self.code, self.head, self.cache, self.result = code, head, cache, result
        self.listing_file = listing_file
        self._listing: Listing | None = None
        self.started = stat_cache.now_ns()
        self.contents: dict[str, bytes] = {}
        self.olds: dict[str, Blob] = {}  # path -> the approved blob, for the line counts
        self.counted: set[str] = set()  # paths whose counts a record gave
        self.visited: set[str] = set()
        self._pending: list[tuple[str, Record, Detail]] = []

    def listing(self) -> Listing:
        if self._listing is None:
            self._listing = approved.listing(self.code, self.head, self.listing_file)
        return self._listing

    def directory(self, d: Dir) -> None:
        prefix = d.prefix
        if d.refused_self is not None:
            path = prefix[:-1] or "."
            self.result.refused.append(Refusal(path, d.refused_self))
            self._not_removed(prefix, path)
            return
        key = stat_cache.dir_key(d.names, d.values)
        if not d.gone:
            self.visited.add(stat_cache.enc(prefix))
        record = self.cache.lookup(prefix)
        if (
            record is not None
            and not d.gone
            and record.approved == self.head
            and record.trusted
            and record.digest == stat_cache.digest(key)
        ):
            self._replay(d, record)
            return
        self._judge(d, key)

    # --- a directory as it was: its verdict replayed --------------------------
    def _replay(self, d: Dir, record: Record) -> None:
        for f in record.found:
            old = Blob(f.old_mode, f.old_sha) if f.old_sha is not None else None
            if f.status == "removed":
                assert old is not None
                self._removed(f.name, old, f.counts)
                continue
            i = d.names.index(f.name)
            rel = d.prefix + f.name
            got = read_at(d.fd, f.name, d.stats[i])
            if got is None or blob_id(got[0]) != f.sha:
                self.result.refused.append(Refusal(rel, "changed while it was read: scan again"))
                continue
            self._proposed(rel, f.status, got[0], f.sha, f.executable, old, f.counts)

    # --- a directory where something changed -----------------------------------
    def _judge(self, d: Dir, key: str) -> None:
        prefix, names, stats = d.prefix, d.names, d.stats
        listing = self.listing()
        want_of = listing.files(prefix)
        detail = self.cache.detail(prefix)
        known = detail.known() if detail is not None else {}
        shas = [NO_SHA] * len(names)
        found: list[Found] = []
        complete = not d.gone and not d.refused
        newest = 0
        for name, reason in d.refused:
            self.result.refused.append(Refusal(prefix + name, reason))
            self._not_removed(f"{prefix}{name}/", prefix + name)
        live_files = set()
        for i in d.files:
            name, st = names[i], stats[i]
            live_files.add(name)
            newest = max(newest, st.st_ctime_ns)
            fields = tuple(d.values[i * stat_cache.FIELDS : (i + 1) * stat_cache.FIELDS])
            was = known.get(name)
            sha = was[1] if was is not None and was[0] == fields else None
            verdict = self._file(d.fd, prefix, name, st, want_of.get(name), sha)
            if verdict is None:
                complete = False
                continue
            shas[i], change = verdict
            if change is not None:
                found.append(change)
        for name, blob in want_of.items():
            if blob.mode != GITLINK and name not in live_files:
                self._removed(prefix + name, blob)
                found.append(Found(prefix + name, "removed", None, blob.sha, False, blob.mode))
        entered = set(d.dirs)
        for sub in listing.subdirs(prefix):
            if sub in entered:
                continue  # its own directory says
            path = prefix + sub
            if sub in live_files or any(n == sub for n, _ in d.refused):
                complete = False
                self._not_removed(f"{path}/", path)
                continue
            for p, blob in listing.under(f"{path}/"):
                self._removed(p, blob)
                found.append(Found(p, "removed", None, blob.sha, False, blob.mode))
        if d.gone:
            return
        taken = self.started
        record = Record(stat_cache.digest(key), self.head if complete else "", found, newest, taken)
        self._pending.append((prefix, record, Detail(key, "".join(shas), taken)))

    def keep_records(self) -> None:
        """Put the new records in the cache, with the line counts of what
        they found (counted by then)."""
        by_path = {c.path: c for c in self.result.changes}
        for prefix, record, detail in self._pending:
            for i, f in enumerate(record.found):
                c = by_path.get(f.name if f.status == "removed" else prefix + f.name)
                if c is not None:
                    counts = (c.old_size, c.lines_added, c.lines_removed, c.binary)
                    record.found[i] = dataclasses.replace(f, counts=counts)
            self.cache.put(prefix, record, detail)
        self._pending.clear()

    def _file(
        self,
        dfd: int,
        prefix: str,
        name: str,
        st: os.stat_result,
        want: Blob | None,
        sha: str | None,
    ) -> tuple[str, Found | None] | None:
        """One entry that is not a directory: its blob id and how it differs
        (None with it, when it is as approved); None when it is refused, or
        not known well enough to be recorded."""
        rel = prefix + name
        if stat.S_ISLNK(st.st_mode):
            try:
                target = os.readlink(name, dir_fd=dfd)
            except OSError:
                return None  # gone since the listing
            if (
                want is not None
                and want.mode == SYMLINK
                and want.sha == blob_id(os.fsencode(target))
            ):
                return want.sha, None
            self.result.refused.append(Refusal(rel, link_refusal(target)))
            return None
        reason = file_refusal(st)
        if reason is not None:
            self.result.refused.append(Refusal(rel, reason))
            return None
        data = None
        stable = True
        if sha is None:
            got = read_at(dfd, name, st)
            if got is None:
                self.result.refused.append(Refusal(rel, "changed while it was read: scan again"))
                return None
            data, after = got
            sha = blob_id(data)
            if not after.st_ino:
                stable = False  # changed while it was read: never recorded
            elif (after.st_ctime_ns, after.st_mtime_ns, after.st_size, after.st_ino) != (
                st.st_ctime_ns,
                st.st_mtime_ns,
                st.st_size,
                st.st_ino,
            ) or after.st_mode != st.st_mode:
                stable = False  # not the file the listing saw: the next scan sees it
                st = after
        mode = git_mode(st)
        if want is not None and want.mode == mode and want.sha == sha:
            return (sha, None) if stable else None
        if data is None:  # known from the record but different: read it for the review
            got = read_at(dfd, name, st)
            if got is None or blob_id(got[0]) != sha:
                self.result.refused.append(Refusal(rel, "changed while it was read: scan again"))
                return None
            data = got[0]
        status = "added" if want is None else "changed"
        self._proposed(rel, status, data, sha, mode == EXECUTABLE, want)
        if not stable:
            return None
        old_sha, old_mode = (want.sha, want.mode) if want is not None else (None, 0)
        return sha, Found(name, status, sha, old_sha, mode == EXECUTABLE, old_mode)

    # --- what the result says -------------------------------------------------
    def _proposed(
        self,
        rel: str,
        status: str,
        data: bytes,
        sha: str,
        executable: bool,
        old: Blob | None,
        counts: Counts | None = None,
    ) -> None:
        self.contents[rel] = data
        if old is not None:
            self.olds[rel] = old
        old_size, added, removed, binary = counts or (None, None, None, is_binary(data))
        if counts is not None:
            self.counted.add(rel)
        self.result.changes.append(
            Change(
                rel,
                "added" if status == "added" else "changed",
                len(data),
                old_size,
                added,
                removed,
                binary=binary,
                executable=executable,
                sha=sha,
            )
        )

    def _removed(self, path: str, old: Blob, counts: Counts | None = None) -> None:
        self.olds[path] = old
        old_size, added, removed, binary = counts or (None, None, None, False)
        if counts is not None:
            self.counted.add(path)
        self.result.changes.append(
            Change(path, "removed", None, old_size, added, removed, binary=binary)
        )

    def _not_removed(self, prefix: str, under: str) -> None:
        """The approved files below a directory that is refused (or is now a
        file): their removal would follow from it, and is not one alone."""
        for path, _blob in self.listing().under(prefix):
            self.result.refused.append(
                Refusal(path, f"under {under}, which is refused: not removed")
            )


def _count_lines(
    code: Path,
    result: Proposals,
    contents: dict[str, bytes],
    olds: dict[str, Blob],
    counted: set[str],
) -> None:
    """Sizes and line counts of what changed (but where a record knew them)."""
    wanted = {
        b.sha for p, b in olds.items() if b.mode in (REGULAR, EXECUTABLE) and p not in counted
    }
    old_bytes = dict(approved.blobs(code, wanted)) if wanted else {}
    for i, c in enumerate(result.changes):
        if c.path in counted:
            continue
        blob = olds.get(c.path)
        old = old_bytes.get(blob.sha) if blob is not None else None
        added, removed = line_counts(old, contents.get(c.path))
        if c.status == "removed":
            binary = old is not None and is_binary(old)
        else:
            binary = c.binary or (old is not None and is_binary(old))
        result.changes[i] = Change(
            c.path,
            c.status,
            c.size,
            None if old is None and blob is None else _size(blob, old),
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
