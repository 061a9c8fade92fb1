"""Watching a bot's stack: its services' states in one listing, the
engine's events stream as state changes (no polling), and a service's
log lines, each stream read in a thread of its own (`DockerEngine._stream`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from typing import Any

from cftui.errors import RuntimeUnavailable
from cftui.fleet import BotConfig
from cftui.runtime.base import RUNNING, SERVICES, STARTING, BotStatus, LogLine, StateChange
from cftui.runtime.docker.engine import DockerEngine, explain
from cftui.runtime.docker.health import Opener
from cftui.runtime.docker.readiness import answering
from cftui.runtime.docker.spec import LABEL_BOT, LABEL_SERVICE, container_name
from cftui.runtime.docker.states import event_change, parse_docker_time, service_status


class StackWatch(DockerEngine):
    """Status, events and logs (part of `DockerRuntime`)."""

    async def status(self, bots: Sequence[BotConfig]) -> dict[str, BotStatus]:
        names = {b.name for b in bots}

        def listing() -> list[dict]:
            return self.api.containers(all=True, filters={"label": LABEL_BOT})

        import docker.errors

        try:
            summaries = await self._run(listing)
            wanted = [s["Id"] for s in summaries if (s.get("Labels") or {}).get(LABEL_BOT) in names]
            infos = await asyncio.gather(*(self._run(self._inspect, cid) for cid in wanted))
        except (docker.errors.DockerException, OSError) as exc:
            raise RuntimeUnavailable(f"docker: {explain(exc)}") from None
        found: dict[tuple[str, str], dict] = {}
        for attrs in infos:
            if attrs is None:
                continue
            labels = (attrs.get("Config") or {}).get("Labels") or {}
            found[(labels.get(LABEL_BOT, ""), labels.get(LABEL_SERVICE, ""))] = attrs
        out = {}
        for bot in bots:
            services = {s: service_status(s, found.get((bot.name, s))) for s in SERVICES}
            out[bot.name] = BotStatus(bot.name, self.name, services)
        await _probe_unchecked(bots, out, found, self._opener)
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


async def _probe_unchecked(
    bots: Sequence[BotConfig],
    out: dict[str, BotStatus],
    found: dict[tuple[str, str], dict],
    opener: Opener | None = None,
) -> None:
    """A service Docker has not health-checked yet (its first check comes an
    interval after the start, 10 s in our images) reads `starting` though it
    may answer already: the start said done when it did, and the fleet said
    running only at that first check. The start's own probe decides."""
    unchecked = [
        (bot, svc)
        for bot in bots
        for svc, st in out[bot.name].services.items()
        if st.state == STARTING and st.health == "starting"
    ]
    if not unchecked:
        return
    answers = await asyncio.gather(
        *(answering(bot, svc, found[(bot.name, svc)], opener) for bot, svc in unchecked)
    )
    for (bot, svc), ok in zip(unchecked, answers, strict=True):
        if ok:
            status = out[bot.name]
            services = dict(status.services)
            old = services[svc]
            detail = ", ".join(
                d for d in (old.detail, "answering; Docker's first check is due") if d
            )
            services[svc] = replace(old, state=RUNNING, detail=detail)
            out[bot.name] = replace(status, services=services)


def _log_line(bot: str, service: str, raw: bytes) -> LogLine:
    text = raw.decode(errors="replace").rstrip("\r")
    stamp, sep, rest = text.partition(" ")
    ts = parse_docker_time(stamp) if sep else None
    return LogLine(bot, service, rest if ts else text, ts)
