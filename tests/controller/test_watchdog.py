"""The watchdog: a gateway that crashes while its bot should be up is
reported and restarted through lifecycle with growing backoff, then given
up on (stopped, reported); never while locked, never after the operator
stopped the bot. Time runs on a scaled clock: backoffs of minutes take
milliseconds, and the gaps between restarts are read on that clock."""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime

from cftui import lifecycle, locks
from cftui.audit.events import read_events
from cftui.controller import settings as controller_settings
from cftui.controller.clock import ScaledClock
from cftui.controller.watchdog import Watchdog
from cftui.fleet import BotConfig, FleetHome
from cftui.progress import Progress, no_progress
from cftui.runtime.status import RUNNING, STOPPED
from tests.fakes.memory_runtime import MemoryRuntime, MemoryRuntimes

FACTOR = 200.0  # 10 s of backoff in 50 ms


class CrashingRuntime(MemoryRuntime):
    """The gateway exits shortly after every start (exit 1), as a gateway
    with a broken config does; the restart times are kept, on the clock."""

    def __init__(self, home: FleetHome, clock: ScaledClock) -> None:
        super().__init__(home)
        self.clock = clock
        self.restarts: list[datetime] = []
        self.crashing = True

    def _crash_soon(self, bot: str) -> None:
        if self.crashing:
            asyncio.get_running_loop().call_later(
                0.01, lambda: self._set(bot, STOPPED, ("gateway",))
            )

    async def up(self, bot: BotConfig, progress: Progress = no_progress) -> None:
        await super().up(bot, progress)
        self._crash_soon(bot.name)

    async def restart(self, bot: BotConfig, progress: Progress = no_progress) -> None:
        self.restarts.append(self.clock.now())
        await super().restart(bot, progress)
        self._crash_soon(bot.name)


def _watchdog(home: FleetHome, runtime: MemoryRuntime, clock: ScaledClock) -> Watchdog:
    return Watchdog(
        home,
        controller_settings.load(home),
        MemoryRuntimes(home, runtime),
        clock,
        poll_s=1.0,
        backoff_s=10.0,
        stable_s=120.0,
    )


async def _run_for(dog: Watchdog, real_seconds: float, until=lambda: False) -> None:
    """Run the watchdog for a while, or (under load) until `until()`."""
    task = asyncio.create_task(dog.run())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + real_seconds
    while loop.time() < deadline and not until():
        await asyncio.sleep(0.02)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.gather(*dog._tasks, return_exceptions=True)


async def test_a_crashing_gateway_is_restarted_with_backoff_then_given_up(fleet: FleetHome) -> None:
    with fleet.editing() as doc:
        doc["bots"]["alpha"]["controller"] = {"max_restarts": 3}
        doc["bots"]["beta"]["controller"] = {"watchdog": False}
    clock = ScaledClock(FACTOR)
    runtime = CrashingRuntime(fleet, clock)
    await lifecycle.start(fleet, fleet.bot("alpha"), MemoryRuntimes(fleet, runtime))
    await asyncio.sleep(0.05)
    assert runtime.states["alpha"]["gateway"] == STOPPED  # it crashed

    def gave_up() -> bool:
        return any(e.get("gave_up") for e in read_events(fleet, "alpha"))

    await _run_for(_watchdog(fleet, runtime, clock), 30.0, until=gave_up)
    await _run_for(_watchdog(fleet, runtime, clock), 0.5)  # and nothing more after it
    assert len(runtime.restarts) == 3
    r = runtime.restarts
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(r)]
    assert gaps[0] >= 10.0 and gaps[1] >= 20.0  # 10 s, then 20 s, on the clock
    assert ("stop_gateway", "alpha") in runtime.calls
    crashes = [e for e in read_events(fleet, "alpha") if e["action"] == "crash"]
    # each crash reported (the first, then one after each restart), then the giving up
    assert [c["attempt"] for c in crashes] == [0, 1, 2, 3, 3]
    assert [c.get("gave_up", False) for c in crashes] == [False] * 4 + [True]
    assert "gateway stopped" in crashes[0]["state"]
    restarts = [e for e in read_events(fleet, "alpha") if e["action"] == "restart"]
    assert len(restarts) == 3  # each through lifecycle, recorded as the operator's would be
    assert not [e for e in read_events(fleet, "beta") if e["action"] == "crash"]


async def test_a_gateway_that_recovers_is_not_given_up_on(fleet: FleetHome) -> None:
    clock = ScaledClock(FACTOR)
    runtime = CrashingRuntime(fleet, clock)
    await lifecycle.start(fleet, fleet.bot("alpha"), MemoryRuntimes(fleet, runtime))
    await asyncio.sleep(0.05)
    runtime.crashing = False  # the next restart holds

    def healed() -> bool:
        return bool(runtime.restarts) and runtime.states["alpha"]["gateway"] == RUNNING

    dog = _watchdog(fleet, runtime, clock)
    await _run_for(dog, 20.0, until=healed)
    await _run_for(dog, 0.3)  # and it is left alone from then on
    assert len(runtime.restarts) == 1
    assert runtime.states["alpha"]["gateway"] == RUNNING
    assert ("stop_gateway", "alpha") not in runtime.calls


async def test_never_while_locked_nor_after_the_operator_stopped_it(fleet: FleetHome) -> None:
    clock = ScaledClock(FACTOR)
    runtime = CrashingRuntime(fleet, clock)
    runtimes = MemoryRuntimes(fleet, runtime)
    await lifecycle.start(fleet, fleet.bot("alpha"), runtimes)
    await lifecycle.start(fleet, fleet.bot("beta"), runtimes)
    await asyncio.sleep(0.05)
    locks.lock_bots(fleet, ["alpha"])  # alpha: killed and locked
    await lifecycle.stop(fleet, fleet.bot("beta"), runtimes)  # beta: the operator's stop
    runtime._set("beta", RUNNING, ("llm-proxy",))  # even with a proxy left up
    await _run_for(_watchdog(fleet, runtime, clock), 0.5)
    assert runtime.restarts == []
    assert not [e for e in read_events(fleet) if e["action"] == "crash"]


async def test_a_paused_gateway_is_not_a_crash(fleet: FleetHome) -> None:
    clock = ScaledClock(FACTOR)
    runtime = MemoryRuntime(fleet)
    await lifecycle.start(fleet, fleet.bot("alpha"), MemoryRuntimes(fleet, runtime))

    real_status = runtime.status

    async def paused(bots):  # what `docker pause` during a snapshot looks like
        from dataclasses import replace

        out = await real_status(bots)
        st = out["alpha"]
        gw = replace(st.services["gateway"], state=STOPPED, detail="paused")
        out["alpha"] = replace(st, services={**st.services, "gateway": gw})
        return out

    runtime.status = paused  # type: ignore[method-assign]
    await _run_for(_watchdog(fleet, runtime, clock), 0.3)
    assert not [e for e in read_events(fleet) if e["action"] == "crash"]
