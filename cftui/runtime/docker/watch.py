"""Watching a bot's stack: its services' states in one listing, the
engine's events stream as state changes (no polling), and a service's
log lines, each stream read in a thread of its own (`DockerEngine._stream`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from cftui.errors import RuntimeUnavailable
from cftui.fleet import BotConfig
from cftui.runtime.base import INSTALLER, LogLine
from cftui.runtime.docker import listing
from cftui.runtime.docker.engine import DockerEngine, explain
from cftui.runtime.docker.names import LABEL_BOT, container_name
from cftui.runtime.docker.states import event_change, parse_docker_time
from cftui.runtime.status import BotStatus, StateChange


class StackWatch(DockerEngine):
    """Status, events and logs (part of `DockerRuntime`)."""

    async def status(self, bots: Sequence[BotConfig]) -> dict[str, BotStatus]:
        """The stacks as `listing` reads them, each inspect in a pool thread
        (another host's engine answers each over SSH: in parallel)."""
        import docker.errors

        def containers() -> list[dict]:  # the client is made in the pool, never on the loop
            return self.api.containers(all=True, filters=listing.FILTERS)

        try:
            summaries = await self._run(containers)
            ids = listing.wanted(summaries, bots)
            infos = await asyncio.gather(*(self._run(self._inspect, cid) for cid in ids))
        except (docker.errors.DockerException, OSError) as exc:
            raise RuntimeUnavailable(f"docker: {explain(exc)}") from None
        found = listing.by_service(infos)
        out = listing.statuses(bots, found)
        await listing.probe_unchecked(bots, out, found, self._opener)
        return out

    async def events(self, bots: Sequence[BotConfig]) -> AsyncIterator[StateChange]:
        names = {b.name for b in bots}

        def open_stream() -> Any:
            return self.api.events(decode=True, filters={"type": "container", "label": [LABEL_BOT]})

        async for event in self._stream(open_stream):
            change = event_change(event)
            if change is not None and change.bot in names:
                yield change

    async def logs(
        self, bot: BotConfig, service: str, *, follow: bool = True, tail: int = 200
    ) -> AsyncIterator[LogLine]:
        if service == INSTALLER:
            async for line in self.installer_logs(bot, follow=follow, tail=tail):
                yield line
            return
        name = container_name(bot.name, service)
        if await self._run(self._inspect, name) is None:
            return

        def open_stream() -> Any:
            return self.api.logs(name, stream=True, follow=follow, tail=tail, timestamps=True)

        pending = b""
        async for chunk in self._stream(open_stream):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                yield _log_line(bot.name, service, raw)
        if pending:
            yield _log_line(bot.name, service, pending)


def _log_line(bot: str, service: str, raw: bytes) -> LogLine:
    text = raw.decode(errors="replace").rstrip("\r")
    stamp, sep, rest = text.partition(" ")
    ts = parse_docker_time(stamp) if sep else None
    return LogLine(bot, service, rest if ts else text, ts)
