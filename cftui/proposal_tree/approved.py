"""The approved tree: `code/`'s HEAD, read through the one host git.

`code/.git` is the operator's (hostgit refuses any other), so git may read
it; what comes out is object content, never a path to follow. Paths are git's
bytes decoded the way the filesystem decodes them (surrogateescape), so a
name git stores is the name the walk of the proposals tree sees.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from cftui import hostgit
from cftui.errors import ProposalError
from cftui.securefs import atomic_write_private

REGULAR = 0o100644
EXECUTABLE = 0o100755
SYMLINK = 0o120000
GITLINK = 0o160000
# How much blob content one `cat-file --batch` call brings back at most.
_BATCH_BYTES = 64 << 20


@dataclass(frozen=True, slots=True)
class Blob:
    """One entry of the approved tree: its git mode and object id."""

    mode: int
    sha: str


def run(code: Path, *args: str) -> str:
    """hostgit on `code/`, its failures as ProposalError."""
    try:
        return hostgit.git(code, *args)
    except hostgit.GitError as exc:
        raise ProposalError(str(exc)) from None


def run_bytes(code: Path, *args: str, input: bytes | None = None) -> bytes:
    try:
        return hostgit.git_bytes(code, *args, input=input)
    except hostgit.GitError as exc:
        raise ProposalError(str(exc)) from None


def head(code: Path) -> str:
    return run(code, "rev-parse", "--verify", "HEAD^{commit}")


def branch(code: Path) -> str:
    """The approved branch (what a promotion commits on); refuses a detached HEAD."""
    try:
        return hostgit.git(code, "symbolic-ref", "--short", "HEAD")
    except hostgit.GitError:
        raise ProposalError(
            f"{code} has a detached HEAD: check out the approved branch before promoting"
        ) from None


def head_and_branch(code: Path) -> tuple[str, str | None]:
    """The approved HEAD and its branch (None when detached), in one git run."""
    out = run(code, "rev-parse", "HEAD^{commit}", "--symbolic-full-name", "HEAD")
    sha, _, ref = out.partition("\n")
    ref = ref.strip()
    return sha.strip(), ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else None


class Listing:
    """The approved tree of one commit, by directory, decoded only where a
    scan asks (most of a big tree is never looked at once its proposals
    are known). Directories are paths with a trailing slash, "" the top."""

    def __init__(self, commit: str, dirs: dict[str, str]) -> None:
        self.commit = commit
        self._raw = dirs  # stat_cache.enc(prefix) -> enc("name\0mode\0sha\0...")
        self._children: dict[str, list[str]] | None = None

    @staticmethod
    def parse(commit: str, out: bytes) -> Listing:
        """From `git ls-tree -r -z` output."""
        by_dir: dict[bytes, list[bytes]] = {}
        for record in out.split(b"\0"):
            if not record:
                continue
            meta, _, raw_path = record.partition(b"\t")
            mode, _kind, sha = meta.split(b" ")
            parent, _, name = raw_path.rpartition(b"/")
            prefix = parent + b"/" if parent else b""
            by_dir.setdefault(prefix, []).extend((name, mode, sha))
            while parent:  # every directory on the way, even one holding only directories
                parent = parent.rpartition(b"/")[0]
                up = parent + b"/" if parent else b""
                if up in by_dir:
                    break
                by_dir[up] = []
        by_dir.setdefault(b"", [])
        return Listing(
            commit,
            {k.decode("latin-1"): b"\0".join(v).decode("latin-1") for k, v in by_dir.items()},
        )

    def to_json(self) -> dict[str, object]:
        return {"v": 1, "commit": self.commit, "dirs": self._raw}

    def files(self, prefix: str) -> dict[str, Blob]:
        """The entries directly in a directory (files, links, submodules)."""
        raw = self._raw.get(_enc(prefix))
        if not raw:
            return {}
        parts = raw.encode("latin-1").split(b"\0")
        return {
            os.fsdecode(parts[i]): Blob(int(parts[i + 1], 8), parts[i + 2].decode())
            for i in range(0, len(parts), 3)
        }

    def subdirs(self, prefix: str) -> list[str]:
        """The names of the directories directly in a directory."""
        if self._children is None:
            children: dict[str, list[str]] = {}
            for key in self._raw:
                if key:
                    parent, _, name = key[:-1].rpartition("/")
                    children.setdefault(parent + "/" if parent else "", []).append(name)
            self._children = children
        return [_dec(n) for n in self._children.get(_enc(prefix), [])]

    def under(self, prefix: str) -> Iterator[tuple[str, Blob]]:
        """Every file below a directory (its path, its blob), submodules left out."""
        for name, blob in self.files(prefix).items():
            if blob.mode != GITLINK:
                yield prefix + name, blob
        for sub in self.subdirs(prefix):
            yield from self.under(f"{prefix}{sub}/")


def _enc(text: str) -> str:
    return text.encode("utf-8", "surrogateescape").decode("latin-1")


def _dec(text: str) -> str:
    return text.encode("latin-1").decode("utf-8", "surrogateescape")


_LISTINGS: dict[tuple[str, str], Listing] = {}
_LISTINGS_KEPT = 4


def listing(code: Path, commit: str, cache_file: Path | None = None) -> Listing:
    """The approved tree of `commit` (a full commit id: what it names never
    changes), from this process's memory, else from `cache_file` (cftui's,
    out of the agent's reach), else from git, then kept in both."""
    memo = (str(code), commit)
    found = _LISTINGS.get(memo)
    if found is not None:
        return found
    if cache_file is not None:
        found = _load_listing(cache_file, commit)
    if found is None:
        found = Listing.parse(commit, run_bytes(code, "ls-tree", "-r", "-z", "--full-tree", commit))
        if cache_file is not None and cache_file.parent.is_dir():
            atomic_write_private(cache_file, orjson.dumps(found.to_json()))
    if len(_LISTINGS) >= _LISTINGS_KEPT:
        _LISTINGS.pop(next(iter(_LISTINGS)))
    _LISTINGS[memo] = found
    return found


