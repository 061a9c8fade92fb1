"""Waiting for a started stack to answer: each service probed until ready
(`health`), and a clear error naming the service when one exits,
crash-loops or does not answer in time."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any

from cftui.errors import RuntimeOperationError
from cftui.fleet import BotConfig
from cftui.gateway.wiring import GATEWAY_PORT
from cftui.runtime.docker.engine import DockerEngine
from cftui.runtime.docker.health import Opener, service_ready
from cftui.runtime.docker.spec import EGRESS_PORT, LLM_PROXY_PORT, container_name, int_network

_POLL_S = 0.2


def service_address(bot: BotConfig, service: str, attrs: dict[str, Any]) -> tuple[str, int]:
    """Where the host probes a service of the bot's stack (its inspect)."""
    if service == "front":
        return "127.0.0.1", bot.gateway_port
    nets = (attrs.get("NetworkSettings") or {}).get("Networks") or {}
    net: dict[str, Any] = nets.get(int_network(bot.name)) or next(iter(nets.values()), {})
    port = {"gateway": GATEWAY_PORT, "llm-proxy": LLM_PROXY_PORT, "egress": EGRESS_PORT}
    return net.get("IPAddress") or "", port[service]


async def answering(
    bot: BotConfig, service: str, attrs: dict[str, Any], opener: Opener | None = None
) -> bool:
    """Whether the service answers its probe now (opened by the engine's
    host: `DockerEngine._opener`)."""
    host, port = service_address(bot, service, attrs)
    return bool(host) and await service_ready(service, host, port, opener)


class StackReadiness(DockerEngine):
    """Readiness of a starting stack (part of `DockerRuntime`)."""

    def _next_exit(self, name: str) -> int | str:
        """The exit code of a crash-looping container's next crash; it is
        stopped afterwards either way."""
        code: int | str = "?"
        with contextlib.suppress(Exception):
            code = self.api.wait(name, timeout=5, condition="next-exit")["StatusCode"]
        with contextlib.suppress(Exception):
            self.api.update_container(name, restart_policy={"Name": "no"})
            self.api.stop(name, timeout=1)
        return code

    def _last_log(self, name: str, lines: int = 4) -> str:
        try:
            raw = self.api.logs(name, tail=lines, stdout=True, stderr=True)
        except Exception:
            return ""
        text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        return " | ".join(line.strip() for line in text.splitlines() if line.strip())[-400:]

    async def _wait_ready(self, bot: BotConfig, services: Sequence[str], timeout: float) -> None:
        """Until each service answers its probe; a clear error naming the
        service when one exits, crash-loops, or does not answer in time."""
        deadline = time.monotonic() + timeout
        pending = list(services)
        while pending:
            infos = await asyncio.gather(
                *(self._run(self._inspect, container_name(bot.name, s)) for s in pending)
            )
            for service, attrs in zip(list(pending), infos, strict=True):
                name = container_name(bot.name, service)
                if attrs is None:
                    raise RuntimeOperationError(f"{bot.name}: {name} disappeared while starting")
                state = attrs.get("State") or {}
                restarts = int(attrs.get("RestartCount") or 0)
                if state.get("Status") in ("exited", "dead") or state.get("Restarting") or restarts:
                    if state.get("Status") not in ("exited", "dead"):
                        # Mid-restart, Docker's ExitCode may read 0: catch the
                        # loop's next exit, then end the loop.
                        state = {**state, "ExitCode": await self._run(self._next_exit, name)}
                    log = await self._run(self._last_log, name)
                    what = "crash-loops" if restarts or state.get("Restarting") else "exited"
                    oom = ", out of memory" if state.get("OOMKilled") else ""
                    raise RuntimeOperationError(
                        f"{bot.name}: the {service} {what} (exit {state.get('ExitCode')}{oom}, "
                        f"{restarts} restarts)" + (f"; last log: {log}" if log else "")
                    )
                health = (state.get("Health") or {}).get("Status")
                if health == "healthy" or await answering(bot, service, attrs, self._opener):
                    pending.remove(service)
            if not pending:
                return
            if time.monotonic() > deadline:
                raise RuntimeOperationError(
                    f"{bot.name}: {', '.join(pending)} not ready after {timeout:.0f} s "
                    f"(see `docker logs {container_name(bot.name, pending[0])}`)"
                )
            await asyncio.sleep(_POLL_S)
