"""A bot's disk bound as the fleet sees it: when its tree moves onto its
image, grows, is reported and is deleted (the mechanism is `loopdisk`).

Only a runtime whose gateway writes the bot's tree on this host (Docker's
bind mounts: `Runtime.gateway_writes_host_tree`) gets one. A Lima bot writes
inside its VM, which has a disk of its own (`lima.disk_gib`, shared by the
bots of one VM), so its host tree is only what cftui copies back.

The tree moves onto its image at the bot's next start (`prepare_for_start`),
not at `cftui init`: until the gateway first runs, nothing but the operator
has written it. Where loop images cannot be used (cftui not root, no loop
driver), the start goes on unbounded and says so every time, in a note and
in `cftui status`, rather than refusing to run a bot the operator could run
before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cftui import loopdisk
from cftui.fleet import BotConfig, FleetHome
from cftui.humanize import human_bytes
from cftui.progress import Progress, ProgressEvent, no_progress
from cftui.sizes import format_size

if TYPE_CHECKING:
    from cftui.runtime.base import Runtime

# asyncio and the events log load with a start (`prepare_for_start`), not
# with `status`, which `cftui list` calls.


@dataclass(frozen=True)
class DiskStatus:
    """One bot's disk, for `cftui status` and the TUI."""

    state: str  # bounded, not mounted, pending, unbounded, off, vm, unknown
    size: int | None = None
    used: int | None = None
    full: bool = False
    note: str = ""

    def line(self) -> str:
        """One line, such as "1.2 GiB of 4.0 GiB used" or "FULL: ..."."""
        if self.size is not None and self.used is not None:
            text = f"{human_bytes(self.used)} of {human_bytes(self.size)} used"
            if self.full:
                return f"FULL: {text} (the gateway's writes fail with ENOSPC)"
            return text
        return f"{self.state}: {self.note}" if self.note else self.state

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "size": self.size,
            "used": self.used,
            "full": self.full,
            "note": self.note,
        }


def status(home: FleetHome, bot: BotConfig, host_tree: bool = True) -> DiskStatus | None:
    """The bot's disk as it is now (None where its runtime keeps no tree on
    this host and is no VM); never mounts anything, never raises."""
    if bot.runtime == "lima":
        return DiskStatus("vm", note=f"its VM's disk ({bot.lima.disk_gib} GiB, {bot.lima.vm})")
    if not host_tree:
        return None
    image, tree = home.disk_image(bot.name), home.bot_repo(bot.name, mount=False)
    try:
        state = loopdisk.state_of(image, tree)
        if state == "mounted":
            use = loopdisk.usage(tree)
            return DiskStatus("bounded", use.size, use.used, use.full)
    except OSError as exc:
        return DiskStatus("unknown", note=exc.strerror or str(exc))
    if state == "unmounted":
        return DiskStatus("not mounted", note="mounted again at the next start or access")
    if bot.disk_bytes is None:
        return DiskStatus("off", note='no bound (disk = "off" in fleet.toml)')
    reason = loopdisk.unavailable_reason()
    if reason is not None:
        return DiskStatus("unbounded", note=f"{reason}; the gateway can fill the host's disk")
    return DiskStatus("pending", note=f"bounded at {format_size(bot.disk_bytes)} at next start")


async def prepare_for_start(
    home: FleetHome, bot: BotConfig, runtime: Runtime, progress: Progress = no_progress
) -> list[str]:
    """Before a start: the bot's tree on its image, mounted, grown to the
    size fleet.toml asks. Returns notes for the operator (unbounded, full)."""
    import asyncio

    from cftui.audit.events import record_event

    if not runtime.gateway_writes_host_tree or bot.disk_bytes is None:
        return []
    image, tree = home.disk_image(bot.name), home.bot_repo(bot.name, mount=False)
    state = await asyncio.to_thread(loopdisk.state_of, image, tree)
    if state == "missing":
        return []  # the runtime says what to do about a missing tree
    reason = loopdisk.unavailable_reason()
    if state == "plain" and reason is not None:
        return [
            f"{bot.name}: code/ and state/ have no disk bound ({reason}): "
            f"its gateway can fill the disk that holds {home.root}"
        ]
    size = bot.disk_bytes
    rewrites = state == "plain" or loopdisk.needs_growing(image, size)
    if rewrites and await runtime.gateway_running(bot):
        await runtime.stop_gateway(bot)  # what it writes must land in the image
    if state == "plain":
        progress(
            ProgressEvent(
                f"start {bot.name}", message=f"moving its tree onto a {human_bytes(size)} disk"
            )
        )
        if await asyncio.to_thread(loopdisk.bind, image, tree, size):
            record_event(home, "disk", bot.name, change="bound", size=format_size(size))
    else:
        await asyncio.to_thread(loopdisk.require_tree, image, tree)
        if await asyncio.to_thread(loopdisk.grow, image, tree, size):
            record_event(home, "disk", bot.name, change="grown", size=format_size(size))
    notes = []
    current = image.stat().st_size
    if current > size:
        notes.append(
            f"{bot.name}: its disk stays {human_bytes(current)}: fleet.toml asks "
            f"{format_size(size)}, and a disk is never shrunk"
        )
    disk = status(home, bot)
    if disk is not None and disk.full:
        record_event(home, "disk_full", bot.name, used=disk.used, size=disk.size)
        notes.append(
            f"{bot.name}: its disk is full ({disk.line()}): free space in its state/ "
            "or raise `disk` in fleet.toml"
        )
    return notes


def delete(home: FleetHome, bot: str) -> None:
    """Unmount and delete the bot's image and the tree in it (the loop
    device goes with it). Nothing to do for a tree that was never bounded."""
    image, tree = home.disk_image(bot), home.bot_repo(bot, mount=False)
    if image.exists() or loopdisk.marker_visible(tree) or loopdisk.is_mounted(image, tree):
        loopdisk.destroy(image, tree)
