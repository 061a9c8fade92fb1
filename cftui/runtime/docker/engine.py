"""The Docker runtime's plumbing: one SDK client and one thread pool per
runtime, and the few calls every other part of it makes.

Every SDK call blocks, so each runs in this runtime's own thread pool (not
the event loop's default one, which has 6 threads on a 2-core machine and
would serialise a 10-bot kill). The async methods of the other parts only
sequence those calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import shlex
import subprocess
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any, TypeVar

from cftui.errors import RuntimeOperationError, RuntimeUnavailable
from cftui.fleet import BotConfig, FleetHome
from cftui.runtime.base import Runtime, ServiceUsage
from cftui.runtime.status import SERVICES

if TYPE_CHECKING:
    from cftui.hosts.ssh import HostLink
    from cftui.runtime.docker.firewall import HostShell
    from cftui.runtime.docker.health import Opener

T = TypeVar("T")

# The HTTP pool is as large as the thread pool, so no call waits for a connection.
_POOL_THREADS = 64
# How long a pool thread waits for a remote host's link (its own timeout is shorter).
_LINK_WAIT_S = 15.0
# How long another host's engine may take to load the images sent to it.
_LOAD_TIMEOUT_S = 900.0


def explain(exc: BaseException) -> str:
    """A docker SDK error as one line of at most 300 characters."""
    text = getattr(exc, "explanation", None) or str(exc)
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return " ".join(str(text).split())[:300]


class DockerEngine(Runtime):
    """The engine as every part of `DockerRuntime` reaches it (`DOCKER_HOST`
    honoured); the parts are mixins on this class, one module a concern."""

    def __init__(self, home: FleetHome, client: Any = None, link: HostLink | None = None) -> None:
        super().__init__(home)
        self._client = client
        # Another host's engine (CONTRACTS §12): its socket forwarded over the
        # host's one SSH link, which the event loop serves. The SDK asks the
        # engine's API version in its constructor, so the client is made in
        # this pool, never on that loop (it would wait on itself).
        self._link = link
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=_POOL_THREADS, thread_name_prefix="cf-docker")

    @property
    def remote(self) -> bool:
        """Whether this is another host's engine, reached over SSH."""
        return self._link is not None

    def _on_link(self, coro: Coroutine[Any, Any, T], wait: float = _LINK_WAIT_S) -> T:
        """Run a coroutine of the link on the event loop that serves it,
        while this pool thread waits (blocking)."""
        assert self._link is not None
        loop = self._loop
        if loop is None or loop.is_closed():
            coro.close()
            raise RuntimeUnavailable(f"host {self._link.host.name}: no event loop serves its link")
        with contextlib.suppress(RuntimeError):
            if asyncio.get_running_loop() is loop:
                coro.close()
                raise RuntimeOperationError("a remote engine's link is waited on in the pool only")
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result(timeout=wait)
        except FutureTimeout:
            future.cancel()
            raise RuntimeUnavailable(
                f"host {self._link.host.name} ({self._link.host.url}) is unreachable: "
                "no answer in time"
            ) from None

    def _remote_socket(self) -> str:
        """The local end of the link's engine forward, (re)opened by the
        event loop while this pool thread waits (blocking)."""
        assert self._link is not None
        return f"unix://{self._on_link(self._link.engine_socket())}"

    @property
    def _opener(self) -> Opener | None:
        """How a health probe reaches a container: from this machine, or
        opened by the engine's host (its bridges are only there)."""
        return None if self._link is None else self._link.open_tcp

    def _host_shell(self) -> HostShell:
        """Where the engine's host runs a command (the firewall rules)."""
        from cftui.runtime.docker import firewall

        return firewall.LOCAL if self._link is None else _LinkShell(self)

    def client(self) -> Any:
        """The docker SDK client, made on first use (blocking); for another
        host, its link reopened first if it dropped."""
        if self._link is not None and self._client is not None and not self._link.is_up:
            self._remote_socket()  # the same path: the client keeps working
        with self._client_lock:
            if self._client is None:
                import docker

                try:
                    if self._link is not None:
                        self._client = docker.DockerClient(
                            base_url=self._remote_socket(), timeout=60, max_pool_size=_POOL_THREADS
                        )
                    else:
                        self._client = docker.from_env(timeout=60, max_pool_size=_POOL_THREADS)
                except docker.errors.DockerException as exc:
                    raise RuntimeUnavailable(
                        f"the Docker engine is not reachable ({explain(exc)}): "
                        "start it, or set DOCKER_HOST"
                    ) from None
            return self._client

    @property
    def api(self) -> Any:
        return self.client().api

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = self._loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    def _inspect(self, name: str) -> dict[str, Any] | None:
        """`docker inspect`, or None when there is no such container."""
        import docker.errors

        try:
            return self.api.inspect_container(name)
        except docker.errors.NotFound:
            return None

    def _stats_once(self, name: str) -> ServiceUsage | None:
        """One `docker stats --no-stream` sample of a container, None when
        it is absent or not running (the engine answers with no figures)."""
        import docker.errors

        try:
            stats = self.api.stats(name, stream=False)
        except (docker.errors.NotFound, docker.errors.APIError):
            return None
        if not isinstance(stats, dict) or not (stats.get("memory_stats") or {}).get("usage"):
            return None
        return ServiceUsage.from_docker_stats(stats)

    async def usage(self, bot: BotConfig) -> dict[str, ServiceUsage]:
        """The stack's services sampled at once, each in a pool thread."""
        from cftui.runtime.docker.spec import container_name

        samples = await asyncio.gather(
            *(self._run(self._stats_once, container_name(bot.name, s)) for s in SERVICES)
        )
        return {s: u for s, u in zip(SERVICES, samples, strict=True) if u is not None}

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await self._run(client.close)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = ThreadPoolExecutor(max_workers=_POOL_THREADS, thread_name_prefix="cf-docker")

    async def check(self) -> None:
        def ping() -> None:
            import docker.errors  # in the pool: the SDK's first import is long

            try:
                self.client().ping()
            except (docker.errors.DockerException, OSError) as exc:
                raise self._not_answering(exc, "start it, or set DOCKER_HOST") from None

        await self._run(ping)

    def _not_answering(self, exc: BaseException, hint: str = "") -> RuntimeUnavailable:
        """The one line for an engine that does not answer: this machine's
        (with `hint`), or another host's, named (DOCKER_HOST is no help there)."""
        if self._link is not None:
            host = self._link.host
            return RuntimeUnavailable(
                f"host {host.name} ({host.url}): its Docker engine does not answer ({explain(exc)})"
            )
        tail = f": {hint}" if hint else ""
        return RuntimeUnavailable(f"the Docker engine does not answer ({explain(exc)}){tail}")

    async def engine_version(self) -> str:
        """The engine's version (`docker version`'s Server.Version);
        RuntimeUnavailable (one line) when it does not answer."""

        def version() -> str:
            import docker.errors  # in the pool: the SDK's first import is long

            try:
                return str(self.api.version().get("Version") or "?")
            except (docker.errors.DockerException, OSError) as exc:
                raise self._not_answering(exc) from None

        return await self._run(version)

    async def send_image(self, image: str, to: DockerEngine) -> bool:
        """Make `image` of this engine exist, under the same name, in engine
        `to` (another host's); True when it was sent (`send_images`)."""
        return bool(await self.send_images([image], to))

    async def send_images(self, images: list[str], to: DockerEngine) -> list[str]:
        """Make each of `images` of this engine exist, under the same name,
        in engine `to` (another host's): those `to` does not hold by id (the
        cache) go in one `docker save | docker load` streamed through both
        clients, so the layers they share cross once. The names sent."""
        import docker.errors

        def image_id(image: str) -> str:
            try:
                return str(self.api.inspect_image(image)["Id"])
            except docker.errors.NotFound:
                raise RuntimeOperationError(f"no image {image} to send: build it first") from None

        def holds(image: str, iid: str) -> bool:
            try:
                return image in (to.api.inspect_image(iid).get("RepoTags") or [])
            except docker.errors.NotFound:
                return False

        def save(names: list[str]) -> Any:
            # `docker save A B`: the SDK's get_image takes one name; the
            # engine's endpoint takes several.
            api = self.api
            res = api._get(api._url("/images/get"), params={"names": names}, stream=True)
            api._raise_for_status(res)
            return api._stream_raw_result(res, 2 << 20, False)

        def load(names: list[str]) -> None:
            # `docker load`, with the wait its engine takes to unpack every
            # layer before it answers (longer than the client's 60 s on a
            # busy host); the answer is a progress stream, read to its end
            # (the load is done then) for any error in it.
            api = to.api
            res = api._post(
                api._url("/images/load"),
                data=save(names),
                params={"quiet": "1"},
                stream=True,
                timeout=_LOAD_TIMEOUT_S,
            )
            api._raise_for_status(res)
            for item in api._stream_helper(res, decode=True):
                if isinstance(item, dict) and item.get("error"):
                    raise RuntimeOperationError(f"loading {', '.join(names)}: {item['error']}")

        try:
            ids = await asyncio.gather(*(self._run(image_id, i) for i in images))
            held = await asyncio.gather(
                *(to._run(holds, i, iid) for i, iid in zip(images, ids, strict=True))
            )
            missing = [i for i, h in zip(images, held, strict=True) if not h]
            if not missing:
                return []
            await to._run(load, missing)
            for image, iid in zip(images, ids, strict=True):
                if image in missing and not await to._run(holds, image, iid):
                    raise RuntimeOperationError(f"image {image} did not arrive intact")
        except (docker.errors.DockerException, OSError) as exc:
            raise RuntimeOperationError(
                f"sending images {', '.join(images)}: {explain(exc)}"
            ) from None
        return missing

    def _stop(self, name: str, timeout: int) -> str:
        """Stop one container; 'stopped', or 'missing' when there is none."""
        import docker.errors

        try:
            self.api.stop(name, timeout=timeout)
        except docker.errors.NotFound:
            return "missing"
        return "stopped"

    async def _stream(self, open_stream: Callable[[], Any]) -> AsyncIterator[Any]:
        """Items of a blocking SDK stream, read in a thread; closing the
        iterator closes the stream, which ends the thread."""
        # The loop that serves a remote engine's link, for the client the
        # stream's thread may make (as `_run` records it).
        loop = self._loop = asyncio.get_running_loop()
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
                    raise RuntimeOperationError(f"docker: {explain(item)}")
                yield item
        finally:
            closed.set()
            stream = holder.get("stream")
            if stream is not None:
                with contextlib.suppress(Exception):
                    await self._run(stream.close)


class _LinkShell:
    """A remote engine's host as the firewall runs commands there: over
    its SSH link, from a pool thread (the `firewall.HostShell` protocol)."""

    def __init__(self, engine: DockerEngine) -> None:
        assert engine._link is not None
        self._engine, self._link = engine, engine._link
        self._found: dict[str, str | None] = {}

    def _line(self, line: str, timeout: float) -> tuple[int, str, str]:
        ran = self._engine._on_link(self._link.run(line, timeout=timeout), wait=timeout + 5)
        return ran.code, ran.out.decode(errors="replace"), ran.err

    def which(self, tool: str) -> str | None:
        if tool not in self._found:
            code, out, _ = self._line(f"command -v {shlex.quote(tool)}", 20)
            self._found[tool] = (out.strip() or None) if code == 0 else None
        return self._found[tool]

    def has_ipv6(self) -> bool:
        return self._line("test -e /proc/net/if_inet6", 20)[0] == 0

    def is_root(self) -> bool:
        return self._line("id -u", 20)[1].strip() == "0"

    def run(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        try:
            code, out, err = self._line(shlex.join(argv), timeout)
        except RuntimeUnavailable as exc:
            raise OSError(str(exc)) from None
        return subprocess.CompletedProcess(argv, code, out, err)
