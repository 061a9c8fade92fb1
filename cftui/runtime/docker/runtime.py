"""The Docker runtime: each bot a contained stack of four containers
(CONTRACTS §4), driven with the docker SDK.

`DockerRuntime` is one object per engine (one client, one thread pool, the
kill's wave and the builds in flight shared by all its calls), assembled
from parts that each sit in a module of their own: `engine` (the plumbing),
`prepare` (the host side of a start), `build` (the stack's images), `infra`
(networks, volumes, containers), `readiness`, `watch` (status, events,
logs) and `kill` (the kill switch). This module sequences a start, a stop
and the gateway alone. What each container looks like is decided in
`spec`; how Docker's states read in ours, in `states`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import time
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from cftui import locks
from cftui.errors import CftuiError, RuntimeOperationError, RuntimeUnavailable
from cftui.fleet import BotConfig, FleetHome
from cftui.gateway.wiring import gateway_environment
from cftui.progress import Progress, ProgressEvent, no_progress
from cftui.runtime.base import KillReport
from cftui.runtime.docker.audit_mirror import HostAuditMirror
from cftui.runtime.docker.build import StackImages
from cftui.runtime.docker.engine import explain
from cftui.runtime.docker.infra import StackInfra
from cftui.runtime.docker.install import StackInstall
from cftui.runtime.docker.kill import StackKill
from cftui.runtime.docker.prepare import HostPreparation
from cftui.runtime.docker.readiness import StackReadiness
from cftui.runtime.docker.remote import RemotePlacement
from cftui.runtime.docker.spec import (
    ContainerSpec,
    container_name,
    egress_spec,
    front_spec,
    gateway_spec,
    llm_proxy_spec,
)
from cftui.runtime.docker.watch import StackWatch
from cftui.runtime.status import StateChange

if TYPE_CHECKING:
    from cftui.hosts.ssh import HostLink

START_TIMEOUT_S = float(os.environ.get("CFTUI_START_TIMEOUT", "90"))
STOP_TIMEOUT_S = 10
PROXY_SERVICES = ("llm-proxy", "egress")


class DockerRuntime(
    HostPreparation,
    RemotePlacement,
    StackImages,
    StackInfra,
    StackInstall,
    StackReadiness,
    StackWatch,
    StackKill,
):
    """Bots as Docker stacks on the local engine (`DOCKER_HOST` honoured), or
    on another host's engine through its SSH link (`link`): then the images
    are built here and sent there, and the bot's files placed there
    (`remote`), and its containers mount only that host's paths."""

    name = "docker"
    gateway_writes_host_tree = True  # code/ and state/ are bind mounts

    def __init__(self, home: FleetHome, client: Any = None, link: HostLink | None = None) -> None:
        super().__init__(home, client, link)
        # Another host's bots write their tree there, not on this machine's
        # disk images (cftui.botdisk leaves them alone).
        self.gateway_writes_host_tree = link is None
        self._wave = None
        self._builds = {}
        self._builder: DockerRuntime | None = None  # this machine's engine, for a remote bot
        self._mirror: HostAuditMirror | None = None  # the host's bots' audit, followed here

    def _local_builder(self) -> DockerRuntime:
        if self._builder is None:
            self._builder = DockerRuntime(self.home)
        return self._builder

    def _abort_build(self, bot: BotConfig) -> None:
        super()._abort_build(bot)
        if self._builder is not None:
            self._builder._abort_build(bot)

    async def aclose(self) -> None:
        mirror, self._mirror = self._mirror, None
        if mirror is not None:
            await mirror.stop()
        builder, self._builder = self._builder, None
        if builder is not None:
            await builder.aclose()
        await super().aclose()

    def shell_argv(self, bot: BotConfig, service: str, *, tty: bool) -> list[str]:
        """`docker exec` of `sh` in the service's container, as its user (the
        container's own: the SDK has no terminal to hand over, the CLI does).
        On another host, that host's own `docker` CLI run over the operator's
        `ssh` (`ssh_argv`: their keys and known_hosts, the host key checked),
        on the engine socket fleet.toml names."""
        exec_argv = ["exec", "-it" if tty else "-i", container_name(bot.name, service), "sh"]
        if self._link is not None:
            from cftui.hosts.ssh import ssh_argv

            host = self._link.host
            return ssh_argv(
                host, ["docker", "-H", f"unix://{host.docker_socket}", *exec_argv], tty=tty
            )
        docker = shutil.which("docker")
        if docker is None:
            raise RuntimeUnavailable(
                "the docker CLI is not installed: `cftui shell` runs `docker exec -it` "
                "(install docker-ce-cli, or use `cftui logs`)"
            )
        return [docker, *exec_argv]

    # --- start and stop ------------------------------------------------------------
    async def up(self, bot: BotConfig, progress: Progress = no_progress) -> None:
        await self._bring_up(bot, progress)

    async def _bring_up(self, bot: BotConfig, progress: Progress, *, nocache: bool = False) -> None:
        # The host's own kill marker holds a remote start, as the lock does here.
        facts = await self._refuse_if_marked(bot) if self.remote else set()
        await self.check()
        task = f"start {bot.name}"
        progress(ProgressEvent(task, 0, 4, "images"))
        try:
            if self.remote:
                images = await self._images_for_host(bot, progress, nocache=nocache)
            else:
                images = await self._run(self._images, bot, progress, nocache=nocache)
        except asyncio.CancelledError:
            # The kill cancelled this start: hang up on the build, so the
            # engine stops it and its thread does not outlive the start.
            self._abort_build(bot)
            raise
        progress(ProgressEvent(task, 1, 4, "containers"))
        env = await self._run(self._prepare_host, bot)
        if self.remote:
            await self._place_on_host(bot, facts, progress)
        extra = await self._run(self._upstream_networks, bot)
        egress_extra = await self._run(self._allowlisted_networks, bot)
        specs = self._specs(bot, images, env, extra, egress_extra)
        try:
            await self._run(self._ensure_infra, bot)
            await asyncio.gather(
                *(self._run(self._ensure_container, bot, s) for s in specs.values())
            )
        except CftuiError:
            raise
        except Exception as exc:
            raise RuntimeOperationError(
                f"{bot.name}: cannot create its stack: {explain(exc)}"
            ) from None
        try:
            progress(ProgressEvent(task, 2, 4, "proxies"))
            first = [*PROXY_SERVICES, "front"]
            await asyncio.gather(*(self._run(self._start, bot, specs[s].name) for s in first))
            # The gateway starts once the egress proxy has exported its CA.
            await self._wait_ready(bot, PROXY_SERVICES, START_TIMEOUT_S)
            # Through the egress proxy, so after it is ready and before the gateway.
            done = await self._run(self._install_deps, bot, progress)
            progress(ProgressEvent(task, 2, 4, done))
            progress(ProgressEvent(task, 3, 4, "gateway"))
            await self._run(self._start, bot, specs["gateway"].name)
            await self._wait_ready(bot, ("gateway", "front"), START_TIMEOUT_S)
        except BaseException:
            # Never leave a half stack (or a crash-looping gateway) running;
            # after a kill, the kill switch has already seen to that.
            if not locks.is_locked(self.home, bot.name):
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.down(bot))
            raise
        progress(ProgressEvent(task, 4, 4, "healthy"))

    def _specs(
        self,
        bot: BotConfig,
        images: dict[str, str],
        env: dict[str, str],
        extra: list[str],
        egress_extra: Sequence[str] = (),
    ) -> dict[str, ContainerSpec]:
        gw_env = gateway_environment(
            bot.gateway, bot=bot.name, gateway_env=env, memory_mb=bot.limits.memory_mb
        )
        at = self.layout if self.remote else None  # the host's paths, never this machine's
        return {
            "egress": egress_spec(
                self.home, bot, images["egress"], self._recipient(bot), egress_extra, at
            ),
            "llm-proxy": llm_proxy_spec(
                self.home, bot, images["llm-proxy"], env["CF_PROXY_TOKEN"], extra, at
            ),
            "gateway": gateway_spec(self.home, bot, images["gateway"], gw_env, at),
            "front": front_spec(bot, images["front"]),
        }

    async def down(self, bot: BotConfig) -> None:
        import docker.errors

        try:
            await self._run(self._stop, container_name(bot.name, "gateway"), STOP_TIMEOUT_S)
            rest = [container_name(bot.name, s) for s in ("front", "llm-proxy", "egress")]
            await asyncio.gather(*(self._run(self._stop, n, STOP_TIMEOUT_S) for n in rest))
        except docker.errors.DockerException as exc:
            raise RuntimeOperationError(f"{bot.name}: cannot stop: {explain(exc)}") from None

    async def restart(self, bot: BotConfig, progress: Progress = no_progress) -> None:
        locks.ensure_unlocked(self.home, bot.name)  # before anything is stopped
        await self.down(bot)
        await self.up(bot, progress)

    async def rebuild(self, bot: BotConfig, progress: Progress = no_progress) -> None:
        locks.ensure_unlocked(self.home, bot.name)  # before anything is stopped
        await self.down(bot)
        await self._bring_up(bot, progress, nocache=True)

    # --- the gateway alone (snapshot restore) --------------------------------------
    async def gateway_running(self, bot: BotConfig) -> bool:
        attrs = await self._run(self._inspect, container_name(bot.name, "gateway"))
        return bool(attrs and (attrs.get("State") or {}).get("Running"))

    async def stop_gateway(self, bot: BotConfig) -> None:
        await self._run(self._stop, container_name(bot.name, "gateway"), STOP_TIMEOUT_S)

    async def start_gateway(self, bot: BotConfig) -> None:
        locks.ensure_unlocked(self.home, bot.name)  # before the host is rewired
        if self.remote:
            # The host's marker holds it as the lock does; the restore there
            # gave the state its old owner (`snapshots.remote`), and the
            # rest of the host's files are the last start's.
            await self._refuse_if_marked(bot)
        name = container_name(bot.name, "gateway")
        if await self._run(self._inspect, name) is None:
            raise RuntimeOperationError(
                f"{bot.name} has no gateway container: start the bot (`cftui start {bot.name}`)"
            )
        if not self.remote:
            await self._run(self._prepare_host, bot)  # a restored state: rewire, re-own
        await self._run(self._start, bot, name)
        await self._wait_ready(bot, ("gateway",), START_TIMEOUT_S)

    @contextlib.asynccontextmanager
    async def held_still(self, bot: BotConfig) -> AsyncIterator[None]:
        """`docker pause` (the cgroup freezer) on a running gateway for as
        long as its state/ is read; the kill switch still kills it at once
        (SIGKILL reaches a frozen container)."""
        import docker.errors

        name = container_name(bot.name, "gateway")
        paused = False
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            attrs = await self._run(self._inspect, name)
            state = (attrs or {}).get("State") or {}
            if state.get("Running") and not state.get("Paused"):
                await self._run(self.api.pause, name)
                paused = True
        try:
            yield
        finally:
            if paused:  # gone or killed meanwhile: nothing to thaw
                with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                    await self._run(self.api.unpause, name)

    async def kill(self, bot: BotConfig) -> KillReport:
        """The kill (`StackKill.kill`); on another host, with the kill
        marker written there at the same time (a failure to write it is in
        the report, and holds nothing up)."""
        if self._link is None:
            return await super().kill(bot)
        marker = self._link.host.kill_marker(bot.name)
        stamp = json.dumps({"bot": bot.name, "killed_at": time.time()}).encode()
        report, written = await asyncio.gather(
            super().kill(bot), self._link.write_private(marker, stamp), return_exceptions=True
        )
        if isinstance(report, BaseException):
            raise report
        if isinstance(written, CftuiError):
            report.errors.append(f"kill marker: {written}")
        elif isinstance(written, BaseException):
            raise written
        return report

    def state_link(self, bot: BotConfig) -> HostLink | None:
        """Another host's link: the bot's `state/` is under its root."""
        return self._link

    # --- a remote bot's audit --------------------------------------------------------
    async def follow_audit(self, bot: BotConfig) -> None:
        """On another host, mirror the bot's `audit/<bot>/` into the fleet
        home (`HostAuditMirror`: one for all the host's bots), until
        `aclose`; here, the proxies write the fleet home's files themselves."""
        if self._link is None:
            return
        if self._mirror is None:
            self._mirror = HostAuditMirror(self.home, self._link)
        self._mirror.follow(bot.name)

    async def unfollow_audit(self, bot: BotConfig) -> None:
        if self._mirror is not None:
            self._mirror.unfollow(bot.name)

    async def events(self, bots: Sequence[BotConfig]) -> AsyncIterator[StateChange]:
        """The engine's events (`StackWatch.events`); on another host the
        bots' audit mirrors start first, as a Lima VM's do."""
        for bot in bots:
            await self.follow_audit(bot)
        async for change in super().events(bots):
            yield change

    # --- beyond the interface ------------------------------------------------------
    async def remove(self, bot: BotConfig) -> None:
        """Remove the bot's containers, networks, volumes and host-isolation
        rules (`cftui delete`, the old host of `cftui move`, tests). Files in
        the fleet home are not touched. On another host its files under the
        host's root go too, once its audit is mirrored here in full."""
        await self._run(self._remove, bot.name)
        if self._link is None:
            return
        await self._catch_up_audit(bot)
        await self._clear_host(bot)

    async def _catch_up_audit(self, bot: BotConfig) -> None:
        """The host's audit of the bot, whose proxies are gone, brought into
        the fleet home's mirror before the host's copy is removed (refused,
        in one line, if it cannot be: nothing there is removed then)."""
        import asyncssh

        assert self._link is not None
        live, self._mirror = self._mirror, None  # its other bots follow again on their next look
        if live is not None:
            await live.stop()
        once = HostAuditMirror(self.home, self._link)
        try:
            await once.catch_up(bot.name)
        except (OSError, asyncssh.Error, CftuiError) as exc:
            raise RuntimeOperationError(
                f"host {self._link.host.name}: cannot bring {bot.name}'s audit home "
                f"({' '.join(str(exc).split())[:200] or type(exc).__name__}), so its files "
                "there are kept: run the delete again once the host answers"
            ) from None
        finally:
            await once.stop()
