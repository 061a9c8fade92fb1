"""The escape suite's world: two bots' real stacks and a server of the test's own.

`world` is the Docker world of tests/runtime_docker (one fleet home, one
test network, the fake provider), reused as it is. `escape` adds, once per
module: two demo-agent bots, each with a provider key of its own, started
by the project's runtime; and a listener container that logs every contact
(tests/containment/listener.py), on the test's network and on the first
bot's outside network, where the egress proxy could reach it if it let the
agent through. `escape.probe(bot, plan)` runs tests/containment/gateway_probe.py
inside that bot's gateway as the gateway's user, the way the agent would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cftui import lifecycle
from cftui.demo import _set_env_lines
from cftui.fleet import BotConfig
from cftui.runtime import Runtimes
from tests.runtime_docker.conftest import world  # noqa: F401  (the module's Docker world, reused)
from tests.runtime_docker.helpers import TEST_LABEL, World, wait_for

HERE = Path(__file__).parent
PROBE = (HERE / "gateway_probe.py").read_text()
LISTENER = (HERE / "listener.py").read_text()
LISTENER_PORTS = (8080, 8443)  # 8080 is never listed; 8443 is, for the in-tunnel tricks
MEMORY_MB = 256  # small, so that the memory attempt costs little


@dataclass
class EscapeStack:
    world: World
    a: BotConfig
    b: BotConfig
    keys: dict[str, str]  # bot -> its provider key (providers.env)
    listener: Any
    listener_ip: str  # on the test's own network
    listener_ext_ip: str  # on the first bot's outside network, beside its egress proxy

    def container(self, bot: BotConfig, service: str) -> Any:
        return self.world.client.containers.get(f"cf-{bot.name}-{service}")

    def ip(self, bot: BotConfig, service: str, network: str = "int") -> str:
        attrs = self.world.client.api.inspect_container(f"cf-{bot.name}-{service}")
        return attrs["NetworkSettings"]["Networks"][f"cf-{bot.name}-{network}"]["IPAddress"]

    def probe(self, bot: BotConfig, plan: dict, service: str = "gateway") -> dict:
        """The probe's report, run in `service` as that container's own user."""
        code, out = self.container(bot, service).exec_run(
            ["python3", "-c", PROBE, json.dumps(plan)], demux=True
        )
        stdout, stderr = (b.decode(errors="replace") if b else "" for b in out)
        assert code == 0, f"probe failed in {bot.name}/{service}: {stderr[-2000:]}"
        return json.loads(stdout.strip().splitlines()[-1])

    def contacts(self) -> list[dict]:
        """Every contact the listener logged so far."""
        lines = self.listener.logs().decode().splitlines()
        return [c for c in map(json.loads, lines) if c["kind"] != "ready"]


def _add_bot(w: World, name: str, allow: list[str]) -> tuple[BotConfig, str]:
    w.add_bot(name)
    key = f"sk-ant-escape-{secrets.token_hex(12)}"
    _set_env_lines(w.home.providers_env(name), {"ANTHROPIC_API_KEY": key})
    config = w.home.update_bot(
        name,
        egress_allow=allow,
        limits={"memory_mb": MEMORY_MB, "cpus": 1.0, "pids": 512},
    )
    return config, key


def _start_listener(w: World) -> Any:
    image = "clawfactory/base:bookworm"
    listener = w.client.containers.run(
        image,
        ["python3", "-c", LISTENER, *map(str, LISTENER_PORTS)],
        name=f"cftest-{w.suffix}-listener",
        network=w.network,
        detach=True,
        labels={TEST_LABEL: w.suffix},
    )
    wait_for(lambda: b'"ready"' in listener.logs(), 30, "the test's listener")
    return listener


@pytest.fixture(scope="module")
def escape(world: World) -> Iterator[EscapeStack]:  # noqa: F811
    listener = _start_listener(world)
    try:
        listener.reload()
        listener_ip = listener.attrs["NetworkSettings"]["Networks"][world.network]["IPAddress"]
        a_name, b_name = f"ea{world.suffix}", f"eb{world.suffix}"
        # The first bot may reach the listener on 8443 only, and a name that
        # resolves nowhere; its outside network exists once its stack is up.
        a, a_key = _add_bot(world, a_name, ["allowed.example"])
        b, b_key = _add_bot(world, b_name, [])

        async def start_all() -> None:
            runtimes = Runtimes(world.home)
            try:
                await asyncio.gather(
                    *(lifecycle.start(world.home, bot, runtimes) for bot in (a, b))
                )
            finally:
                await runtimes.aclose()

        asyncio.run(start_all())
        world.client.networks.get(f"cf-{a_name}-ext").connect(listener)
        listener.reload()
        ext_ip = listener.attrs["NetworkSettings"]["Networks"][f"cf-{a_name}-ext"]["IPAddress"]
        from cftui.egress_control import edit_allowlist

        edit_allowlist(world.home, a_name, add=[f"{ext_ip}:8443"])
        a = world.home.bot(a_name)
        yield EscapeStack(
            world, a, b, {a_name: a_key, b_name: b_key}, listener, listener_ip, ext_ip
        )
    finally:
        # Off the bots' networks before the world removes them.
        with contextlib.suppress(Exception):
            listener.remove(force=True)
