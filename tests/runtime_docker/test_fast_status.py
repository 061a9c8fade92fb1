"""`cftui list` and `cftui status` on their fast path (the engine's unix
socket, no SDK: `fleet_view.read_now`) say exactly what the SDK path
(`lifecycle.fleet_status` through `Runtimes`) says, on the real engine: a
running stack, the same stack stopped, a bot never started, and containers
made by hand: unhealthy, never started, killed, exited, missing.

One stack is shared by the module; the tests run in file order.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cftui import fleet_view, lifecycle
from cftui.cli.fleet_cmds import _status_json
from cftui.fleet import BotConfig, FleetHome
from cftui.runtime import Runtimes
from cftui.runtime.docker.names import LABEL_BOT, LABEL_SERVICE, container_name
from cftui.runtime.status import KILLED, MISSING, RUNNING, STARTING, STOPPED, UNHEALTHY

from .helpers import TEST_LABEL, World, start_bot, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def bots(world: World) -> list[BotConfig]:
    """A bot started once, and one never started."""
    up = world.add_bot(f"fu{world.suffix}")
    never = world.add_bot(f"fn{world.suffix}")
    asyncio.run(start_bot(world, up))
    return [up, never]


def _full(home: FleetHome, bots: list[BotConfig]) -> tuple[dict, list[str]]:
    async def go() -> tuple[dict, list[str]]:
        runtimes = Runtimes(home)
        try:
            return await lifecycle.fleet_status(home, bots, runtimes)
        finally:
            await runtimes.aclose()

    return asyncio.run(go())


def _without_uptime(doc: Any) -> Any:
    """uptime_s is now minus started_at: the two reads are a moment apart."""
    if isinstance(doc, dict):
        return {k: _without_uptime(v) for k, v in doc.items() if k != "uptime_s"}
    if isinstance(doc, list):
        return [_without_uptime(v) for v in doc]
    return doc


def _both(home: FleetHome, bots: list[BotConfig]) -> tuple[list[dict], list[dict]]:
    got = fleet_view.read_now(home, bots)
    assert got is not None, "this machine's docker bots take the fast path"
    fast, fast_errors = got
    full, full_errors = _full(home, bots)
    assert fast_errors == full_errors == []
    as_json = [_without_uptime(_status_json(b, fast[b.name])) for b in bots]
    return as_json, [_without_uptime(_status_json(b, full[b.name])) for b in bots]


def test_a_running_stack_reads_the_same_both_ways(world: World, bots: list[BotConfig]) -> None:
    fast, full = _both(world.home, bots)
    assert fast == full
    up, never = fast
    # Up (on a loaded machine a healthcheck may time out: unhealthy is up too).
    assert all(s["started_at"] for s in up["services"].values()), up
    assert {s["state"] for s in up["services"].values()} <= {RUNNING, UNHEALTHY, STARTING}
    assert never["state"] == "absent"


def test_a_stopped_stack_reads_the_same_both_ways(world: World, bots: list[BotConfig]) -> None:
    async def stop() -> None:
        runtimes = Runtimes(world.home)
        try:
            await lifecycle.stop(world.home, bots[0], runtimes)
        finally:
            await runtimes.aclose()

    asyncio.run(stop())
    fast, full = _both(world.home, bots)
    assert fast == full
    services = fast[0]["services"]
    # A service that outlives the stop's 10 s is killed (exit 137).
    assert {s["state"] for s in services.values()} <= {STOPPED, KILLED}, services
    assert all(s["detail"].startswith("exit ") for s in services.values())
    assert fast[0]["state"] == STOPPED


def test_cftui_list_and_status_print_the_same_both_ways(
    world: World, bots: list[BotConfig], cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the stopped stack: a live one's uptimes and health tick between runs."""
    states = ("stopped", "absent")
    monkeypatch.setenv("CLAWFACTORY_HOME", str(world.home.root))
    shown = []
    for fast in (True, False):
        if not fast:  # the path every other runtime takes
            monkeypatch.setattr(fleet_view, "read_now", lambda home, bots, brief=False: None)
        outs = [cli(*argv) for argv in (("list",), ("status",), ("status", bots[0].name))]
        assert all(r.code == 0 and r.err == "" for r in outs), outs
        shown.append([r.out for r in outs])
    assert shown[0] == shown[1]
    listed = [line.split() for line in shown[0][0].splitlines()[1:]]
    assert [(row[0], row[3]) for row in listed] == [
        (b.name, s) for b, s in zip(bots, states, strict=True)
    ]


