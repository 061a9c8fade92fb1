"""What the kill switch promises, whatever else is going on: the lock comes
first, no bot's trouble holds up another's kill, the deadline is reported,
and a kill during a start, a rebuild or a restore leaves nothing running and
ends that operation with the lock's error."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from cftui import killswitch, lifecycle, locks, snapshots
from cftui.audit.events import read_events
from cftui.errors import BotLocked
from cftui.fleet import BotConfig, FleetHome
from cftui.progress import ProgressEvent
from cftui.runtime.base import KillReport
from cftui.runtime.status import RUNNING
from tests.fakes.memory_runtime import MemoryRuntime, MemoryRuntimes

pytestmark = pytest.mark.timeout(60)


def running(runtime: MemoryRuntime, bot: str) -> list[str]:
    return [s for s, state in runtime.states.get(bot, {}).items() if state == RUNNING]


def actions(fleet: FleetHome, bot: str | None = None) -> list[dict]:
    return list(read_events(fleet, bot))


async def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


# --- the kill itself ------------------------------------------------------------
async def test_the_lock_is_written_before_any_runtime_call(
    fleet: FleetHome, runtime: MemoryRuntime, runtimes: MemoryRuntimes, monkeypatch
) -> None:
    seen: dict[str, bool] = {}
    real_kill = runtime.kill

    async def kill(bot: BotConfig) -> KillReport:
        seen[bot.name] = locks.is_locked(fleet, bot.name)
        return await real_kill(bot)

    monkeypatch.setattr(runtime, "kill", kill)
    bots = list(fleet.bots().values())
    result = await killswitch.kill(fleet, bots, runtimes)
    assert result.ok
    assert seen == dict.fromkeys(fleet.bots(), True)


async def test_one_bots_failure_or_silence_never_stops_anothers_kill(
    fleet: FleetHome, runtime: MemoryRuntime, runtimes: MemoryRuntimes, monkeypatch
) -> None:
    monkeypatch.setattr(killswitch, "KILL_TIMEOUT_S", 0.5)
    runtime.states["gamma"] = {s: RUNNING for s in ("front", "gateway", "llm-proxy", "egress")}
    real_kill = runtime.kill

    async def kill(bot: BotConfig) -> KillReport:
        if bot.name == "alpha":
            raise OSError("the engine hung up")
        if bot.name == "beta":
            await asyncio.Event().wait()  # never answers
        return await real_kill(bot)

    monkeypatch.setattr(runtime, "kill", kill)
    started = time.monotonic()
    result = await killswitch.kill(fleet, list(fleet.bots().values()), runtimes)
    assert time.monotonic() - started < 2.0
    by_bot = {r.bot: r for r in result.reports}
    assert by_bot["alpha"].errors == ["OSError: the engine hung up"]
    assert by_bot["beta"].errors == ["docker did not answer in 0 s"]  # the deadline, reported
    assert by_bot["gamma"].ok and by_bot["gamma"].gateway_killed
    assert running(runtime, "gamma") == []
    kill_event = [e for e in actions(fleet) if e["action"] == "kill"][-1]
    assert kill_event["ok"] is False and len(kill_event["reports"]) == 3
    assert locks.locked_bots(fleet) == ["alpha", "beta", "gamma"]


# --- operations in flight ------------------------------------------------------
async def test_a_kill_during_a_start_cancels_it_and_leaves_nothing_running(
    fleet: FleetHome, runtime: MemoryRuntime, runtimes: MemoryRuntimes
) -> None:
    bot = fleet.bot("alpha")
    runtime.building = asyncio.Event()
    start = asyncio.create_task(lifecycle.start(fleet, bot, runtimes))
    await asyncio.wait_for(runtime.build_started.wait(), 5)

    result = await killswitch.kill(fleet, [bot], runtimes)
    runtime.building.set()  # the "build" would finish now: nothing may start

    with pytest.raises(BotLocked, match="start cancelled: "):
        await start
    assert result.reports[0].cancelled == ["start"]
    assert "cancelled start" in result.reports[0].summary()
    assert running(runtime, "alpha") == []
    cancelled = [e for e in actions(fleet, "alpha") if e["action"] == "start"]
    assert [(e["ok"], e["cancelled"]) for e in cancelled] == [(False, "kill switch")]
    assert any(e["action"] == "kill" for e in actions(fleet))


async def test_a_kill_during_a_rebuild_cancels_it_and_leaves_nothing_running(
    fleet: FleetHome, runtime: MemoryRuntime, runtimes: MemoryRuntimes
) -> None:
    bot = fleet.bot("beta")
    await lifecycle.start(fleet, bot, runtimes)
    assert len(running(runtime, "beta")) == 4
    runtime.building = asyncio.Event()
    rebuild = asyncio.create_task(lifecycle.rebuild(fleet, bot, runtimes))
    await asyncio.wait_for(runtime.build_started.wait(), 5)

    await killswitch.kill(fleet, [bot], runtimes)
    runtime.building.set()

    with pytest.raises(BotLocked, match="rebuild cancelled: beta is locked"):
        await rebuild
    assert running(runtime, "beta") == []
    assert any(e.get("cancelled") == "kill switch" for e in actions(fleet, "beta"))


async def test_a_kill_during_a_restore_leaves_the_gateway_stopped_and_the_state_whole(
    fleet: FleetHome, runtime: MemoryRuntime, runtimes: MemoryRuntimes
) -> None:
    bot = fleet.bot("gamma")
    memo = fleet.state_dir("gamma") / "memo.txt"
    memo.write_text("old")
    snapshots.create_snapshot(fleet, "gamma", "keep")
    memo.write_text("new")
    await lifecycle.start(fleet, bot, runtimes)
    kills: list[asyncio.Future] = []
    loop = asyncio.get_running_loop()

    def kill_now() -> None:
        if not kills:
            kills.append(asyncio.ensure_future(killswitch.kill(fleet, [bot], runtimes)))

    def progress(event: ProgressEvent) -> None:
        # The swap reports from its worker thread: the kill lands mid-swap.
        if threading.current_thread() is not threading.main_thread():
            loop.call_soon_threadsafe(kill_now)

    with pytest.raises(BotLocked, match="restore"):
        await snapshots.restore(fleet, bot, "latest", runtime=runtime, progress=progress)
    await asyncio.gather(*kills)
    assert kills, "the restore never reported progress"
    assert memo.read_text() == "old"  # the swap, once begun, finished
    assert running(runtime, "gamma") == []
    assert ("start_gateway", "gamma") not in runtime.calls
    restore_events = [e for e in actions(fleet, "gamma") if e["action"] == "restore"]
    assert restore_events and restore_events[-1]["ok"] is True
    assert restore_events[-1]["cancelled"] == "kill switch"


async def test_a_start_past_the_gate_when_the_kill_lands_is_killed_once_it_is_through(
    fleet: FleetHome, runtime: MemoryRuntime, runtimes: MemoryRuntimes, monkeypatch
) -> None:
    """The hardest interleaving: a start has passed the lock check and is in
    its engine call when the lock is written. The kill waits for the call,
    then kills what it started, and says so."""
    bot = fleet.bot("alpha")
    in_call = threading.Event()

    def slow_start(b: BotConfig, services=("front", "gateway", "llm-proxy", "egress")) -> None:
        with runtime.gate(b, "starting"):
            in_call.set()
            time.sleep(0.3)  # the engine call, already past the check
            for s in services:
                runtime.states.setdefault(b.name, {})[s] = RUNNING

    async def up(b: BotConfig, progress=None) -> None:
        await asyncio.to_thread(slow_start, b)

    monkeypatch.setattr(runtime, "up", up)
    start = asyncio.create_task(lifecycle.start(fleet, bot, runtimes))
    await asyncio.to_thread(in_call.wait, 5)

    result = await killswitch.kill(fleet, [bot], runtimes)

    report = result.reports[0]
    assert report.gateway_killed and report.ok, report.summary()
    assert report.cancelled == ["start"]
    assert running(runtime, "alpha") == []
    with pytest.raises(BotLocked):
        await start


def test_the_gate_refuses_a_locked_bot_and_the_kill_waits_for_it(fleet: FleetHome) -> None:
    with locks.gate(fleet, "alpha"):
        assert locks.gate_busy(fleet, "alpha")
        assert locks.wait_gate(fleet, "alpha", timeout=0.1) is False
    assert locks.wait_gate(fleet, "alpha", timeout=0.1) is True
    locks.lock_bots(fleet, ["alpha"])
    with pytest.raises(BotLocked, match="locked by the kill switch"), locks.gate(fleet, "alpha"):
        pytest.fail("the gate let a locked bot through")


async def test_an_operation_of_a_locked_bot_is_refused_before_it_begins(
    fleet: FleetHome, runtime: MemoryRuntime, runtimes: MemoryRuntimes
) -> None:
    locks.lock_bots(fleet, ["alpha"])
    with pytest.raises(BotLocked, match="cftui unlock alpha"):
        await lifecycle.start(fleet, fleet.bot("alpha"), runtimes)
    assert runtime.calls == []


def start_in_another_process(fleet: FleetHome) -> subprocess.Popen[str]:
    """`cftui start` in another terminal: an operation on beta that runs until
    a kill cancels it (exit 1 with the lock's error)."""
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from cftui import locks
        from cftui.errors import BotLocked
        from cftui.fleet import FleetHome

        async def main():
            home = FleetHome({str(fleet.root)!r})
            try:
                async with locks.operation(home, "beta", "start"):
                    print("registered", flush=True)
                    await asyncio.sleep(30)
            except BotLocked as exc:
                print(exc, flush=True)
                sys.exit(1)

        asyncio.run(main())
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=Path.cwd()
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "registered"
    return proc


async def test_a_kill_cancels_an_operation_of_another_process(
    fleet: FleetHome, runtime: MemoryRuntime, runtimes: MemoryRuntimes
) -> None:
    """`cftui start` in one terminal, `cftui kill` in another: the start sees
    the lock, ends with the lock's error, and the kill waits for it."""
    proc = start_in_another_process(fleet)
    try:
        started = time.monotonic()
        result = await killswitch.kill(fleet, [fleet.bot("beta")], runtimes)
        seconds = time.monotonic() - started
        out, _ = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 1
    assert "start cancelled: " in out
    assert result.reports[0].cancelled == [f"start (pid {proc.pid})"]
    assert result.reports[0].ok
    assert seconds < locks.OPERATION_WAIT_S  # it waited for the start to end, not for the bound
    assert locks.other_operations(fleet, ["beta"]) == []


async def test_a_start_that_ends_before_the_kill_looks_is_still_reported_cancelled(
    fleet: FleetHome,
    runtime: MemoryRuntime,
    runtimes: MemoryRuntimes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a loaded machine the other process can see the lock (its watcher
    polls every 50 ms) and be gone before the kill's look after the lock: the
    kill still names the start it cancelled (found on 20.10 under load 14)."""
    proc = start_in_another_process(fleet)
    gate_busy = locks.gate_busy

    def slow_gate_busy(home: FleetHome, bot: str) -> bool:
        proc.wait(timeout=10)  # the start has seen the lock and ended
        return gate_busy(home, bot)

    monkeypatch.setattr(locks, "gate_busy", slow_gate_busy)
    try:
        result = await killswitch.kill(fleet, [fleet.bot("beta")], runtimes)
        out, _ = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 1
    assert "start cancelled: " in out
    assert result.reports[0].cancelled == [f"start (pid {proc.pid})"]
    assert "cancelled start (pid" in result.reports[0].summary()
