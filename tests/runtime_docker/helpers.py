"""A fleet home with demo-agent bots and a fake provider on a network of the
test's own making, for the tests that run real stacks."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from cftui import lifecycle
from cftui.botinit import init_bot
from cftui.demo import PLACEHOLDER_KEY, _set_env_lines
from cftui.fleet import BotConfig, FleetHome
from cftui.runtime import Runtimes

TEST_LABEL = "io.clawfactory.test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll until `predicate()` is truthy; its value, or a failure naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def http_get(url: str, timeout: float = 3.0) -> bytes:
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
        url, timeout=timeout
    ) as resp:
        return resp.read()


@dataclass
class World:
    """One test module's Docker world: its home, network, fake provider."""

    client: Any
    home: FleetHome
    suffix: str
    network: str
    fake_name: str
    fake_ip: str
    bots: list[str] = field(default_factory=list)

    def add_bot(self, name: str, code: Path | None = None, **gateway_env: str) -> BotConfig:
        """A bot whose gateway is the demo agent (or `code`), calling the fake."""
        upstream = f"http://{self.fake_name}:8080"
        with resources.as_file(resources.files("cftui") / "templates" / "demo-agent") as src:
            init_bot(
                self.home,
                name,
                code=str(code or src),
                gateway="generic",
                upstreams={"anthropic": upstream, "openai": upstream},
            )
        self.bots.append(name)
        _set_env_lines(
            self.home.providers_env(name),
            {"ANTHROPIC_API_KEY": PLACEHOLDER_KEY, "OPENAI_API_KEY": PLACEHOLDER_KEY},
        )
        env = {
            "DEMO_INTERVAL_S": "1",
            "CF_DEMO_PROBE_URL": f"http://{self.fake_ip}:8080/health",
            "DEMO_PROBE_TIMEOUT_S": "2",
            **gateway_env,
        }
        _set_env_lines(self.home.gateway_env(name), env)
        return self.home.update_bot(name, gateway_port=free_port())


def make_world(client: Any, root: Path) -> World:
    from cftui.runtime.images import services

    suffix = secrets.token_hex(3)
    network = f"cftest-{suffix}-net"
    fake_name = f"cftest-{suffix}-fake"
    client.networks.create(network, driver="bridge", labels={TEST_LABEL: suffix})
    image = services.ensure_image(client, "fake-llm")
    fake = client.containers.run(
        image, name=fake_name, network=network, detach=True, labels={TEST_LABEL: suffix}
    )

    def ready() -> str | None:
        fake.reload()
        ip = fake.attrs["NetworkSettings"]["Networks"][network]["IPAddress"]
        try:
            http_get(f"http://{ip}:8080/health", 1)
        except OSError:
            return None
        return ip

    ip = wait_for(ready, 60, "the fake provider")
    return World(client, FleetHome(root / "home"), suffix, network, fake_name, ip)


def destroy_world(world: World) -> None:
    import asyncio

    import docker.errors

    from cftui import botdisk
    from cftui.runtime.docker.runtime import DockerRuntime

    async def remove_all() -> None:
        rt = DockerRuntime(world.home)
        try:
            for name in world.bots:
                await rt.remove(BotConfig(name=name))
        finally:
            await rt.aclose()

    try:
        asyncio.run(remove_all())
    finally:
        for name in world.bots:  # a bot started by lifecycle has its tree on an image
            with contextlib.suppress(Exception):
                botdisk.delete(world.home, name)
    for c in world.client.containers.list(all=True, filters={"label": TEST_LABEL}):
        if c.labels.get(TEST_LABEL) == world.suffix:
            c.remove(force=True)
    with contextlib.suppress(docker.errors.NotFound):
        world.client.networks.get(world.network).remove()
    for name in world.bots:  # each test bot's gateway image is its own
        with contextlib.suppress(docker.errors.APIError):
            world.client.images.remove(
                f"clawfactory/gateway-{name}:latest", force=True, noprune=True
            )


async def start_bot(world: World, bot: BotConfig) -> None:
    """`cftui start` of one bot of the world, with runtimes of its own."""
    runtimes = Runtimes(world.home)
    try:
        await lifecycle.start(world.home, bot, runtimes)
    finally:
        await runtimes.aclose()


def cftui(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    """The real `cftui` command line on the world's fleet home, as the operator runs it."""
    env = {**os.environ, "CLAWFACTORY_HOME": str(world.home.root)}
    return subprocess.run(
        [sys.executable, "-m", "cftui", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


def commit_declared(code: Path, bot: str, files: dict[str, str]) -> None:
    """A new approved dependency list: `files` (package.json, the lockfile,
    .npmrc) in the bot's `workspace/<bot>_save/`, committed on the approved
    branch of its `code/` (what the operator's promotion leaves)."""
    save = code / "workspace" / f"{bot}_save"
    save.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (save / name).write_text(text)
    git = ["git", "-C", str(code), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    paths = [f"workspace/{bot}_save/{n}" for n in files]
    subprocess.run([*git, "add", "-f", *paths], capture_output=True, check=True)
    subprocess.run(
        [*git, "commit", "-q", "-m", "declared dependencies"], capture_output=True, check=True
    )
