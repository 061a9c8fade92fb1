"""The runtime interface: what the CLI, `--run`, the kill switch and the TUI
ask of a place where bots run (Docker today, Lima beside it).

Every method is a coroutine; an implementation whose client blocks (the
docker SDK) runs those calls in threads, so no caller's event loop (the TUI's
above all) ever waits on one.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cftui.progress import Progress, no_progress
from cftui.runtime.status import SERVICES, BotStatus, StateChange

if TYPE_CHECKING:
    from cftui.fleet import BotConfig, FleetHome
    from cftui.hosts.ssh import HostLink

# Not a service of the stack: the start's dependency install, whose output
# cftui keeps (cftui.deps.install_log); `logs` shows it like a service's.
INSTALLER = "installer"
LOG_SERVICES = (*SERVICES, INSTALLER)
INSTALLER_POLL_S = 1.0


@dataclass(frozen=True)
class ServiceUsage:
    """A running service's CPU and memory, as `docker stats` shows them:
    CPU in percent of one core (200.0 is two cores busy), None when the
    engine had no earlier sample to measure against; memory without the
    page cache the kernel can drop."""

    cpu_percent: float | None
    mem_bytes: int
    mem_limit: int | None = None

    @classmethod
    def from_docker_stats(cls, stats: dict[str, Any]) -> ServiceUsage:
        """The figures of one `stats(stream=False)` answer (cgroup v1 or v2)."""
        cpu, pre = stats.get("cpu_stats") or {}, stats.get("precpu_stats") or {}
        used = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (
            pre.get("cpu_usage") or {}
        ).get("total_usage", 0)
        system = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
        cores = (
            cpu.get("online_cpus")
            or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or ())
            or 1
        )
        percent = used / system * cores * 100.0 if system > 0 and used >= 0 and pre else None
        mem = stats.get("memory_stats") or {}
        detail = mem.get("stats") or {}
        cache = detail.get("inactive_file", detail.get("total_inactive_file", 0))
        usage = max(0, int(mem.get("usage", 0)) - int(cache))
        return cls(percent, usage, mem.get("limit"))


@dataclass(frozen=True)
class LogLine:
    """One line of a service's log."""

    bot: str
    service: str
    text: str
    ts: datetime | None = None


@dataclass
class KillReport:
    """Exactly what the kill switch did to one bot, step by step."""

    bot: str
    network_cut: bool = False
    gateway_killed: bool = False
    stopped: list[str] = field(default_factory=list)
    already_gone: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # Operations in flight (a start, a restore) that the kill cancelled.
    cancelled: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def merge(self, later: KillReport) -> None:
        """Fold in a second kill of the same bot (after what was in flight
        ended): whatever it found running it cut and killed."""
        if later.gateway_killed:
            self.gateway_killed = True
            self.network_cut = later.network_cut or self.network_cut
            self.already_gone = [g for g in self.already_gone if not g.startswith("gateway")]
        self.stopped += [s for s in later.stopped if s not in self.stopped]
        self.already_gone = [g for g in self.already_gone if g not in self.stopped]
        self.errors += [e for e in later.errors if e not in self.errors]
        self.cancelled += [c for c in later.cancelled if c not in self.cancelled]

    def to_json(self) -> dict[str, Any]:
        """The report as `cftui kill --json` prints it (the same facts as `summary`)."""
        return {
            "bot": self.bot,
            "ok": self.ok,
            "network_cut": self.network_cut,
            "gateway_killed": self.gateway_killed,
            "stopped": list(self.stopped),
            "already_gone": list(self.already_gone),
            "cancelled": list(self.cancelled),
            "errors": list(self.errors),
            "seconds": self.seconds,
        }

    def summary(self) -> str:
        parts = []
        if any(s.startswith("gateway") for s in self.already_gone):
            # Nothing was running to cut or kill: say so, not "not killed".
            parts.append("gateway was not running")
        else:
            parts.append("network cut" if self.network_cut else "network NOT cut")
            parts.append("gateway killed" if self.gateway_killed else "gateway NOT killed")
        if self.stopped:
            parts.append("stopped " + ", ".join(self.stopped))
        if self.already_gone:
            parts.append("already gone: " + ", ".join(self.already_gone))
        if self.cancelled:
            parts.append("cancelled " + ", ".join(self.cancelled))
        if self.errors:
            parts.append("errors: " + "; ".join(self.errors))
        return f"{self.bot}: " + ", ".join(parts) + f" ({self.seconds * 1000:.0f} ms)"


