"""Fleet start on Docker with images cached: seconds until 10 bots are
healthy (goal ≤ 30 s), started together through `lifecycle.start`.

    .venv/bin/python bench/fleet_start.py [--bots 10]

Two figures: from stopped stacks (the containers exist: `cftui start` after
`cftui stop`), and from nothing (containers, networks and volumes removed;
images kept), which is the first start of a fleet.
"""

from __future__ import annotations

import argparse
import asyncio

from docker_bench_fleet import bench_fleet, start_all, warm_images

from cftui import lifecycle
from cftui.runtime import Runtimes
from cftui.runtime.docker.runtime import DockerRuntime


async def _stop_all(home, bots, *, remove: bool) -> None:
    runtimes = Runtimes(home)
    runtime = runtimes.get("docker")
    assert isinstance(runtime, DockerRuntime)
    if remove:
        await asyncio.gather(*(runtime.remove(b) for b in bots))
    else:
        await asyncio.gather(*(lifecycle.stop(home, b, runtimes) for b in bots))
    await runtimes.aclose()


async def _timed_start(home, bots) -> float:
    runtimes = Runtimes(home)
    try:
        return await start_all(home, bots, runtimes)
    finally:
        await runtimes.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bots", type=int, default=10)
    args = parser.parse_args()
    with bench_fleet(args.bots, "bench-s") as (home, bots):
        for bot in bots:
            warm_images(home, bot)
        asyncio.run(_timed_start(home, bots))  # creates everything once
        asyncio.run(_stop_all(home, bots, remove=False))
        from_stopped = asyncio.run(_timed_start(home, bots))
        asyncio.run(_stop_all(home, bots, remove=True))
        from_nothing = asyncio.run(_timed_start(home, bots))
    print(f"{'bots':>4}  {'from stopped':>12}  {'from nothing':>12}  {'goal':>6}")
    print(f"{args.bots:>4}  {from_stopped:>10.1f} s  {from_nothing:>10.1f} s  {30:>4} s")


if __name__ == "__main__":
    main()
