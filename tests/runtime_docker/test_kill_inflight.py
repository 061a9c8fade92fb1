"""The kill switch against operations in flight, on the real engine: a kill
during a slow start (another process: `cftui start` in one terminal,
`cftui kill` in another), a rebuild, and a restore wins every time. The
operation ends non-zero naming the lock, nothing of the bot runs afterwards,
every container that exists has restart policy `no`, and the events log
says what happened. After `cftui unlock` the bot starts again."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import pytest

from cftui import killswitch, lifecycle, locks, snapshots
from cftui.audit.events import read_events
from cftui.errors import BotLocked
from cftui.fleet import BotConfig
from cftui.progress import ProgressEvent
from cftui.runtime import Runtimes

from .helpers import World, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(600)]

SERVICES = ("front", "gateway", "llm-proxy", "egress")


SLOW_STEP_S = 20


def slow_step(marker: str) -> str:
    """A build step that takes a while and is never cached (its marker)."""
    return f"\nRUN echo {marker} && sleep {SLOW_STEP_S}\n"


def demo_code(dest: Path, extra: str = "") -> Path:
    with resources.as_file(resources.files("cftui") / "templates" / "demo-agent") as src:
        shutil.copytree(src, dest)
    if extra:
        with open(dest / "Dockerfile", "a") as f:
            f.write(extra)
    return dest


def building(world: World, marker: str) -> bool:
    """Whether the engine is running the build step that carries `marker`
    (the classic builder runs each RUN in a container of its own)."""
    for c in world.client.api.containers(filters={"status": "running"}):
        if marker in (c.get("Command") or ""):
            return True
    return False


def bot_containers(world: World, bot: str) -> list[dict]:
    found = world.client.api.containers(all=True, filters={"label": f"io.clawfactory.bot={bot}"})
    return [world.client.api.inspect_container(c["Id"]) for c in found]


def assert_nothing_runs(world: World, bot: str) -> None:
    for attrs in bot_containers(world, bot):
        assert attrs["State"]["Running"] is False, attrs["Name"]
        assert attrs["HostConfig"]["RestartPolicy"]["Name"] == "no", attrs["Name"]


def cancelled_events(world: World, bot: str, action: str) -> list[dict]:
    return [
        e
        for e in read_events(world.home, bot)
        if e["action"] == action and e.get("cancelled") == "kill switch"
    ]


def cftui(world: World, *args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "CLAWFACTORY_HOME": str(world.home.root)}
    return subprocess.Popen(
        [sys.executable, "-m", "cftui", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


async def test_a_kill_during_a_slow_start_in_another_process_wins(
    world: World, tmp_path: Path
) -> None:
    marker = f"cf-slow-{secrets.token_hex(4)}"
    bot = world.add_bot(f"ks{world.suffix}", code=demo_code(tmp_path / "code", slow_step(marker)))
    start = cftui(world, "start", bot.name)
    try:
        wait_for(lambda: building(world, marker), 180, "the slow build step")
        started = time.monotonic()
        kill = cftui(world, "kill", bot.name)
        kill_out, kill_err = kill.communicate(timeout=30)
        kill_s = time.monotonic() - started
        out, err = start.communicate(timeout=30)
        start_s = time.monotonic() - started
    finally:
        for proc in (start,):
            if proc.poll() is None:
                proc.kill()
    assert kill.returncode == 0, kill_err
    assert "cancelled start (pid" in kill_out
    # Each is a new process (its interpreter and imports: seconds on a loaded
    # machine), yet both end well before the build step would (SLOW_STEP_S).
    assert kill_s < SLOW_STEP_S / 2, kill_s
    assert start.returncode == 1, (out, err)
    assert "locked by the kill switch" in err, err
    # It ended at once: its build was hung up on, not waited for.
    assert start_s < SLOW_STEP_S * 0.6, start_s
    assert "Successfully built" not in err
    # Nothing runs now, nor once the build step would have finished.
    assert_nothing_runs(world, bot.name)
    wait_for(lambda: not building(world, marker), 60, "the cancelled build to end")
    assert_nothing_runs(world, bot.name)
    assert cancelled_events(world, bot.name, "start")
    assert any(e["action"] == "kill" for e in read_events(world.home))

    # Unlocked, the same bot starts (and its slow build runs to the end).
    assert killswitch.unlock(world.home, [bot.name]) == [bot.name]
    runtimes = Runtimes(world.home)
    try:
        await lifecycle.start(world.home, bot, runtimes)
    finally:
        await runtimes.aclose()
    gw = world.client.api.inspect_container(f"cf-{bot.name}-gateway")
    assert gw["State"]["Running"] is True
    assert gw["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"


async def _kill_when(
    world: World, bot: BotConfig, runtimes: Runtimes, hit: object
) -> tuple[list[asyncio.Future], object]:
    """A progress callback that kills `bot` at the first event `hit` accepts
    (from whichever thread reports it)."""
    loop = asyncio.get_running_loop()
    kills: list[asyncio.Future] = []

    def kill_now() -> None:
        if not kills:
            kills.append(asyncio.ensure_future(killswitch.kill(world.home, [bot], runtimes)))

    def progress(event: ProgressEvent) -> None:
        if hit(event):  # type: ignore[operator]
            loop.call_soon_threadsafe(kill_now)

    return kills, progress


async def test_a_kill_during_a_rebuild_wins(world: World, tmp_path: Path) -> None:
    bot = world.add_bot(f"kr{world.suffix}", code=demo_code(tmp_path / "code"))
    runtimes = Runtimes(world.home)
    try:
        await lifecycle.start(world.home, bot, runtimes)
        marker = f"cf-slow-{secrets.token_hex(4)}"
        with open(world.home.code_dir(bot.name) / "Dockerfile", "a") as f:
            f.write(slow_step(marker))
        kills, progress = await _kill_when(world, bot, runtimes, lambda ev: marker in ev.message)
        with pytest.raises(BotLocked, match="rebuild cancelled: "):
            await lifecycle.rebuild(world.home, bot, runtimes, progress)
        assert kills, "the build never reached its slow step"
        result = await kills[0]
        assert result.reports[0].cancelled == ["rebuild"]
    finally:
        await runtimes.aclose()
    assert_nothing_runs(world, bot.name)
    wait_for(lambda: not building(world, marker), 60, "the cancelled build to end")
    assert_nothing_runs(world, bot.name)
    assert cancelled_events(world, bot.name, "rebuild")


async def test_a_kill_as_a_restore_starts_the_gateway_wins(world: World, tmp_path: Path) -> None:
    bot = world.add_bot(f"kt{world.suffix}", code=demo_code(tmp_path / "code"))
    runtimes = Runtimes(world.home)
    runtime = runtimes.get("docker")
    try:
        await lifecycle.start(world.home, bot, runtimes)
        await snapshots.snapshot(world.home, bot, "before", runtime=runtime)
        kills, progress = await _kill_when(
            world, bot, runtimes, lambda ev: "starting the gateway" in ev.message
        )
        with pytest.raises(BotLocked, match="restore cancelled: "):
            await snapshots.restore(world.home, bot, "latest", runtime=runtime, progress=progress)
        assert kills
        result = await kills[0]
        assert result.reports[0].cancelled == ["restore"], result.reports[0].summary()
    finally:
        await runtimes.aclose()
    assert_nothing_runs(world, bot.name)
    assert cancelled_events(world, bot.name, "restore")
    assert locks.is_locked(world.home, bot.name)
