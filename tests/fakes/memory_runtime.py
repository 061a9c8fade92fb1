"""An in-memory `Runtime` for the Pilot tests: the real Docker runtime is
exercised by the runtime's own tests and by the tmux end-to-end test here.

It keeps each bot's services in a dict, reports changes on `events()` as the
real one does, and records every call so tests can assert on them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

from cftui.fleet import BotConfig, FleetHome
from cftui.progress import Progress, ProgressEvent, no_progress
from cftui.runtime import Runtimes
from cftui.runtime.base import INSTALLER, KillReport, LogLine, Runtime, ServiceUsage
from cftui.runtime.status import (
    KILLED,
    RUNNING,
    SERVICES,
    STOPPED,
    BotStatus,
    ServiceStatus,
    StateChange,
)

STARTED = datetime(2026, 11, 24, 6, 0, 0, tzinfo=UTC)


class MemoryRuntime(Runtime):
    name = "docker"

    def __init__(self, home: FleetHome, running: Sequence[str] = ()) -> None:
        super().__init__(home)
        self.states: dict[str, dict[str, str]] = {}
        self.calls: list[tuple[str, str]] = []
        self.events_queue: asyncio.Queue[StateChange] | None = None
        self.log_lines: dict[tuple[str, str], list[str]] = {}
        # A queue here feeds a followed log line by line after `log_lines`
        # (a service writing while the operator watches).
        self.log_feeds: dict[tuple[str, str], asyncio.Queue[str]] = {}
        # What `usage()` samples per bot and service (a test sets the figures).
        self.usage_figures: dict[str, dict[str, ServiceUsage]] = {}
        # Set `building` to an unset Event to hold up() and rebuild() in their
        # build step (a slow image build); `build_started` says one is there.
        self.building: asyncio.Event | None = None
        self.build_started = asyncio.Event()
        for bot in running:
            self.states[bot] = dict.fromkeys(SERVICES, RUNNING)

    def _set(self, bot: str, state: str, services: Sequence[str] = SERVICES) -> None:
        current = self.states.setdefault(bot, dict.fromkeys(SERVICES, "missing"))
        for svc in services:
            current[svc] = state
            if self.events_queue is not None:
                self.events_queue.put_nowait(StateChange(bot, svc, state, STARTED))

    async def check(self) -> None:
        return None

    async def _build(self, bot: BotConfig) -> None:
        """Where a slow image build would be: held while `building` is set."""
        if self.building is not None:
            self.build_started.set()
            await self.building.wait()

    def _start(self, bot: BotConfig, services: Sequence[str] = SERVICES) -> None:
        """Through the gate, as every runtime starts anything."""
        with self.gate(bot, "starting"):
            self._set(bot.name, RUNNING, services)

    async def up(self, bot: BotConfig, progress: Progress = no_progress) -> None:
        self.calls.append(("up", bot.name))
        await self._build(bot)
        progress(ProgressEvent("start", 1, 2, "starting services"))
        self._start(bot)

    async def down(self, bot: BotConfig) -> None:
        self.calls.append(("down", bot.name))
        self._set(bot.name, STOPPED)

    async def rebuild(self, bot: BotConfig, progress: Progress = no_progress) -> None:
        self.calls.append(("rebuild", bot.name))
        self._set(bot.name, STOPPED)
        await self._build(bot)
        self._start(bot)

    async def status(self, bots: Sequence[BotConfig]) -> dict[str, BotStatus]:
        out = {}
        for bot in bots:
            states = self.states.get(bot.name, {})
            services = {
                svc: ServiceStatus(
                    svc,
                    states.get(svc, "missing"),
                    started_at=STARTED,
                    image=f"clawfactory/{svc}"
                    if svc != "gateway"
                    else f"clawfactory/gateway-{bot.name}",
                )
                for svc in SERVICES
            }
            out[bot.name] = BotStatus(bot.name, self.name, services)
        return out

    async def events(self, bots: Sequence[BotConfig]) -> AsyncIterator[StateChange]:
        self.events_queue = asyncio.Queue()
        while True:
            yield await self.events_queue.get()

    async def logs(
        self, bot: BotConfig, service: str, *, follow: bool = True, tail: int = 200
    ) -> AsyncIterator[LogLine]:
        if service == INSTALLER:  # the real file, as every runtime reads it
            async for line in self.installer_logs(bot, follow=follow, tail=tail):
                yield line
            return
        for text in self.log_lines.get((bot.name, service), [f"{service} of {bot.name} ready"]):
            yield LogLine(bot.name, service, text)
        feed = self.log_feeds.get((bot.name, service))
        while follow and feed is not None:
            yield LogLine(bot.name, service, await feed.get())
        if follow:
            await asyncio.Event().wait()

    async def usage(self, bot: BotConfig) -> dict[str, ServiceUsage]:
        self.calls.append(("usage", bot.name))
        running = self.states.get(bot.name, {})
        figures = self.usage_figures.get(bot.name, {})
        return {s: u for s, u in figures.items() if running.get(s) == RUNNING}

    async def kill(self, bot: BotConfig) -> KillReport:
        self.calls.append(("kill", bot.name))
        self._set(bot.name, KILLED, ("gateway",))
        self._set(bot.name, STOPPED, ("front", "llm-proxy", "egress"))
        return KillReport(bot.name, network_cut=True, gateway_killed=True, stopped=["front"])

    async def gateway_running(self, bot: BotConfig) -> bool:
        return self.states.get(bot.name, {}).get("gateway") == RUNNING

    async def stop_gateway(self, bot: BotConfig) -> None:
        self.calls.append(("stop_gateway", bot.name))
        self._set(bot.name, STOPPED, ("gateway",))

    async def start_gateway(self, bot: BotConfig) -> None:
        self.calls.append(("start_gateway", bot.name))
        self._start(bot, ("gateway",))


class MemoryRuntimes(Runtimes):
    """`Runtimes` whose docker kind is the in-memory runtime."""

    def __init__(self, home: FleetHome, runtime: MemoryRuntime) -> None:
        super().__init__(home)
        self._by_kind["docker"] = runtime
        self.runtime = runtime

    async def aclose(self) -> None:  # keep the runtime across kill() calls
        return None
