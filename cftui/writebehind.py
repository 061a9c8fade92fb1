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
import os

STEP = 8 << 20  # bytes per writeback request
IN_FLIGHT = 4  # requests left to run before the oldest is waited for


class WriteBehind:
    """Call `written(n)` after each write of `n` bytes to `fd`."""

    def __init__(self, fd: int, offset: int = 0) -> None:
        self.fd = fd
        self.end = offset  # bytes written so far
        self.submitted = offset  # bytes already handed to writeback
        self.pending: collections.deque[tuple[int, int]] = collections.deque()
        self.enabled = hasattr(os, "sync_file_range")

    def written(self, n: int) -> None:
        self.end += n
        if not self.enabled or self.end - self.submitted < STEP:
            return
        start, length = self.submitted, self.end - self.submitted
        try:
            os.sync_file_range(self.fd, start, length, os.SYNC_FILE_RANGE_WRITE)
            self.submitted = self.end
            self.pending.append((start, length))
            if len(self.pending) > IN_FLIGHT:
                old_start, old_length = self.pending.popleft()
                flags = (
                    os.SYNC_FILE_RANGE_WAIT_BEFORE
                    | os.SYNC_FILE_RANGE_WRITE
                    | os.SYNC_FILE_RANGE_WAIT_AFTER
                )
                os.sync_file_range(self.fd, old_start, old_length, flags)
        except OSError:
            self.enabled = False  # not supported here (ESPIPE, EINVAL): fsync does it all
