"""Write-behind for a file written sequentially and fsynced at the end.

A snapshot must be fsynced before it gets its final name; left to the page
cache, a 1 GB file is all dirty when that fsync comes, and the create waits
for the whole write-out after the encryption is done. Starting writeback of
each few megabytes as soon as they are written (`sync_file_range`, Linux)
overlaps the disk with the encryption, and waiting for the range a few steps
behind keeps the dirty pages bounded, so the final fsync has little left.
Where `sync_file_range` is missing or refused (other systems, some
filesystems, pipes) it does nothing: the final fsync still makes the file
durable, only later.
"""

from __future__ import annotations

import collections
import ctypes
import errno
import os
from collections.abc import Callable

STEP = 8 << 20  # bytes per writeback request
IN_FLIGHT = 4  # requests left to run before the oldest is waited for

# <linux/fs.h>; Python's os module has no sync_file_range, so libc's is called.
WAIT_BEFORE, WRITE, WAIT_AFTER = 1, 2, 4


def _load() -> Callable[[int, int, int, int], None] | None:
    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None  # not Linux, or no such call in this libc
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int

    def sync_file_range(fd: int, offset: int, length: int, flags: int) -> None:
        if fn(fd, offset, length, flags) != 0:  # ctypes releases the GIL meanwhile
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))

    return sync_file_range


_sync_file_range = _load()


class WriteBehind:
    """Call `written(n)` after each write of `n` bytes to `fd`."""

    def __init__(self, fd: int, offset: int = 0) -> None:
        self.fd = fd
        self.end = offset  # bytes written so far
        self.submitted = offset  # bytes already handed to writeback
        self.pending: collections.deque[tuple[int, int]] = collections.deque()
        self.enabled = _sync_file_range is not None

    def written(self, n: int) -> None:
        self.end += n
        if not self.enabled or self.end - self.submitted < STEP:
            return
        assert _sync_file_range is not None
        start, length = self.submitted, self.end - self.submitted
        try:
            _sync_file_range(self.fd, start, length, WRITE)
            self.submitted = self.end
            self.pending.append((start, length))
            if len(self.pending) > IN_FLIGHT:
                old_start, old_length = self.pending.popleft()
                _sync_file_range(self.fd, old_start, old_length, WAIT_BEFORE | WRITE | WAIT_AFTER)
        except OSError as exc:
            if exc.errno not in (errno.ESPIPE, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise  # EIO, ENOSPC: the write itself failed; say so now
            self.enabled = False  # not supported here: the final fsync does it all