def _load_listing(path: Path, commit: str) -> Listing | None:
    try:
        with open(path, "rb") as f:
            raw = orjson.loads(f.read())
        if raw.get("v") != 1 or raw.get("commit") != commit or not isinstance(raw["dirs"], dict):
            return None
        return Listing(commit, raw["dirs"])
    except (OSError, ValueError, TypeError, AttributeError, KeyError):
        return None


def tree(code: Path, rev: str = "HEAD") -> dict[str, Blob]:
    """Every file of `rev` (blobs, links and submodules), by path."""
    out = run_bytes(code, "ls-tree", "-r", "-z", "--full-tree", rev)
    files: dict[str, Blob] = {}
    for record in out.split(b"\0"):
        if not record:
            continue
        meta, _, raw_path = record.partition(b"\t")
        mode, _kind, sha = meta.split(b" ")
        files[os.fsdecode(raw_path)] = Blob(int(mode, 8), sha.decode())
    return files


def changed_paths(code: Path, before: str, after: str) -> list[str]:
    """Paths whose content differs between two commits."""
    out = run_bytes(code, "diff", "--name-only", "-z", "--no-renames", before, after)
    return [os.fsdecode(p) for p in out.split(b"\0") if p]


def blobs(code: Path, shas: Iterable[str]) -> Iterator[tuple[str, bytes]]:
    """The content of each blob, through `cat-file --batch` in bounded calls."""
    wanted = list(dict.fromkeys(shas))
    sizes = _sizes(code, wanted)
    batch: list[str] = []
    total = 0
    for sha in wanted:
        batch.append(sha)
        total += sizes.get(sha, 0)
        if total >= _BATCH_BYTES:
            yield from _batch(code, batch)
            batch, total = [], 0
    if batch:
        yield from _batch(code, batch)


def blob(code: Path, sha: str) -> bytes:
    return next(iter(_batch(code, [sha])))[1]


def _sizes(code: Path, shas: list[str]) -> dict[str, int]:
    if not shas:
        return {}
    out = run_bytes(
        code,
        "cat-file",
        "--batch-check=%(objectname) %(objectsize)",
        input="\n".join(shas).encode(),
    )
    sizes = {}
    for line in out.decode().splitlines():
        sha, _, size = line.partition(" ")
        if size.isdigit():
            sizes[sha] = int(size)
    return sizes


def _batch(code: Path, shas: list[str]) -> Iterator[tuple[str, bytes]]:
    out = run_bytes(code, "cat-file", "--batch", input=("\n".join(shas) + "\n").encode())
    pos = 0
    for sha in shas:
        end = out.index(b"\n", pos)
        header = out[pos:end].split(b" ")
        if len(header) != 3:
            raise ProposalError(f"{code}: object {sha} is missing from the approved repository")
        size = int(header[2])
        yield sha, out[end + 1 : end + 1 + size]
        pos = end + 1 + size + 1
