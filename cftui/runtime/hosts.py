"""`cftui hosts`: each host of the fleet with its engine's version, whether
it answers, and how many bots name it, asked of every host at once and
each within a bounded time, so that one host that is down costs the
listing no more than its timeout.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass

from cftui.errors import CftuiError
from cftui.fleet import FleetHome
from cftui.hosts.config import HostConfig

PROBE_TIMEOUT_S = 8.0


@dataclass(frozen=True)
class HostReport:
    """What `cftui hosts` says of one host."""

    name: str
    url: str
    reachable: bool
    engine_version: str  # "" when it did not answer
    bots: int
    error: str = ""  # one line: why it is unreachable, or cannot run bots (not root)

    def as_json(self) -> dict[str, object]:
        return asdict(self)


async def _engine_version(home: FleetHome, host: HostConfig, timeout: float) -> tuple[str, str]:
    """The version of the host's engine, through the runtime's own client,
    and why a reachable host cannot run bots ("" when it can)."""
    from cftui.runtime.docker.runtime import DockerRuntime

    if host.is_local:
        runtime = DockerRuntime(home)
        try:
            return await asyncio.wait_for(runtime.engine_version(), timeout), ""
        finally:
            await runtime.aclose()
    from cftui.errors import RuntimeOperationError
    from cftui.hosts.ssh import HostLink

    link = HostLink(host)
    try:
        await link.engine_socket(timeout)
        remote = DockerRuntime(home, link=link)
        try:
            version = await asyncio.wait_for(remote.engine_version(), timeout)
        finally:
            await remote.aclose()
        try:
            await asyncio.wait_for(link.require_root("a bot"), timeout)
        except RuntimeOperationError as exc:
            return version, str(exc)
        return version, ""
    finally:
        await link.aclose()  # closes the forward: a blocked engine call ends with it


async def probe_host(home: FleetHome, host: HostConfig, bots: int, timeout: float) -> HostReport:
    """One host's report; never raises for a host that is down."""
    try:
        version, cannot = await _engine_version(home, host, timeout)
    except TimeoutError:
        return HostReport(host.name, host.url, False, "", bots, "no answer in time")
    except CftuiError as exc:
        return HostReport(host.name, host.url, False, "", bots, str(exc))
    return HostReport(host.name, host.url, True, version, bots, cannot)


async def probe_hosts(home: FleetHome, timeout: float = PROBE_TIMEOUT_S) -> list[HostReport]:
    """Every host of the fleet, `local` first, probed in parallel."""
    hosts = home.hosts()
    counts = dict.fromkeys(hosts, 0)
    for bot in home.bots().values():
        counts[bot.host] += 1
    return list(
        await asyncio.gather(
            *(probe_host(home, h, counts[h.name], timeout) for h in hosts.values())
        )
    )