def _brief(home: FleetHome, bots: list[BotConfig]) -> dict:
    got = fleet_view.read_now(home, bots, brief=True)
    assert got is not None and got[1] == []
    return got[0]


def test_unhealthy_created_exited_and_missing_read_the_same_both_ways(
    world: World, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Containers made by hand under a bot's names and labels (no stack to
    start): up and unhealthy, up and healthy, made and never started,
    missing; then killed and exited with a code of its own. The full read
    says what the SDK path says; `list`'s brief one the same states."""
    from cftui.runtime.images import services

    bot = world.add_bot(f"fh{world.suffix}")
    image = services.ensure_image(world.client, "fake-llm")
    second = 1_000_000_000

    def make(svc: str, health: list[str] | None, command: list[str]) -> Any:
        return world.client.containers.create(
            image,
            command[1:],
            entrypoint=command[:1],
            name=container_name(bot.name, svc),
            labels={LABEL_BOT: bot.name, LABEL_SERVICE: svc, TEST_LABEL: world.suffix},
            healthcheck={"test": health, "interval": second, "retries": 1} if health else None,
        )

    gateway = make("gateway", ["CMD", "false"], ["sleep", "600"])
    front = make("front", ["CMD", "true"], ["sleep", "600"])
    proxy = make("llm-proxy", None, ["sleep", "600"])  # never started
    gateway.start()
    front.start()

    def health(c: Any) -> str:
        c.reload()
        return c.attrs["State"].get("Health", {}).get("Status", "")

    wait_for(lambda: health(gateway) == "unhealthy" and health(front) == "healthy", 60, "health")
    expected = {"gateway": UNHEALTHY, "front": RUNNING, "llm-proxy": STOPPED, "egress": MISSING}
    fast, full = _both(world.home, [bot])
    assert fast == full
    assert {s: v["state"] for s, v in fast[0]["services"].items()} == expected
    assert fast[0]["state"] == UNHEALTHY
    brief = _brief(world.home, [bot])[bot.name]
    assert {s: v.state for s, v in brief.services.items()} == expected
    assert brief.state == UNHEALTHY and brief.uptime_seconds() is not None

    front.kill()  # SIGKILL: exit 137
    proxy.remove()
    make("llm-proxy", None, ["sh", "-c", "exit 3"]).start()
    wait_for(lambda: front.reload() or front.status == "exited", 30, "the front's death")
    wait_for(
        lambda: (
            world.client.containers.get(container_name(bot.name, "llm-proxy")).status == "exited"
        ),
        30,
        "the proxy's exit",
    )
    expected = {"gateway": UNHEALTHY, "front": KILLED, "llm-proxy": STOPPED, "egress": MISSING}
    fast, full = _both(world.home, [bot])
    assert fast == full
    services_now = fast[0]["services"]
    assert {s: v["state"] for s, v in services_now.items()} == expected
    assert services_now["llm-proxy"]["detail"] == "exit 3"
    brief = _brief(world.home, [bot])[bot.name]
    assert {s: v.state for s, v in brief.services.items()} == expected
    assert brief.services["llm-proxy"].detail == "exit 3"

    # The table, fast and brief, as every other runtime's path prints it
    # (but the uptime, which ticks between the two).
    monkeypatch.setenv("CLAWFACTORY_HOME", str(world.home.root))
    shown = [cli("list").out]
    monkeypatch.setattr(fleet_view, "read_now", lambda home, bots, brief=False: None)
    shown.append(cli("list").out)
    rows = [[line.split() for line in out.splitlines()] for out in shown]
    assert [[r[:4] + r[5:] for r in table] for table in rows] == [
        [r[:4] + r[5:] for r in table] for table in rows[:1]
    ] * 2
    mine = [r for r in rows[0] if r[0] == bot.name]
    assert [r[3] for r in mine] == [UNHEALTHY] and mine[0][4] != "-"
