"""The images a bot's stack runs, got ready before its containers are made
(the service images from the project's sources, the gateway's from its
`code/`), and a gateway build that the kill switch can hang up on."""

from __future__ import annotations

import contextlib
import dataclasses
import socket
from collections.abc import Iterator
from typing import Any

from cftui import locks
from cftui.errors import BotLocked, RuntimeOperationError
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
        from cftui.runtime.images import batch, catalog

        client = self.client()
        aborter = BuildAborter()
        self._builds[bot.name] = aborter
        gw = batch.Gateway(bot.name, self.home.code_dir(bot.name), nocache=nocache)
        try:
            # Side by side, the gateway's build too: on a fresh machine the
            # images (and the base under them) took the sum of their builds.
            with aborter.client(self.api.api_version) as build_client:
                outcome = batch.ensure_images(
                    client,
                    STACK_SERVICES,
                    progress,
                    gateways=[dataclasses.replace(gw, client=build_client)],
                )
        except batch.ImagesFailed as exc:
            if aborter.aborted and gw.step in exc.failures:
                raise BotLocked(locks.locked_message(bot.name, "its build")) from None
            # The first image that failed (a prerequisite's failure is in its reason).
            failed = [n for n in exc.failures if n in (*STACK_SERVICES, gw.step)]
            name = failed[0]
            if name == gw.step:
                raise RuntimeOperationError(
                    f"{bot.name}: the gateway image failed to build: {exc.failures[name]}"
                ) from None
            raise RuntimeOperationError(
                f"{bot.name}: the {name} image ({catalog.SERVICE_IMAGES[name]}) "
                f"is not available: {exc.failures[name]}"
            ) from None
        finally:
            if self._builds.get(bot.name) is aborter:
                del self._builds[bot.name]
        out = {s: outcome.results[s] for s in STACK_SERVICES}
        out["gateway"] = outcome.results[gw.step]
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
