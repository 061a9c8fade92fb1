"""`cftui list` and `cftui status` on their fast path (the engine's unix
socket, no SDK: `fleet_view.read_now`) say exactly what the SDK path
(`lifecycle.fleet_status` through `Runtimes`) says, on the real engine: a
running stack, the same stack stopped, a bot never started.

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
from cftui.runtime.base import KILLED, RUNNING, STARTING, STOPPED, UNHEALTHY

from .helpers import World, start_bot

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
