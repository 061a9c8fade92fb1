"""The fleet as `cftui list` and `cftui status` show it: each bot's stack
as its runtime reads it, with its kill-switch lock and its disk.

Two ways to get it, one result. `lifecycle.fleet_status` asks every
runtime through `Runtimes` (asyncio, the docker SDK, SSH, limactl) and is
what the TUI and the controller use. `read_now` is the fast path of the
read-only commands: when every bot is a docker bot of this machine and the
engine is a unix socket (`engine_socket.local_socket`), it reads the stacks
there with no SDK and no event loop (`listing.read_status`, the same steps
`DockerRuntime.status` runs); any other fleet goes the first way. Both end
in `merge`, so a lock or a disk reads the same either way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from cftui import locks
from cftui.errors import CftuiError, RuntimeUnavailable
from cftui.fleet import BotConfig, FleetHome
from cftui.hosts.config import LOCAL
from cftui.runtime.status import BotStatus

if TYPE_CHECKING:
    from cftui.botdisk import DiskStatus


def disks(
    home: FleetHome, bots: Sequence[BotConfig], host_tree: Mapping[str, bool]
) -> dict[str, DiskStatus | None]:
    """Each bot's disk (`host_tree`: whether its runtime's gateway writes
    its tree on this machine; `Runtime.gateway_writes_host_tree`)."""
    from cftui import botdisk

    return {b.name: botdisk.status(home, b, host_tree[b.name]) for b in bots}


def merge(
    home: FleetHome,
    bots: Sequence[BotConfig],
    statuses: Mapping[str, BotStatus],
    disk: Mapping[str, DiskStatus | None],
) -> dict[str, BotStatus]:
    """The runtimes' statuses in fleet order, each with its lock and disk
    (a bot no runtime answered for: no services)."""
    locked = set(locks.locked_bots(home))
    ordered = {}
    for bot in bots:
        st = statuses.get(bot.name) or BotStatus(bot.name, bot.runtime)
        ordered[bot.name] = replace(st, locked=bot.name in locked, disk=disk[bot.name])
    return ordered


def read_now(
    home: FleetHome,
    bots: Sequence[BotConfig],
    *,
    brief: bool = False,
    probe: bool = True,
    timeout: float | None = None,
) -> tuple[dict[str, BotStatus], list[str]] | None:
    """`lifecycle.fleet_status`, blocking and light, or None when a bot
    needs another runtime or the engine is not this machine's unix socket
    (the caller then takes the full path). `brief`: each bot's state and
    uptime exact, not every service's details (`listing.read_status`) nor
    its disk. `probe` and `timeout` (each of the engine's answers; the
    runtime's client's by default): for the TUI's first look, which the
    fleet's rows wait for, so that it never waits long."""
    if any(b.runtime != "docker" or b.host != LOCAL for b in bots):
        return None
    from cftui.runtime.docker.engine_socket import TIMEOUT_S, EngineSocket, local_socket

    path = local_socket()
    if path is None:
        return None
    from cftui.runtime.docker.listing import read_status

    errors: list[str] = []
    try:
        with EngineSocket(path, TIMEOUT_S if timeout is None else timeout) as engine:
            try:
                found = read_status(engine, bots, brief=brief, probe=probe)
            except (KeyError, TypeError, AttributeError, ValueError) as exc:
                # JSON, but not the engine API's shape: one line, as for an engine down.
                raise RuntimeUnavailable(
                    f"docker: an answer of the engine at {path} is not of the Engine API's "
                    f"shape ({type(exc).__name__})"
                ) from None
    except CftuiError as exc:
        errors.append(str(exc))
        found = {b.name: BotStatus(b.name, b.runtime, error=str(exc)) for b in bots}
    # This machine's docker bots write their tree here (bind mounts).
    disk = (
        dict.fromkeys((b.name for b in bots), None)
        if brief
        else disks(home, bots, {b.name: True for b in bots})
    )
    return merge(home, bots, found, disk), errors
