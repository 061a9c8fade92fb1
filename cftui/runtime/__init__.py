"""Where bots run. `base` is the interface; `docker` and `lima` implement it.

Implementations are imported lazily so that a command that needs neither
(`cftui init`, `cftui traffic`) does not pay for the docker SDK or asyncssh.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from cftui.errors import RuntimeUnavailable

if TYPE_CHECKING:
    from cftui.fleet import BotConfig, FleetHome
    from cftui.hosts.ssh import HostLink
    from cftui.runtime.base import Runtime


def runtime_for(kind: str, home: FleetHome) -> Runtime:
    """The runtime implementation for a bot's `runtime` key."""
    if kind == "docker":
        try:
            from cftui.runtime.docker.runtime import DockerRuntime
        except ImportError as exc:  # pragma: no cover - only before the module lands
            raise RuntimeUnavailable(f"docker runtime not yet available ({exc})") from None
        return DockerRuntime(home)
    if kind == "lima":
        try:
            from cftui.runtime.lima.runtime import LimaRuntime
        except ImportError as exc:  # pragma: no cover
            raise RuntimeUnavailable(f"lima runtime not yet available ({exc})") from None
        return LimaRuntime(home)
    raise RuntimeUnavailable(f"unknown runtime {kind!r}: use docker or lima")


class Runtimes:
    """One runtime instance per kind for a fleet home, created on first use
    (from any thread: the TUI makes them in a worker, away from its loop)."""

    def __init__(self, home: FleetHome) -> None:
        self.home = home
        self._lock = threading.RLock()
        self._by_kind: dict[str, Runtime] = {}
        self._by_host: dict[str, Runtime] = {}  # another host's Docker runtime
        self.links: dict[str, HostLink] = {}  # one SSH link per remote host

    def get(self, kind: str) -> Runtime:
        with self._lock:
            if kind not in self._by_kind:
                self._by_kind[kind] = runtime_for(kind, self.home)
            return self._by_kind[kind]

    def for_bot(self, bot: BotConfig) -> Runtime:
        """The runtime that runs `bot` where fleet.toml puts it: this
        machine's, or the Docker runtime of the bot's host, which reaches
        that host's engine through the host's one SSH link (reused by every
        bot there, opened on first use)."""
        from cftui.hosts.config import LOCAL

        if bot.host == LOCAL:
            return self.get(bot.runtime)
        with self._lock:
            if bot.host not in self._by_host:
                from cftui.hosts.ssh import HostLink
                from cftui.runtime.docker.runtime import DockerRuntime

                link = self.links[bot.host] = HostLink(self.home.host(bot.host))
                self._by_host[bot.host] = DockerRuntime(self.home, link=link)
            return self._by_host[bot.host]

    async def aclose(self) -> None:
        for runtime in (*self._by_kind.values(), *self._by_host.values()):
            await runtime.aclose()
        self._by_kind.clear()
        self._by_host.clear()
        for link in self.links.values():
            await link.aclose()
        self.links.clear()
