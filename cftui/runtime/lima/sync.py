"""A bot's `code/` and `state/` moved between the host and its Lima VM with
rsync over the VM's SSH settings (lima.ssh), always as the gateway's user on
the VM side: both trees are the agent's to write there, so no privilege is
ever used in them, and what comes back to the host is plain files only.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from cftui.runtime.lima.plan import unix_user, vm_tree
from cftui.runtime.lima.ssh import VMShell, rsync
from cftui.snapshot_exclusions import rsync_filter_args

# What the files become on the host and in the VM: the owner's only.
PRIVATE_MODES = "--chmod=Du=rwx,go=,Fu=rw,go="


def gateway_rsync_path(user: str) -> str:
    """rsync's `--rsync-path` for the VM side of a transfer of a gateway's
    tree: run as that gateway's user, never as root."""
    return f"--rsync-path=sudo -n -u {shlex.quote(user)} rsync"


async def push_tree(shell: VMShell, src: Path, bot: str, which: str, *, delete: bool) -> None:
    """The host's `code/` or `state/` into the VM's."""
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
