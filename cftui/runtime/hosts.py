"""`cftui hosts`: each host of the fleet with its engine's version, whether
it answers, and how many bots name it, asked of every host at once and
each within a bounded time, so that one host that is down costs the
listing no more than its timeout.
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from cftui.errors import CftuiError
from cftui.fleet import FleetHome
from cftui.hosts.config import LOCAL, HostConfig

PROBE_TIMEOUT_S = 8.0


@dataclass(frozen=True)
class HostReport:
    """What `cftui hosts` says of one host."""

    name: str
    url: str
    reachable: bool
    engine_version: str  # "" when it did not answer
    bots: int
    error: str = ""  # one line, when unreachable

    def as_json(self) -> dict[str, object]:
        return asdict(self)


async def _engine_version(home: FleetHome, host: HostConfig, timeout: float) -> str:
    """The version of the host's engine, through the runtime's own client."""
    from cftui.runtime.docker.runtime import DockerRuntime

    if host.is_local:
        runtime = DockerRuntime(home)
        try:
            return await asyncio.wait_for(runtime.engine_version(), timeout)
        finally:
            await runtime.aclose()
    from cftui.hosts.ssh import HostLink

    link = HostLink(host)
    try:
        await link.engine_socket(timeout)
        remote = DockerRuntime(home, link=link)
        try:
            return await asyncio.wait_for(remote.engine_version(), timeout)
        finally:
            await remote.aclose()
    finally:
        await link.aclose()  # closes the forward: a blocked engine call ends with it


async def probe_host(home: FleetHome, host: HostConfig, bots: int, timeout: float) -> HostReport:
    """One host's report; never raises for a host that is down."""
    try:
        version = await _engine_version(home, host, timeout)
    except TimeoutError:
        return HostReport(host.name, host.url, False, "", bots, "no answer in time")
    except CftuiError as exc:
        return HostReport(host.name, host.url, False, "", bots, str(exc))
    return HostReport(host.name, host.url, True, version, bots)


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


async def clear_kill_markers(home: FleetHome, bots: Sequence[str]) -> list[str]:
    """`cftui unlock` of bots on other hosts: each one's kill marker
    (`HostLayout.kill_marker`) removed on its host, the hosts at once, each
    within a bounded time. One line per host it could not clear (a host
    that is down keeps its markers: the next unlock clears them)."""
    from cftui.hosts.layout import HostLayout
    from cftui.hosts.ssh import HostLink

    configs = home.bots()
    by_host: dict[str, list[str]] = {}
    for name in bots:
        config = configs.get(name)
        if config is not None and config.host != LOCAL:
            by_host.setdefault(config.host, []).append(name)

    async def clear(host: HostConfig, names: list[str]) -> str:
        link = HostLink(host)
        layout = HostLayout.of(host)
        paths = " ".join(shlex.quote(str(layout.kill_marker(n))) for n in names)
        try:
            ran = await link.run(f"rm -f -- {paths}", timeout=PROBE_TIMEOUT_S, what="unlock")
        except CftuiError as exc:
            return f"{', '.join(names)}: kill marker kept: {exc}"
        finally:
            await link.aclose()
        return "" if ran.code == 0 else f"host {host.name}: kill marker kept: {ran.reason()}"

    hosts = home.hosts()
    found = await asyncio.gather(*(clear(hosts[h], n) for h, n in by_host.items() if h in hosts))
    return [line for line in found if line]
