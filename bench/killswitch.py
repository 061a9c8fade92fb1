"""The kill switch on Docker: time from the call until every gateway is dead
and disconnected, for 1, 5 and 10 running bots, side by side with stopping
the same containers one by one as `docker compose down` would.

    .venv/bin/python bench/killswitch.py [--sizes 1,5,10] [--rounds 1]

Each round starts the fleet, kills it through `cftui.killswitch.kill` (the
one implementation; lock=False so the next round can start), checks every
gateway is stopped with no network left, starts the fleet again and stops
it container by container (`docker stop`, 10 s grace, front then gateway
then the proxies, bot after bot), timing when the last gateway stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from docker_bench_fleet import bench_fleet, start_all, warm_images

from cftui import killswitch
from cftui.runtime import Runtimes
from cftui.runtime.docker.runtime import DockerRuntime


async def _kill_round(home, bots) -> tuple[float, float]:
    """(seconds to every gateway dead and disconnected, seconds to return)."""
    runtimes = Runtimes(home)
    await start_all(home, bots, runtimes)
    runtime = runtimes.get("docker")
    assert isinstance(runtime, DockerRuntime)
    gateways_done: list[float] = []
    original = runtime._kill_container

    def timed_kill(name: str) -> str:
        outcome = original(name)
        gateways_done.append(time.monotonic())
        return outcome

    runtime._kill_container = timed_kill  # type: ignore[method-assign]
    started = time.monotonic()
    result = await killswitch.kill(home, bots, runtimes, lock=False, action="bench-kill")
    returned = time.monotonic() - started
    if not result.ok or len(gateways_done) < len(bots):
        print(
            f"  {len(bots)} bots: kill not clean: " + "; ".join(r.summary() for r in result.reports)
        )
        # The slow engine was reported, not waited on: let it finish the job.
        await asyncio.gather(*(runtime.kill(b) for b in bots))
        gateways_done.append(started + returned)
    client = runtime.client()
    for bot in bots:
        attrs = client.api.inspect_container(f"cf-{bot.name}-gateway")
        assert not attrs["State"]["Running"], bot.name
        assert attrs["NetworkSettings"]["Networks"] == {}, bot.name
    await runtimes.aclose()
    return max(gateways_done) - started, returned


async def _sequential_round(home, bots) -> tuple[float, float]:
    """`docker compose down`, one container at a time: (last gateway, all)."""
    runtimes = Runtimes(home)
    await start_all(home, bots, runtimes)
    client = runtimes.get("docker").client()  # type: ignore[attr-defined]
    started = time.monotonic()
    last_gateway = 0.0

    def stop_all() -> None:
        nonlocal last_gateway
        for bot in bots:
            for service in ("front", "gateway", "llm-proxy", "egress"):
                client.api.stop(f"cf-{bot.name}-{service}", timeout=10)
                if service == "gateway":
                    last_gateway = time.monotonic() - started

    await asyncio.to_thread(stop_all)
    total = time.monotonic() - started
    await runtimes.aclose()
    return last_gateway, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,5,10")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    with bench_fleet(max(sizes), "bench-k") as (home, all_bots):
        for bot in all_bots:
            warm_images(home, bot)
        for n in sizes:
            bots = all_bots[:n]
            kills, returns, seqs, seq_totals = [], [], [], []
            for _ in range(args.rounds):
                k, r = asyncio.run(_kill_round(home, bots))
                s, t = asyncio.run(_sequential_round(home, bots))
                kills.append(k)
                returns.append(r)
                seqs.append(s)
                seq_totals.append(t)
            rows.append(
                (
                    n,
                    statistics.median(kills),
                    statistics.median(returns),
                    statistics.median(seqs),
                    statistics.median(seq_totals),
                )
            )
    print(
        f"{'bots':>4}  {'kill: gateways dead+cut':>24}  {'kill returns':>12}  "
        f"{'one-by-one: last gateway':>24}  {'one-by-one: all':>15}  {'ratio':>6}"
    )
    for n, k, r, s, t in rows:
        print(
            f"{n:>4}  {k * 1000:>21.0f} ms  {r * 1000:>9.0f} ms  {s * 1000:>21.0f} ms  "
            f"{t * 1000:>12.0f} ms  {s / k:>5.1f}x"
        )


if __name__ == "__main__":
    main()
