"""The kill switch with an operation in flight (issue 14), beside the same
kill with nothing in flight, on the real engine.

    .venv/bin/python bench/kill_inflight.py [--rounds 3]

Three cases, one bot each, `cftui.killswitch.kill` with the lock (as the
operator's kill is), timed from the call until it returns:

- idle: the bot is up and nothing else runs on it (the baseline);
- start here: a start in this process is mid-build (a slow RUN step) when
  the kill comes, so the kill cancels it and waits for it to end;
- start elsewhere: `cftui start` in another process is mid-build; the kill
  waits until that process has seen the lock and exited.

Also printed: when the cancelled start ended, counted from the kill's call.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import time

from docker_bench_fleet import bench_fleet, start_all, warm_images

from cftui import killswitch, lifecycle
from cftui.errors import BotLocked
from cftui.fleet import BotConfig, FleetHome
from cftui.runtime import Runtimes
from cftui.runtime.docker.runtime import DockerRuntime


def _slow(home: FleetHome, bot: BotConfig) -> str:
    """Give the bot's Dockerfile an uncached slow step; its marker."""
    marker = f"cf-bench-slow-{secrets.token_hex(4)}"
    with open(home.code_dir(bot.name) / "Dockerfile", "a") as f:
        f.write(f"\nRUN echo {marker} && sleep 20\n")
    return marker


def _building(client, marker: str) -> bool:
    return any(
        marker in (c.get("Command") or "")
        for c in client.api.containers(filters={"status": "running"})
    )


async def _wait_building(client, marker: str) -> None:
    deadline = time.monotonic() + 180
    while not await asyncio.to_thread(_building, client, marker):
        if time.monotonic() > deadline:
            raise SystemExit("the slow build step never started")
        await asyncio.sleep(0.05)


async def _idle(home: FleetHome, bot: BotConfig) -> tuple[float, float]:
    runtimes = Runtimes(home)
    await start_all(home, [bot], runtimes)
    started = time.monotonic()
    result = await killswitch.kill(home, [bot], runtimes)
    took = time.monotonic() - started
    assert result.ok, result.reports[0].summary()
    killswitch.unlock(home, [bot.name])
    await runtimes.aclose()
    return took, 0.0


async def _start_here(home: FleetHome, bot: BotConfig, client) -> tuple[float, float]:
    runtimes = Runtimes(home)
    marker = _slow(home, bot)
    start = asyncio.create_task(lifecycle.start(home, bot, runtimes))
    await _wait_building(client, marker)
    started = time.monotonic()
    result = await killswitch.kill(home, [bot], runtimes)
    took = time.monotonic() - started
    try:
        await start
        raise SystemExit("the start was not cancelled")
    except BotLocked:
        ended = time.monotonic() - started
    assert result.reports[0].cancelled == ["start"], result.reports[0].summary()
    killswitch.unlock(home, [bot.name])
    await runtimes.aclose()
    return took, ended


async def _start_elsewhere(home: FleetHome, bot: BotConfig, client) -> tuple[float, float]:
    runtimes = Runtimes(home)
    marker = _slow(home, bot)
    env = {**os.environ, "CLAWFACTORY_HOME": str(home.root)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cftui", "start", bot.name],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    await _wait_building(client, marker)
    started = time.monotonic()
    result = await killswitch.kill(home, [bot], runtimes)
    took = time.monotonic() - started
    await asyncio.to_thread(proc.wait, 60)
    ended = time.monotonic() - started
    assert proc.returncode == 1, proc.returncode
    assert result.reports[0].cancelled, result.reports[0].summary()
    killswitch.unlock(home, [bot.name])
    await runtimes.aclose()
    return took, ended


async def _rounds(home: FleetHome, bot: BotConfig, rounds: int) -> dict[str, list]:
    client = DockerRuntime(home).client()
    figures: dict[str, list[tuple[float, float]]] = {"idle": [], "here": [], "elsewhere": []}
    for _ in range(rounds):
        figures["idle"].append(await _idle(home, bot))
        figures["here"].append(await _start_here(home, bot, client))
        figures["elsewhere"].append(await _start_elsewhere(home, bot, client))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with bench_fleet(1, "kif") as (home, bots):
        bot = bots[0]
        warm_images(home, bot)
        figures = asyncio.run(_rounds(home, bot, args.rounds))
        base = statistics.median(t for t, _ in figures["idle"])
        print(f"kill with an operation in flight vs without ({args.rounds} rounds, medians)")
        print(f"{'case':<34} {'kill returns':>13} {'ratio':>7} {'start ended':>12}")
        for key, label in (
            ("idle", "idle (baseline)"),
            ("here", "start mid-build, this process"),
            ("elsewhere", "start mid-build, another process"),
        ):
            took = statistics.median(t for t, _ in figures[key])
            ended = statistics.median(e for _, e in figures[key])
            end = f"{ended * 1000:.0f} ms" if key != "idle" else "-"
            print(f"{label:<34} {took * 1000:>10.0f} ms {took / base:>6.2f}x {end:>12}")


if __name__ == "__main__":
    main()
