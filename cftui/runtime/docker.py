"""The Docker runtime: each bot a contained stack of four containers
(CONTRACTS §4), driven with the docker SDK.

Every SDK call blocks, so each runs in this runtime's own thread pool (not
the event loop's default one, which has 6 threads on a 2-core machine and
would serialise a 10-bot kill). The async methods only sequence those calls.
What each container looks like is decided in `docker_spec`; how Docker's
states read in ours, in `docker_states`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from cfproxies.envfile import read_env_file

from cftui import locks
from cftui.errors import (
    BotLocked,
    CftuiError,
    FleetError,
    RuntimeOperationError,
    RuntimeUnavailable,
)
from cftui.fleet import BotConfig, FleetHome
from cftui.gateway_wiring import (
    GATEWAY_PORT,
    gateway_environment,
)
from cftui.runtime import host_prep
from cftui.runtime.base import (
    SERVICES,
    BotStatus,
    KillReport,
    LogLine,
    Progress,
    ProgressEvent,
    Runtime,
    StateChange,
    no_progress,
)
from cftui.runtime.docker_health import service_ready
from cftui.runtime.docker_spec import (
    EGRESS_PORT,
    LABEL_BOT,
    LABEL_SPEC,
    LLM_PROXY_PORT,
    ContainerSpec,
    bind_paths,
    container_name,
    egress_spec,
    ext_network,
    front_spec,
    gateway_spec,
    int_network,
    llm_proxy_spec,
    upstream_hosts,
    volume_specs,
)
from cftui.runtime.docker_states import event_change, parse_docker_time, service_status

T = TypeVar("T")

START_TIMEOUT_S = float(os.environ.get("CFTUI_START_TIMEOUT", "90"))
STOP_TIMEOUT_S = 10
KILL_STOP_TIMEOUT_S = 2  # the rest of a killed stack gets this long to exit
_POLL_S = 0.2
PROXY_SERVICES = ("llm-proxy", "egress")


def _explain(exc: BaseException) -> str:
    text = getattr(exc, "explanation", None) or str(exc)
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return " ".join(str(text).split())[:300]


class DockerRuntime(Runtime):
    """Bots as Docker stacks on the local engine (`DOCKER_HOST` honoured)."""

    name = "docker"
    gateway_writes_host_tree = True  # code/ and state/ are bind mounts

    def __init__(self, home: FleetHome, client: Any = None) -> None:
        super().__init__(home)
        self._client = client
        self._client_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="cf-docker")
        self._wave: _Wave | None = None
        self._builds: dict[str, _BuildAborter] = {}

    # --- plumbing ------------------------------------------------------------
    def client(self) -> Any:
        """The docker SDK client, made on first use (blocking)."""
        with self._client_lock:
            if self._client is None:
                import docker

                try:
                    self._client = docker.from_env(timeout=60, max_pool_size=64)
                except docker.errors.DockerException as exc:
                    raise RuntimeUnavailable(
                        f"the Docker engine is not reachable ({_explain(exc)}): "
                        "start it, or set DOCKER_HOST"
                    ) from None
            return self._client

    @property
    def api(self) -> Any:
        return self.client().api

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    def _inspect(self, name: str) -> dict[str, Any] | None:
        """`docker inspect`, or None when there is no such container."""
        import docker.errors

        try:
            return self.api.inspect_container(name)
        except docker.errors.NotFound:
            return None

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await self._run(client.close)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="cf-docker")

    async def check(self) -> None:
        import docker.errors

        def ping() -> None:
            try:
                self.client().ping()
            except (docker.errors.DockerException, OSError) as exc:
                raise RuntimeUnavailable(
                    f"the Docker engine does not answer ({_explain(exc)}): "
                    "start it, or set DOCKER_HOST"
                ) from None

        await self._run(ping)

    # --- preparing the host side -----------------------------------------------
    def _gateway_env(self, bot: BotConfig) -> dict[str, str]:
        path = self.home.gateway_env(bot.name)
        try:
            values = read_env_file(path)
        except OSError as exc:
            raise FleetError(
                f"cannot read {path}: {exc.strerror} (was {bot.name} made with `cftui init`?)"
            ) from None
        if not values.get("CF_PROXY_TOKEN"):
            raise FleetError(f"{path} has no CF_PROXY_TOKEN: the gateway could not use the proxy")
        return values

    def _recipient(self, bot: BotConfig) -> str:
        from cftui.botinit import recipient_of

        return recipient_of(self.home, bot.name)

    def _wire_openclaw(self, bot: BotConfig, env: dict[str, str]) -> None:
        """CONTRACTS §4: OpenClaw ignores env on many paths; its config holds it."""
        host_prep.wire_openclaw(self.home, bot, env)

    def _hand_to_gateway(self, bot: BotConfig) -> None:
        """Let the gateway's user own `state/` and what is in `code/` (host_prep)."""
        host_prep.hand_to_gateway(self.home, bot.name)

    def _prepare_host(self, bot: BotConfig) -> dict[str, str]:
        for path in bind_paths(self.home, bot.name):
            if not path.exists():
                raise FleetError(f"{path} is missing: re-create {bot.name} with `cftui init`")
        host_prep.check_gitdir(self.home, bot.name)
        env = self._gateway_env(bot)
        # The egress proxy takes the control file it finds at start as its
        # baseline (capture on/off, allowlist): make it match fleet.toml.
        from cftui import capture

        try:
            capture.sync_control(self.home, bot.name)
        except OSError as exc:
            raise RuntimeOperationError(
                f"{bot.name}: cannot write the egress control file: {exc.strerror or exc}"
            ) from None
        if bot.gateway == "openclaw":
            self._wire_openclaw(bot, env)
        self._hand_to_gateway(bot)
        return env

    # --- networks, volumes, containers -------------------------------------------
    def _ensure_infra(self, bot: BotConfig) -> None:
        import docker.errors

        from cftui.runtime import docker_firewall

        labels = {LABEL_BOT: bot.name}
        for name, internal in ((int_network(bot.name), True), (ext_network(bot.name), False)):
            try:
                net = self.api.inspect_network(name)
            except docker.errors.NotFound:
                try:
                    self.api.create_network(
                        name,
                        driver="bridge",
                        internal=internal,
                        labels=labels,
                        check_duplicate=True,
                        options=docker_firewall.internal_network_options(self.api)
                        if internal
                        else None,
                    )
                except docker.errors.APIError as exc:
                    if exc.status_code != 409:
                        raise
                continue
            if bool(net.get("Internal")) != internal:
                raise RuntimeOperationError(
                    f"network {name} exists but is {'not ' if internal else ''}internal: "
                    f"remove it (`docker network rm {name}`) and start again"
                )
        docker_firewall.isolate_host(self.api, bot.name, int_network(bot.name))
        for vol in volume_specs(bot.name):
            try:
                self.api.inspect_volume(vol.name)
            except docker.errors.NotFound:
                self.api.create_volume(
                    vol.name, driver="local", driver_opts=vol.driver_opts, labels=labels
                )

    def _upstream_networks(self, bot: BotConfig) -> list[str]:
        """Networks of local containers named as upstreams (not internal ones)."""
        found: set[str] = set()
        for host in upstream_hosts(bot):
            attrs = self._inspect(host)
            if attrs is None:
                continue
            for net in (attrs.get("NetworkSettings") or {}).get("Networks") or {}:
                if net in ("bridge", "host", "none"):
                    continue
                with contextlib.suppress(Exception):
                    if not self.api.inspect_network(net).get("Internal"):
                        found.add(net)
        return sorted(found)

    def _ensure_container(self, bot: BotConfig, spec: ContainerSpec) -> str:
        """Create the container unless one with the same spec exists; its id.
        Through the gate: a container made, or given its restart policy
        back, while the bot is locked could be started by the engine."""
        with self.gate(bot, f"creating {spec.name}"):
            return self._ensure_container_gated(spec)

    def _ensure_container_gated(self, spec: ContainerSpec) -> str:
        import docker.errors

        image_id = self.api.inspect_image(spec.image)["Id"]
        want = spec.spec_hash(image_id)
        current = self._inspect(spec.name)
        if current is not None:
            same = (current.get("Config") or {}).get("Labels", {}).get(LABEL_SPEC) == want
            # The kill switch disconnects the gateway: such a container is
            # made again rather than started with no network.
            attached = set((current.get("NetworkSettings") or {}).get("Networks") or {})
            if same and attached == set(spec.networks):
                # The kill switch also set its restart policy to `no`: restore it.
                policy = spec.host_config["restart_policy"]
                if (current.get("HostConfig") or {}).get("RestartPolicy", {}).get("Name") != policy[
                    "Name"
                ]:
                    self.api.update_container(spec.name, restart_policy=policy)
                return current["Id"]
            self.api.remove_container(spec.name, force=True)
        host_config = self.api.create_host_config(**spec.host_config)
        networking = self.api.create_networking_config(
            {spec.networks[0]: self.api.create_endpoint_config(aliases=spec.aliases)}
        )
        ports = list(spec.host_config.get("port_bindings", {}))
        try:
            created = self.api.create_container(
                image=spec.image,
                command=spec.command,
                name=spec.name,
                user=spec.user or "",
                environment=spec.environment,
                labels={**spec.labels, LABEL_SPEC: want},
                host_config=host_config,
                networking_config=networking,
                ports=ports or None,
                detach=True,
            )
        except docker.errors.APIError as exc:
            if exc.status_code == 409:  # made by a concurrent start
                return self.api.inspect_container(spec.name)["Id"]
            raise
        cid = created["Id"]
        for net in spec.networks[1:]:
            self.api.connect_container_to_network(cid, net, aliases=spec.aliases)
        return cid

    def _images(self, bot: BotConfig, progress: Progress, *, nocache: bool = False) -> dict:
        """Every image the stack needs, built here if missing (blocking)."""
        from cftui.runtime import images

        client = self.client()
        out: dict[str, str] = {}
        for service in ("front", "llm-proxy", "egress"):
            ref = images.SERVICE_IMAGES[service]
            try:
                out[service] = images.ensure_image(client, service, progress)
            except CftuiError as exc:
                raise RuntimeOperationError(
                    f"{bot.name}: the {service} image ({ref}) is not available: {exc}"
                ) from None
        aborter = _BuildAborter()
        self._builds[bot.name] = aborter
        try:
            with aborter.client(self.api.api_version) as build_client:
                out["gateway"] = images.build_gateway_image(
                    build_client, bot.name, self.home.code_dir(bot.name), progress, nocache=nocache
                )
        except CftuiError as exc:
            if aborter.aborted:
                raise BotLocked(locks.locked_message(bot.name, "its build")) from None
            raise RuntimeOperationError(
                f"{bot.name}: the gateway image failed to build: {exc}"
            ) from None
        finally:
            if self._builds.get(bot.name) is aborter:
                del self._builds[bot.name]
        return out

    def _specs(
        self, bot: BotConfig, images: dict[str, str], env: dict[str, str], extra: list[str]
    ) -> dict[str, ContainerSpec]:
        gw_env = gateway_environment(
            bot.gateway, bot=bot.name, gateway_env=env, memory_mb=bot.limits.memory_mb
        )
        return {
            "egress": egress_spec(self.home, bot, images["egress"], self._recipient(bot)),
            "llm-proxy": llm_proxy_spec(
                self.home, bot, images["llm-proxy"], env["CF_PROXY_TOKEN"], extra
            ),
            "gateway": gateway_spec(self.home, bot, images["gateway"], gw_env),
            "front": front_spec(bot, images["front"]),
        }

    def _start(self, bot: BotConfig, name: str) -> None:
        import docker.errors

        try:
            with self.gate(bot, f"starting {name}"):
                self.api.start(name)
        except docker.errors.APIError as exc:
            raise RuntimeOperationError(f"cannot start {name}: {_explain(exc)}") from None

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

    # --- readiness ---------------------------------------------------------------
    def _address(self, bot: BotConfig, service: str, attrs: dict[str, Any]) -> tuple[str, int]:
        if service == "front":
            return "127.0.0.1", bot.gateway_port
        nets = (attrs.get("NetworkSettings") or {}).get("Networks") or {}
        net = nets.get(int_network(bot.name)) or next(iter(nets.values()), {})
        port = {"gateway": GATEWAY_PORT, "llm-proxy": LLM_PROXY_PORT, "egress": EGRESS_PORT}
        return net.get("IPAddress") or "", port[service]

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
                host, port = self._address(bot, service, attrs)
                health = (state.get("Health") or {}).get("Status")
                if health == "healthy" or (host and await service_ready(service, host, port)):
                    pending.remove(service)
            if not pending:
                return
            if time.monotonic() > deadline:
                raise RuntimeOperationError(
                    f"{bot.name}: {', '.join(pending)} not ready after {timeout:.0f} s "
                    f"(see `docker logs {container_name(bot.name, pending[0])}`)"
                )
            await asyncio.sleep(_POLL_S)

    # --- the interface -------------------------------------------------------------
    async def up(self, bot: BotConfig, progress: Progress = no_progress) -> None:
        await self._bring_up(bot, progress)

    async def _bring_up(self, bot: BotConfig, progress: Progress, *, nocache: bool = False) -> None:
        await self.check()
        task = f"start {bot.name}"
        progress(ProgressEvent(task, 0, 4, "images"))
        try:
            images = await self._run(self._images, bot, progress, nocache=nocache)
        except asyncio.CancelledError:
            # The kill cancelled this start: hang up on the build, so the
            # engine stops it and its thread does not outlive the start.
            aborter = self._builds.get(bot.name)
            if aborter is not None:
                aborter.abort()
            raise
        progress(ProgressEvent(task, 1, 4, "containers"))
        env = await self._run(self._prepare_host, bot)
        extra = await self._run(self._upstream_networks, bot)
        specs = self._specs(bot, images, env, extra)
        try:
            await self._run(self._ensure_infra, bot)
            await asyncio.gather(
                *(self._run(self._ensure_container, bot, s) for s in specs.values())
            )
        except CftuiError:
            raise
        except Exception as exc:
            raise RuntimeOperationError(
                f"{bot.name}: cannot create its stack: {_explain(exc)}"
            ) from None
        try:
            progress(ProgressEvent(task, 2, 4, "proxies"))
            first = [*PROXY_SERVICES, "front"]
            await asyncio.gather(*(self._run(self._start, bot, specs[s].name) for s in first))
            # The gateway starts once the egress proxy has exported its CA.
            await self._wait_ready(bot, PROXY_SERVICES, START_TIMEOUT_S)
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

    def _stop(self, name: str, timeout: int) -> str:
        """Stop one container; 'stopped', or 'missing' when there is none."""
        import docker.errors

        try:
            self.api.stop(name, timeout=timeout)
        except docker.errors.NotFound:
            return "missing"
        return "stopped"

    async def down(self, bot: BotConfig) -> None:
        import docker.errors

        try:
            await self._run(self._stop, container_name(bot.name, "gateway"), STOP_TIMEOUT_S)
            rest = [container_name(bot.name, s) for s in ("front", "llm-proxy", "egress")]
            await asyncio.gather(*(self._run(self._stop, n, STOP_TIMEOUT_S) for n in rest))
        except docker.errors.DockerException as exc:
            raise RuntimeOperationError(f"{bot.name}: cannot stop: {_explain(exc)}") from None

    async def restart(self, bot: BotConfig, progress: Progress = no_progress) -> None:
        locks.ensure_unlocked(self.home, bot.name)  # before anything is stopped
        await self.down(bot)
        await self.up(bot, progress)

    async def rebuild(self, bot: BotConfig, progress: Progress = no_progress) -> None:
        locks.ensure_unlocked(self.home, bot.name)  # before anything is stopped
        await self.down(bot)
        await self._bring_up(bot, progress, nocache=True)

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
            raise RuntimeUnavailable(f"docker: {_explain(exc)}") from None
        found: dict[tuple[str, str], dict] = {}
        for attrs in infos:
            if attrs is None:
                continue
            labels = (attrs.get("Config") or {}).get("Labels") or {}
            found[(labels.get(LABEL_BOT, ""), labels.get("io.clawfactory.service", ""))] = attrs
        out = {}
        for bot in bots:
            services = {s: service_status(s, found.get((bot.name, s))) for s in SERVICES}
            out[bot.name] = BotStatus(bot.name, self.name, services)
        return out

    async def _stream(self, open_stream: Callable[[], Any]) -> AsyncIterator[Any]:
        """Items of a blocking SDK stream, read in a thread; closing the
        iterator closes the stream, which ends the thread."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        holder: dict[str, Any] = {}
        done = object()
        closed = threading.Event()

        def put(item: Any) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone
                loop.call_soon_threadsafe(queue.put_nowait, item)

        def pump() -> None:
            try:
                stream = open_stream()
                holder["stream"] = stream
                if closed.is_set():
                    return
                for item in stream:
                    put(item)
            except Exception as exc:
                if not closed.is_set():
                    put(exc)
            finally:
                put(done)

        # A daemon thread of its own, not the pool: a stream lives as long as
        # its reader, and must never hold up the interpreter's exit.
        threading.Thread(target=pump, name="cf-docker-stream", daemon=True).start()
        try:
            while True:
                item = await queue.get()
                if item is done:
                    return
                if isinstance(item, Exception):
                    raise RuntimeOperationError(f"docker: {_explain(item)}")
                yield item
        finally:
            closed.set()
            stream = holder.get("stream")
            if stream is not None:
                with contextlib.suppress(Exception):
                    await self._run(stream.close)

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

    # --- the kill switch -----------------------------------------------------------
    def _cut(self, gateway: str, network: str) -> str | None:
        """Disconnect the gateway from one network; an error text, or None."""
        import docker.errors

        try:
            self.api.disconnect_container_from_network(gateway, network, force=True)
        except docker.errors.NotFound:
            return None  # the container or the network is gone: nothing to cut
        except docker.errors.APIError as exc:
            if "not connected" in _explain(exc):
                return None
            return f"disconnect from {network}: {_explain(exc)}"
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
                last = _explain(exc)
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
            if exc.status_code == 409 or "is not running" in _explain(exc):
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
            wave = self._wave = _Wave()
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
            report.errors.append(f"inspect gateway: {_explain(attrs)}")
            attrs = None
        if isinstance(cut_error, BaseException):
            cut_error = f"disconnect from {internal}: {_explain(cut_error)}"
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
            report.errors.append(f"kill gateway: {_explain(exc)}")
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
                report.errors.append(f"stop {service}: {_explain(result)}")
                continue
            outcome, policy_error = result
            if outcome == "missing":
                report.already_gone.append(service)
            else:
                report.stopped.append(service)
            if policy_error:
                report.errors.append(policy_error)

    # --- the gateway alone (snapshot restore) --------------------------------------
    async def gateway_running(self, bot: BotConfig) -> bool:
        attrs = await self._run(self._inspect, container_name(bot.name, "gateway"))
        return bool(attrs and (attrs.get("State") or {}).get("Running"))

    async def stop_gateway(self, bot: BotConfig) -> None:
        await self._run(self._stop, container_name(bot.name, "gateway"), STOP_TIMEOUT_S)

    async def start_gateway(self, bot: BotConfig) -> None:
        locks.ensure_unlocked(self.home, bot.name)  # before the host is rewired
        name = container_name(bot.name, "gateway")
        if await self._run(self._inspect, name) is None:
            raise RuntimeOperationError(
                f"{bot.name} has no gateway container: start the bot (`cftui start {bot.name}`)"
            )
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

    # --- beyond the interface ------------------------------------------------------
    async def remove(self, bot: BotConfig) -> None:
        """Remove the bot's containers, networks and volumes (`cftui delete`,
        tests). Files in the fleet home are not touched."""
        await self._run(self._remove, bot.name)

    def _remove(self, bot: str) -> None:
        import docker.errors

        from cftui.runtime import docker_firewall

        for summary in self.api.containers(all=True, filters={"label": f"{LABEL_BOT}={bot}"}):
            with contextlib.suppress(docker.errors.NotFound):
                self.api.remove_container(summary["Id"], force=True)
        for net in (int_network(bot), ext_network(bot)):
            with contextlib.suppress(docker.errors.NotFound):
                self.api.remove_network(net)
        docker_firewall.release_host(bot)
        for vol in volume_specs(bot):
            with contextlib.suppress(docker.errors.NotFound):
                self.api.remove_volume(vol.name, force=True)


class _BuildAborter:
    """A gateway build on a client of its own, that can be hung up on from
    another thread: the classic builder stops a build whose client went away,
    and the thread reading its output returns at once."""

    def __init__(self) -> None:
        self.aborted = False
        self._responses: list[Any] = []

    @contextlib.contextmanager
    def client(self, version: str) -> Iterator[Any]:
        import docker

        client = docker.from_env(version=version, timeout=60)
        client.api.hooks["response"].append(self._keep)
        try:
            yield client
        finally:
            client.close()

    def _keep(self, response: Any, *_args: Any, **_kwargs: Any) -> Any:
        self._responses.append(response)
        return response

    def abort(self) -> None:
        self.aborted = True
        for response in list(self._responses):
            sock = getattr(getattr(response.raw, "connection", None), "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class _Wave:
    """Kills that started together; see `DockerRuntime.kill`."""

    def __init__(self) -> None:
        self.pending = 0
        self.done = asyncio.Event()


def _log_line(bot: str, service: str, raw: bytes) -> LogLine:
    text = raw.decode(errors="replace").rstrip("\r")
    stamp, sep, rest = text.partition(" ")
    ts = parse_docker_time(stamp) if sep else None
    return LogLine(bot, service, rest if ts else text, ts)
