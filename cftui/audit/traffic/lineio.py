"""Whole lines of the log read with `os.pread` (no mmap: resident memory
stays flat, and a worker process opens its own descriptor), and newlines
counted and found with C-level calls. The leaf every other module here reads with."""

from __future__ import annotations

import os
from collections.abc import Callable

# Filter / totals read size: small enough to stay in the CPU cache. Read as
# `lineio.CHUNK` where another module uses it, so a test can shrink it.
CHUNK = 1 << 20


def read_lines(fd: int, pos: int, stop: int) -> bytes:
    """Whole lines from `pos` (a line start): up to CHUNK bytes, never past
    `stop` (a line start too), cut after their last newline; a line longer
    than a chunk is read whole. Empty at `stop` or at the end of the file."""
    data = os.pread(fd, min(CHUNK, stop - pos), pos)
    cut = data.rfind(b"\n")
    if data and cut < 0:  # one line longer than a chunk: take it whole
        nl = _next_newline(fd, pos + len(data))
        data = os.pread(fd, nl + 1 - pos, pos)
        cut = len(data) - 1
    return data[: cut + 1]


def _next_newline(fd: int, pos: int) -> int:
    while True:
        data = os.pread(fd, 65536, pos)
        if not data:
            return pos - 1
        i = data.find(b"\n")
        if i >= 0:
            return pos + i
        pos += len(data)


def newlines_in(data: bytes, start: int, end: int) -> int:
    """How many newlines data[start:end] holds. `bytes.count` tests each
    byte in a plain loop; deleting them with `replace` goes by `memchr`,
    ~3x faster even with the copy."""
    part = data[start:end] if start or end < len(data) else data
    return len(part) - len(part.replace(b"\n", b""))


def last_newline_before(fd: int, end: int) -> int:
    """The offset of the last newline before `end`, or -1."""
    pos = end
    while pos > 0:
        start = max(0, pos - 65536)
        i = os.pread(fd, pos - start, start).rfind(b"\n")
        if i >= 0:
            return start + i
        pos = start
    return -1


def feed_range(
    path: str, start: int, end: int, ino: int, feed: Callable[[bytes, int], None]
) -> bool:
    """Feed the whole lines in [start, end) of `path` to `feed(data, pos)`,
    chunk by chunk (in a worker process: it opens the file itself); False,
    with nothing fed, when the file is gone or is no longer the one asked
    for (inode `ino`, at least `end` bytes): rotated or truncated."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        st = os.fstat(fd)
        if st.st_ino != ino or st.st_size < end:
            return False
        pos = start
        while pos < end:
            data = read_lines(fd, pos, end)
            if not data:
                break
            feed(data, pos)
            pos += len(data)
    finally:
        os.close(fd)
    return True
