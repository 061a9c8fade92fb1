"""Why an entry of the proposals tree can never be promoted.

The gateway writes the tree, so any entry may be a trap for the host: a link
to `/etc/passwd` that a careless read follows, a hard link sharing its inode
with a file outside, a fifo that blocks a reader forever, a device, a setuid
binary that a promotion would install, a sparse file claiming 2 GB, or git
metadata (hooks, config, attributes) that a host git would obey. Each gets
a reason the operator can read; none is read, followed or executed.
"""

from __future__ import annotations

import os
import stat

from cftui.proposal_tree import MAX_FILE_BYTES
from cftui.securefs import kind_of

__all__ = ["GIT_NAMES", "GIT_REFUSAL", "MAX_FILE_BYTES", "file_refusal", "link_refusal"]
GIT_NAMES = frozenset({".git"})


def file_refusal(st: os.stat_result, max_bytes: int = MAX_FILE_BYTES) -> str | None:
    """The reason a non-directory entry cannot be promoted, from its lstat;
    None for a plain, single-named, bounded regular file. Links are judged
    by the scan (one that the approved tree holds as it is, is no change)."""
    mode = st.st_mode
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return f"{kind_of(st)}: special files are never read or promoted"
    if not stat.S_ISREG(mode):
        return "not a regular file"
    if mode & (stat.S_ISUID | stat.S_ISGID):
        return "setuid or setgid bit set: such a file is never promoted"
    if st.st_nlink > 1:
        return (
            f"a hard link ({st.st_nlink} names for one file; the others may be "
            "outside the tree): never read or promoted"
        )
    if st.st_size > max_bytes:
        return f"larger than {max_bytes >> 20} MiB ({st.st_size} bytes): refused unread"
    return None


def link_refusal(target: str) -> str:
    shown = target if len(target) <= 120 else target[:120] + "…"
    return f"a symbolic link (to {shown!r}): links are never followed or promoted"


GIT_REFUSAL = "git metadata (.git): never read as a proposal, never promoted"