class Runtime(ABC):
    """A place where bots' stacks run."""

    name: str = "abstract"
    # Whether the gateway writes the bot's tree on this host (bind mounts):
    # such a tree is held on a disk image of fixed size (cftui.botdisk).
    gateway_writes_host_tree: bool = False

    def __init__(self, home: FleetHome) -> None:
        self.home = home

    @contextlib.contextmanager
    def gate(self, bot: BotConfig, what: str = "") -> Iterator[None]:
        """Hold around every call that creates, starts or sets a restart
        policy on anything of the bot: raises BotLocked, before the call, if
        the kill switch holds it (`cftui.locks`). Every implementation uses
        it, so no caller can forget the lock."""
        from cftui import locks

        with locks.gate(self.home, bot.name, what):
            yield

    @abstractmethod
    async def check(self) -> None:
        """Raise RuntimeUnavailable (one line, with what to do) if unreachable."""

    @abstractmethod
    async def up(self, bot: BotConfig, progress: Progress = no_progress) -> None:
        """Build what is missing and start the bot's stack; wait until healthy."""

    @abstractmethod
    async def down(self, bot: BotConfig) -> None:
        """Stop the bot's stack cleanly; state and images are kept."""

    async def restart(self, bot: BotConfig, progress: Progress = no_progress) -> None:
        await self.down(bot)
        await self.up(bot, progress)

    @abstractmethod
    async def rebuild(self, bot: BotConfig, progress: Progress = no_progress) -> None:
        """Rebuild the gateway from `code/` and restart the stack."""

    @abstractmethod
    async def status(self, bots: Sequence[BotConfig]) -> dict[str, BotStatus]:
        """Current state of each bot's services, in one round trip if possible."""

    @abstractmethod
    def events(self, bots: Sequence[BotConfig]) -> AsyncIterator[StateChange]:
        """State changes as the runtime reports them (no polling loop)."""

    @abstractmethod
    def logs(
        self, bot: BotConfig, service: str, *, follow: bool = True, tail: int = 200
    ) -> AsyncIterator[LogLine]:
        """A service's log lines, the last `tail` first, then followed."""

    async def installer_logs(
        self, bot: BotConfig, *, follow: bool = True, tail: int = 200
    ) -> AsyncIterator[LogLine]:
        """The last dependency install's output; followed, the output of each
        install that replaces it (the file is read in a thread)."""
        import asyncio

        from cftui.deps import install_log

        seen = await asyncio.to_thread(install_log.version, self.home, bot.name)
        for ts, text in await asyncio.to_thread(install_log.read, self.home, bot.name, tail):
            yield LogLine(bot.name, INSTALLER, text, ts)
        while follow:
            await asyncio.sleep(INSTALLER_POLL_S)
            now = await asyncio.to_thread(install_log.version, self.home, bot.name)
            if now is None or now == seen:
                continue
            seen = now
            for ts, text in await asyncio.to_thread(install_log.read, self.home, bot.name, None):
                yield LogLine(bot.name, INSTALLER, text, ts)

    @abstractmethod
    async def kill(self, bot: BotConfig) -> KillReport:
        """Cut the gateway's network, kill it, stop the rest; never restart."""

    @abstractmethod
    async def gateway_running(self, bot: BotConfig) -> bool:
        """Whether the gateway service is up (restore stops and restarts it)."""

    @abstractmethod
    async def stop_gateway(self, bot: BotConfig) -> None:
        """Stop the gateway alone, leaving the proxies up."""

    @abstractmethod
    async def start_gateway(self, bot: BotConfig) -> None:
        """Start the gateway alone (refused, through the gate, while locked)."""

    @contextlib.asynccontextmanager
    async def held_still(self, bot: BotConfig) -> AsyncIterator[None]:
        """The gateway frozen while the host reads its `state/` (a snapshot),
        so the agent cannot swap a directory for a link in the middle of the
        walk and have the host archive what the link points at. A no-op
        where the host reads a copy (Lima pulls one first)."""
        yield

    async def remove(self, bot: BotConfig) -> None:
        """Remove everything the runtime made for the bot (`cftui delete`);
        files in the fleet home are not touched."""
        from cftui.errors import RuntimeOperationError

        raise RuntimeOperationError(f"{bot.name}: the {self.name} runtime cannot delete a bot yet")

    def shell_argv(self, bot: BotConfig, service: str, *, tty: bool) -> list[str]:
        """The command that opens an interactive shell where the service runs
        (`cftui shell`), as the service's own user; `tty` when stdin is a
        terminal. Run by the caller, which waits for it."""
        from cftui.errors import RuntimeUnavailable

        raise RuntimeUnavailable(f"the {self.name} runtime opens no shell")

    async def follow_audit(self, bot: BotConfig) -> None:  # noqa: B027 - optional hook
        """Start mirroring the bot's audit files into the fleet home's
        `audit/<bot>/`, where they are written elsewhere (a Lima VM, another
        Docker host); a no-op where the proxies write the fleet home's own.
        `events` starts it for the bots it watches (the TUI, `--run`)."""

    async def unfollow_audit(self, bot: BotConfig) -> None:  # noqa: B027 - optional hook
        """Stop mirroring the bot's audit files from here: it moved to
        another host, or is gone (`cftui.mirrors`); a no-op where there is
        no mirror."""

    def state_link(self, bot: BotConfig) -> HostLink | None:
        """The SSH link to the host that holds the bot's `state/` when it is
        not the fleet home's (another Docker host): snapshots stream it from
        there and back (`cftui.snapshots.remote`). None: the fleet home's
        `state/` is the bot's (after `pull_state`, for Lima)."""
        return None

    async def pull_state(self, bot: BotConfig) -> None:  # noqa: B027 - optional hook
        """Bring `state/` to the host before a snapshot (Lima syncs it back)."""

    async def push_state(self, bot: BotConfig) -> None:  # noqa: B027 - optional hook
        """Send `state/` to where the gateway runs after a restore."""

    async def pull_proposals(self, bot: BotConfig) -> None:  # noqa: B027 - optional hook
        """Bring the proposals tree the gateway writes to the host's
        `proposals/` before it is read (a scan, a promotion). A no-op where
        the gateway writes the host's tree itself (Docker's bind mount)."""

    async def push_proposals(self, bot: BotConfig) -> None:  # noqa: B027 - optional hook
        """Send the host's `proposals/` to where the gateway writes its tree,
        after cftui changed it (a reject, a promotion)."""

    async def usage(self, bot: BotConfig) -> dict[str, ServiceUsage]:
        """Each running service's CPU and memory now (one sample, which may
        take the engine a second or two); empty where the runtime cannot say."""
        return {}

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections (SSH, HTTP pools)."""
