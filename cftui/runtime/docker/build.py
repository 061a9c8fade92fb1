"""The images a bot's stack runs, got ready before its containers are made
(the service images from the project's sources, the gateway's from its
`code/`), and a gateway build that the kill switch can hang up on."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Any

from cftui import locks
from cftui.errors import BotLocked, CftuiError, RuntimeOperationError
from cftui.fleet import BotConfig
from cftui.progress import Progress
from cftui.runtime.docker.engine import DockerEngine

# The service images every bot's stack runs (the gateway's is the bot's own).
STACK_SERVICES = ("front", "llm-proxy", "egress")


class StackImages(DockerEngine):
    """Images for a start (part of `DockerRuntime`); `_builds` holds the
    gateway builds in flight, by bot, for the kill to abort."""

    _builds: dict[str, BuildAborter]

    def _images(self, bot: BotConfig, progress: Progress, *, nocache: bool = False) -> dict:
        """Every image the stack needs, built here if missing (blocking)."""
        from cftui.runtime.images import batch, catalog, gateway

        client = self.client()
        try:
            # Side by side: on a fresh machine the three (and the base under
            # them) took the sum of their builds one after another.
            out: dict[str, str] = dict(
                batch.ensure_images(client, STACK_SERVICES, progress).results
            )
        except batch.ImagesFailed as exc:
            # The first image that failed (a prerequisite's failure is in its reason).
            service, why = next((n, w) for n, w in exc.failures.items() if n in STACK_SERVICES)
            ref = catalog.SERVICE_IMAGES[service]
            raise RuntimeOperationError(
                f"{bot.name}: the {service} image ({ref}) is not available: {why}"
            ) from None
        aborter = BuildAborter()
        self._builds[bot.name] = aborter
        try:
            with aborter.client(self.api.api_version) as build_client:
                out["gateway"] = gateway.build_gateway_image(
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

    def _abort_build(self, bot: BotConfig) -> None:
        """Hang up on the bot's gateway build, if one is in flight."""
        aborter = self._builds.get(bot.name)
        if aborter is not None:
            aborter.abort()


class BuildAborter:
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
