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

from cftui import hostgit
from cftui.errors import ProposalError

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
