"""The kill switch on Docker: the gateway's networks cut, then the gateway
killed, then the rest of the stack stopped; every restart policy set to
`no` so the engine never brings any of it back. Each step is reported,
whatever state things are in (`KillReport`)."""

from __future__ import annotations

import asyncio
import contextlib
import time

from cftui.fleet import BotConfig
from cftui.runtime.base import KillReport
from cftui.runtime.docker.engine import DockerEngine, explain
from cftui.runtime.docker.spec import container_name, int_network

KILL_STOP_TIMEOUT_S = 2  # the rest of a killed stack gets this long to exit


class StackKill(DockerEngine):
    """The kill switch (part of `DockerRuntime`); `_wave` holds the kills
    that started together."""

    _wave: Wave | None

    def _cut(self, gateway: str, network: str) -> str | None:
        """Disconnect the gateway from one network; an error text, or None."""
        import docker.errors

        try:
            self.api.disconnect_container_from_network(gateway, network, force=True)
        except docker.errors.NotFound:
            return None  # the container or the network is gone: nothing to cut
        except docker.errors.APIError as exc:
            if "not connected" in explain(exc):
                return None
            return f"disconnect from {network}: {explain(exc)}"
        return None

    def _no_restart(self, name: str) -> str | None:
        """Set the restart policy to `no`; an error text if the engine refused
        (it can while the container changes state: tried a few times)."""
        import docker.errors

        last = ""
        for attempt in range(4):
            try:
                self.api.update_container(name, restart_policy={"Name": "no"})
                return None
            except docker.errors.NotFound:
                return None
            except (docker.errors.DockerException, OSError) as exc:
                last = explain(exc)
                time.sleep(0.05 * (attempt + 1))
        return f"restart policy of {name} not changed: {last}"

    def _kill_container(self, name: str) -> str:
        """SIGKILL; 'killed', 'not running' or 'missing'."""
        import docker.errors

        try:
            self.api.kill(name)
        except docker.errors.NotFound:
            return "missing"
        except docker.errors.APIError as exc:
            if exc.status_code == 409 or "is not running" in explain(exc):
                return "not running"
            raise
        return "killed"

    def _stop_for_kill(self, name: str) -> tuple[str, str | None]:
        policy_error = self._no_restart(name)
        outcome = self._stop(name, KILL_STOP_TIMEOUT_S)
        if policy_error and outcome != "missing":
            policy_error = self._no_restart(name)  # stopped now: try once more
        return outcome, policy_error

    async def kill(self, bot: BotConfig) -> KillReport:
        """Cut the gateway's networks, then kill it, then stop the rest in
        parallel; restart policies are set to `no` so Docker never brings
        any of them back. Reports each step, whatever state things are in.

        Bots killed together form a wave: no bot's proxies are stopped until
        every gateway of the wave is cut and killed, so the engine spends
        its first moments on what contains the agents."""
        wave = self._wave
        if wave is None or wave.done.is_set():
            wave = self._wave = Wave()
        wave.pending += 1
        report = KillReport(bot.name)
        try:
            await self._kill_gateway(bot, report)
        finally:
            wave.pending -= 1
            if wave.pending == 0:
                wave.done.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wave.done.wait(), KILL_STOP_TIMEOUT_S)
        await self._stop_rest(bot, report)
        return report

    async def _kill_gateway(self, bot: BotConfig, report: KillReport) -> None:
        import docker.errors

        gateway = container_name(bot.name, "gateway")
        internal = int_network(bot.name)
        # The gateway's own network is cut at once, while an inspect looks
        # for any other network someone may have attached it to.
        first = await asyncio.gather(
            self._run(self._cut, gateway, internal),
            self._run(self._inspect, gateway),
            return_exceptions=True,
        )
        cut_error, attrs = first
        if isinstance(attrs, BaseException):
            report.errors.append(f"inspect gateway: {explain(attrs)}")
            attrs = None
        if isinstance(cut_error, BaseException):
            cut_error = f"disconnect from {internal}: {explain(cut_error)}"
        if attrs is None:
            if cut_error:
                report.errors.append(cut_error)
            elif not report.errors:
                report.already_gone.append("gateway")
            return
        others = [
            n for n in (attrs.get("NetworkSettings") or {}).get("Networks") or {} if n != internal
        ]
        cuts = await asyncio.gather(*(self._run(self._cut, gateway, n) for n in others))
        errors = [c for c in (cut_error, *cuts) if c]
        report.errors += errors
        report.network_cut = not errors
        try:
            outcome, policy_error = await asyncio.gather(
                self._run(self._kill_container, gateway), self._run(self._no_restart, gateway)
            )
        except (docker.errors.DockerException, OSError) as exc:
            report.errors.append(f"kill gateway: {explain(exc)}")
            return
        if policy_error:  # refused mid-kill: the container is dead now, try again
            policy_error = await self._run(self._no_restart, gateway)
            if policy_error:
                report.errors.append(policy_error)
        if outcome == "killed":
            report.gateway_killed = True
        else:
            report.already_gone.append(f"gateway ({outcome})")

    async def _stop_rest(self, bot: BotConfig, report: KillReport) -> None:
        rest = ("front", "llm-proxy", "egress")
        outcomes = await asyncio.gather(
            *(self._run(self._stop_for_kill, container_name(bot.name, s)) for s in rest),
            return_exceptions=True,
        )
        for service, result in zip(rest, outcomes, strict=True):
            if isinstance(result, BaseException):
                report.errors.append(f"stop {service}: {explain(result)}")
                continue
            outcome, policy_error = result
            if outcome == "missing":
                report.already_gone.append(service)
            else:
                report.stopped.append(service)
            if policy_error:
                report.errors.append(policy_error)


class Wave:
    """Kills that started together; see `StackKill.kill`."""

    def __init__(self) -> None:
        self.pending = 0
        self.done = asyncio.Event()
