"""A bot's `code/`, `state/` and proposals tree moved between the host and
its Lima VM with rsync over the VM's SSH settings (lima.ssh), always as the
gateway's user on the VM side: the trees are the agent's to write there, so
no privilege is ever used in them, and what comes back to the host is plain
files, directories and links (as links) only.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import shlex
from collections.abc import Sequence
from pathlib import Path

from cftui.runtime.lima.plan import unix_user, vm_tree
from cftui.runtime.lima.ssh import VMShell, rsync
from cftui.securefs import UnsafeFile, agent_dir, make_agent_dirs, remove_agent_entry
from cftui.snapshot_exclusions import rsync_filter_args

# At most this many oversized files of a pull are stood in for on the host.
MAX_OVERSIZED = 1000

# What the files become on the host and in the VM: the owner's only.
PRIVATE_MODES = "--chmod=Du=rwx,go=,Fu=rw,go="

# The proposals tree crosses in both directions as the agent left it, and
# is hostile both ways: links are copied as links (never followed: no -L,
# -K or --copy-*links), devices, fifos and sockets are not copied, owners,
# groups and permission bits are not kept (no setuid survives; new files
# get the receiver's umask) but the executable bit is, as git records it,
# and the file list is built whole before anything is written
# (--no-inc-recursive), so an entry is one type for the whole transfer.
PROPOSALS_ARGS = (
    "--recursive",
    "--links",
    "--times",
    "--executability",
    "--no-perms",
    "--no-owner",
    "--no-group",
    "--no-devices",
    "--no-specials",
    "--no-inc-recursive",
    "--delete",
)
# rsync's "partial transfer" and "vanished source files", the agent's doing
# (a file it made unreadable, one it removed mid-transfer): the rest still
# arrives. After an I/O error rsync deletes nothing on the host, so what the
# agent hid shows as it was, never as a removal.
PARTIAL = (23, 24)


def gateway_rsync_path(user: str) -> str:
    """rsync's `--rsync-path` for the VM side of a transfer of a gateway's
    tree: run as that gateway's user, never as root."""
    return f"--rsync-path=sudo -n -u {shlex.quote(user)} rsync"


async def push_tree(
    shell: VMShell,
    src: Path,
    bot: str,
    which: str,
    *,
    delete: bool,
    keep: Sequence[str] = (),
    only_new: bool = False,
) -> None:
    """The host's `code/` or `state/` (or a directory in them) into the VM's.
    `keep`: paths (relative to `src`) left untouched in the VM, neither
    overwritten nor deleted (the gateway's writable paths); `only_new`: files
    the VM already has are not replaced."""
    args = [
        "-a",
        # The receiver runs as the gateway's user (so the files are its
        # own): no privilege is used in a tree the agent can write, where a
        # link swapped in mid-transfer would otherwise steer root.
        gateway_rsync_path(unix_user("gateway", bot)),
        PRIVATE_MODES,
    ]
    if delete:
        args.append("--delete")
    if only_new:
        args.append("--ignore-existing")
    # Anchored at the top of the transfer, directories only; an excluded
    # path is also spared by --delete.
    args += [f"--exclude=/{rel}/" for rel in keep]
    await rsync(
        shell,
        *args,
        f"{src}/",
        f"{shell.rsync_shell()[1]}:{vm_tree(bot, which)}/",
        what=f"{bot}'s {which}/",
    )


async def pull_state(shell: VMShell, bot: str, dest: Path) -> None:
    """The VM's `state/` into the host's `dest`, without what a snapshot leaves out."""
    dest.mkdir(parents=True, exist_ok=True, mode=0o700)
    await rsync(
        shell,
        "-a",
        "--delete",
        "--no-owner",
        "--no-group",
        # The agent wrote this tree: no device or fifo of its making on the host.
        "--no-devices",
        "--no-specials",
        PRIVATE_MODES,
        # Sent as the gateway's user: it reads nothing the agent could not.
        gateway_rsync_path(unix_user("gateway", bot)),
        *rsync_filter_args(),  # what the snapshot leaves out, left in the VM
        f"{shell.rsync_shell()[1]}:{vm_tree(bot, 'state')}/",
        f"{dest}/",
        what=f"{bot}'s state/",
    )


