"""Bytes of the proposals tree, read as hostile input: git blob ids, text or
binary, and the line counts a review shows."""

from __future__ import annotations

import difflib
import hashlib
import os
import stat
from pathlib import Path

from cftui.errors import ProposalError
from cftui.proposals.hostile import MAX_FILE_BYTES, file_refusal
from cftui.securefs import READ_FLAGS, UnsafeFile, read_agent_file

# Line counts above this many bytes a side are not worth difflib's time.
COUNT_MAX_BYTES = 1 << 20


def blob_id(data: bytes) -> str:
    """The git blob id of `data` (what `git hash-object` prints)."""
    h = hashlib.sha1(b"blob %d\0" % len(data), usedforsecurity=False)
    h.update(data)
    return h.hexdigest()


def is_binary(data: bytes) -> bool:
    """git's rule: a NUL byte in the first 8000 bytes."""
    return b"\0" in data[:8000]


def read_at(dir_fd: int, name: str, expect: os.stat_result) -> tuple[bytes, os.stat_result] | None:
    """A regular file's bytes, read under its directory's descriptor with no
    link followed and no fifo waited on; None when it is no longer the file
    the walk saw (it changed meanwhile: the next scan sees the new one).
    Returns the bytes and the file's stat, taken after the read."""
    try:
        fd = os.open(name, READ_FLAGS, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if st.st_ino != expect.st_ino or not stat.S_ISREG(st.st_mode):
            return None
        if file_refusal(st) is not None:
            return None
        chunks = []
        left = MAX_FILE_BYTES + 1
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
            chunks.append(chunk)
            left -= len(chunk)
        after = os.fstat(fd)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > MAX_FILE_BYTES or len(data) != after.st_size:
        return None
    if (after.st_ctime_ns, after.st_size) != (st.st_ctime_ns, st.st_size):
        return data, os.stat_result((0,) * 10)  # changed while read: never cached
    return data, after


def read_proposed(root: Path, rel: str) -> bytes:
    """One proposed file by path, refused when it is not a plain file."""
    try:
        data = read_agent_file(root, rel, MAX_FILE_BYTES)
    except UnsafeFile as exc:
        raise ProposalError(str(exc)) from None
    except (OSError, ValueError) as exc:
        why = getattr(exc, "strerror", None) or exc
        raise ProposalError(f"cannot read {root / rel}: {why}") from None
    if data is None:
        raise ProposalError(f"{rel} is no longer in the proposals of this bot: scan again")
    return data


def line_counts(old: bytes | None, new: bytes | None) -> tuple[int | None, int | None]:
    """Lines added and removed from `old` to `new` (None for either missing
    side is zero lines); (None, None) for binary or very large content."""
    old = old or b""
    new = new or b""
    if is_binary(old) or is_binary(new):
        return None, None
    if not old:
        return len(new.splitlines()), 0
    if not new:
        return 0, len(old.splitlines())
    if len(old) > COUNT_MAX_BYTES or len(new) > COUNT_MAX_BYTES:
        return None, None
    a, b = old.splitlines(), new.splitlines()
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    same = sum(block.size for block in matcher.get_matching_blocks())
    return len(b) - same, len(a) - same
