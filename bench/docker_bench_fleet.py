"""Shared by the Docker runtime's benchmarks: a throwaway fleet home with N
demo-agent bots calling the demo's fake provider (`cftui demo`'s pieces),
and their removal afterwards. Images must be built (or are built once)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from cftui import demo, lifecycle
from cftui.fleet import BotConfig, FleetHome
from cftui.runtime import Runtimes
from cftui.runtime.docker.runtime import DockerRuntime


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def bench_fleet(n: int, prefix: str) -> Iterator[tuple[FleetHome, list[BotConfig]]]:
    """N bots named `<prefix>0..`, made (not started); removed on exit."""
    root = Path(tempfile.mkdtemp(prefix="cf-bench-"))
    home = FleetHome(root / "home")
    runtime = DockerRuntime(home)
    client = runtime.client()
    # Leave a fake provider (and its network) that `cftui demo` had running
    # alone; remove only what this bench started.
    fake_was_there = bool(client.containers.list(all=True, filters={"name": demo.FAKE_LLM}))
    try:
        ip = demo.ensure_fake_llm(client)
        names = [f"{prefix}{i}" for i in range(n)]
        demo.ensure_demo_bots(home, f"http://{ip}:{demo.FAKE_LLM_PORT}/health", names)
        bots = [home.update_bot(name, gateway_port=free_port()) for name in names]
        yield home, bots
    finally:

        async def cleanup() -> None:
            # `cftui delete`'s own path: the stack, and the disk unmounted
            # with its loop device released (a bare remove left them mounted).
            runtimes = Runtimes(home)
            try:
                for bot in home.bots().values():
                    try:
                        await lifecycle.delete(home, bot, runtimes)
                    except Exception as exc:  # the others are still removed
                        print(f"cleanup of {bot.name} failed: {exc}", file=sys.stderr)
            finally:
                await runtimes.aclose()
                await runtime.aclose()

        asyncio.run(cleanup())
        if not fake_was_there:
            with contextlib.suppress(Exception):
                client.containers.get(demo.FAKE_LLM).remove(force=True)
            with contextlib.suppress(Exception):
                client.networks.get(demo.DEMO_NETWORK).remove()
        shutil.rmtree(root, ignore_errors=True)


async def start_all(home: FleetHome, bots: list[BotConfig], runtimes: Runtimes) -> float:
    """Bring every bot up at once; seconds until all are healthy."""
    from cftui import lifecycle

    started = time.monotonic()
    await asyncio.gather(*(lifecycle.start(home, b, runtimes) for b in bots))
    return time.monotonic() - started


def warm_images(home: FleetHome, bot: BotConfig) -> None:
    """Build (once) every image a stack needs, outside any timing."""
    from cftui.runtime.images import gateway, services

    rt = DockerRuntime(home)
    client = rt.client()
    for service in ("front", "llm-proxy", "egress", "fake-llm"):
        services.ensure_image(client, service)
    gateway.build_gateway_image(client, bot.name, home.code_dir(bot.name))