async def pull_proposals(shell: VMShell, bot: str, dest: Path, *, max_bytes: int) -> None:
    """The VM's proposals tree into the host's `dest`, which then holds what
    the agent proposes as the VM does (but for what PROPOSALS_ARGS leaves
    out), for the scan to judge. A file over `max_bytes`, which the scan
    would refuse unread, is not carried (the host disk is not the VM's to
    fill): an empty sparse file of its size stands in for it on the host,
    so that the scan refuses it with its reason as it does on Docker."""
    await rsync(
        shell,
        *PROPOSALS_ARGS,
        f"--max-size={max_bytes}",
        # Sent as the gateway's user: it reads nothing the agent could not.
        gateway_rsync_path(unix_user("gateway", bot)),
        f"{shell.rsync_shell()[1]}:{vm_tree(bot, 'proposals')}/",
        f"{dest}/",
        what=f"{bot}'s proposals",
        tolerate=PARTIAL,
    )
    found = await oversized(shell, bot, max_bytes)
    if found:
        await asyncio.to_thread(stand_in_for, dest, found)


def oversized_listing(tree: str, max_bytes: int) -> str:
    """The shell pipeline that lists each file of `tree` over `max_bytes` as
    `SIZE PATH\\0` (at most MAX_OVERSIZED, no link followed), in base64: the
    names are the agent's bytes, not necessarily UTF-8. Run it as the
    tree's user (`parse_oversized` reads its output)."""
    return (
        f"find {shlex.quote(tree)} -xdev -type f -size +{int(max_bytes)}c -printf '%s %P\\0' "
        f"2>/dev/null | head -z -n {MAX_OVERSIZED} | base64 -w0"
    )


async def oversized(shell: VMShell, bot: str, max_bytes: int) -> list[tuple[str, int]]:
    """(path, size) of each file of the VM's proposals tree over `max_bytes`,
    as the gateway's user finds them (no link followed)."""
    listing = oversized_listing(vm_tree(bot, "proposals"), max_bytes)
    res = await shell.run(
        f"runuser -u {shlex.quote(unix_user('gateway', bot))} -- sh -c {shlex.quote(listing)}",
        check=False,
        what="listing oversized proposals",
    )
    return parse_oversized(res.out)


def parse_oversized(answer: bytes | str) -> list[tuple[str, int]]:
    """(path, size) pairs of `oversized_listing`'s output; a path that is
    empty, absolute or steps out (`..`) is left out, and so is all of a
    malformed answer."""
    try:
        raw = base64.b64decode(answer.strip(), validate=True)
    except (binascii.Error, ValueError):
        return []
    out: list[tuple[str, int]] = []
    for item in raw.split(b"\0"):
        size, _, name = item.partition(b" ")
        rel = os.fsdecode(name)
        parts = rel.split("/")
        if size.isdigit() and rel and all(p not in ("", ".", "..") for p in parts):
            out.append((rel, int(size)))
    return out


def stand_in_for(dest: Path, found: list[tuple[str, int]]) -> None:
    """An empty sparse file of each size at each path of the host's tree
    (whatever stood there removed by name first); a path with a link on the
    way is left alone, never followed."""
    for rel, size in found:
        parent, _, name = rel.rpartition("/")
        try:
            if parent:
                make_agent_dirs(dest, parent)
            remove_agent_entry(dest, rel)
            with agent_dir(dest, parent) as dfd:
                if dfd is None:
                    continue
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
                fd = os.open(name, flags, 0o644, dir_fd=dfd)
                try:
                    os.ftruncate(fd, size)
                finally:
                    os.close(fd)
        except (UnsafeFile, OSError):
            continue


async def push_proposals(shell: VMShell, src: Path, bot: str) -> None:
    """The host's proposals tree (as a seed, a reject or a promotion left
    it) into the VM's, replacing it (a big approved file included)."""
    await rsync(
        shell,
        *PROPOSALS_ARGS,
        # Received as the gateway's user: a link it planted steers no privilege.
        gateway_rsync_path(unix_user("gateway", bot)),
        f"{src}/",
        f"{shell.rsync_shell()[1]}:{vm_tree(bot, 'proposals')}/",
        what=f"{bot}'s proposals",
    )
