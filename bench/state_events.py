"""Live state on Docker: delay between Docker reporting a container's state
change (the event's own timestamp) and a subscriber of
`DockerRuntime.events` holding the StateChange. Goal: ≤ 500 ms.

    .venv/bin/python bench/state_events.py [--rounds 20]

One bot's stack runs; its front is stopped and started `--rounds` times
while a subscriber notes when each change arrives.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from datetime import UTC, datetime

from docker_bench_fleet import bench_fleet, start_all, warm_images

from cftui.runtime import Runtimes
from cftui.runtime.docker.runtime import DockerRuntime


async def _measure(home, bot, rounds: int) -> list[float]:
    runtimes = Runtimes(home)
    await start_all(home, [bot], runtimes)
    runtime = runtimes.get("docker")
    assert isinstance(runtime, DockerRuntime)
    delays: list[float] = []
    expected = rounds * 3  # die, stop, start per round
    done = asyncio.Event()

    async def subscribe() -> None:
        async for change in runtime.events([bot]):
            if change.service != "front":
                continue
            delays.append((datetime.now(UTC) - change.ts).total_seconds())
            if len(delays) >= expected:
                done.set()
                return

    task = asyncio.create_task(subscribe())
    await asyncio.sleep(0.5)
    api = runtime.client().api
    name = f"cf-{bot.name}-front"
    for _ in range(rounds):
        await asyncio.to_thread(api.stop, name, timeout=2)
        await asyncio.to_thread(api.start, name)
    await asyncio.wait_for(done.wait(), 30)
    task.cancel()
    await runtimes.aclose()
    return delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with bench_fleet(1, "bench-e") as (home, bots):
        warm_images(home, bots[0])
        delays = sorted(asyncio.run(_measure(home, bots[0], args.rounds)))
    p95 = delays[int(0.95 * (len(delays) - 1))]
    print(f"{'events':>6}  {'median':>9}  {'p95':>9}  {'max':>9}  {'goal':>7}")
    print(
        f"{len(delays):>6}  {statistics.median(delays) * 1000:>6.1f} ms  {p95 * 1000:>6.1f} ms  "
        f"{delays[-1] * 1000:>6.1f} ms  {500:>4} ms"
    )


if __name__ == "__main__":
    main()
