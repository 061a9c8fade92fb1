"""The remote kill on Docker (issue 20): time from `POST /kill` to a running
controller until every gateway is cut from its network and dead, for N
running bots (default 10), beside `cftui kill --all` on the same fleet: its
implementation called in-process (`cftui.killswitch.kill`, the one the
controller calls too) and the command itself as a process (interpreter
start included). Also: when the controller's signed `kill` event reached a
receiver on loopback, counted from the kill's answer.

    cd bench && ../.venv/bin/python controller_kill.py [--bots 10] [--rounds 1]

Each round starts the whole fleet, kills it one way, checks every gateway is
stopped with no network left (docker inspect), and unlocks it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from aiohttp import web
from cfproxies.envfile import read_env_file
from docker_bench_fleet import bench_fleet, start_all, warm_images

from cftui import killswitch
from cftui.controller import settings as controller_settings
from cftui.controller.service import Controller, ServeOptions
from cftui.fleet import BotConfig, FleetHome
from cftui.runtime import Runtimes
from cftui.runtime.docker.runtime import DockerRuntime

ROOT = Path(__file__).resolve().parents[1]


def _time_gateway_kills(runtime: DockerRuntime) -> list[float]:
    done: list[float] = []
    original = runtime._kill_container

    def timed(name: str) -> str:
        outcome = original(name)
        if name.endswith("-gateway"):
            done.append(time.monotonic())
        return outcome

    runtime._kill_container = timed  # type: ignore[method-assign]
    return done


def _check_dead(runtime: DockerRuntime, bots: list[BotConfig]) -> None:
    api = runtime.client().api
    for bot in bots:
        attrs = api.inspect_container(f"cf-{bot.name}-gateway")
        assert not attrs["State"]["Running"], bot.name
        assert attrs["NetworkSettings"]["Networks"] == {}, bot.name


async def _remote_round(home: FleetHome, bots: list[BotConfig]) -> tuple[float, float, float]:
    """(gateways dead + cut, answer received, kill event at the receiver)."""
    runtimes = Runtimes(home)
    await start_all(home, bots, runtimes)
    runtime = runtimes.get("docker")
    assert isinstance(runtime, DockerRuntime)
    got: list[float] = []

    async def receive(request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("event") == "kill":
            got.append(time.monotonic())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/", receive)
    rx = web.AppRunner(app, access_log=None)
    await rx.setup()
    await web.TCPSite(rx, "127.0.0.1", 0).start()
    host, port = rx.addresses[0][:2]
    lines: list[str] = []
    controller = Controller(
        home,
        controller_settings.load(home),
        ServeOptions(listen="127.0.0.1:0", notify=(f"http://{host}:{port}/",)),
        runtimes,
        say=lines.append,
    )
    await controller.start()
    token = read_env_file(home.root / "secrets" / "controller.env")["CF_CONTROLLER_TOKEN"]
    chost, cport = controller.bound[0]
    done = _time_gateway_kills(runtime)
    async with aiohttp.ClientSession() as session:
        started = time.monotonic()
        async with session.post(
            f"http://{chost}:{cport}/kill",
            data=b'{"all": true}',
            headers={"Authorization": f"Bearer {token}"},
        ) as resp:
            report = await resp.json()
        answered = time.monotonic() - started
    assert resp.status == 200 and report["ok"], report
    while not got and time.monotonic() - started < 30:
        await asyncio.sleep(0.005)
    _check_dead(runtime, bots)
    await controller.aclose()
    await rx.cleanup()
    killswitch.unlock(home, [b.name for b in bots])
    await runtimes.aclose()
    event = (got[0] - started - answered) if got else float("nan")
    return max(done) - started, answered, event


async def _direct_round(home: FleetHome, bots: list[BotConfig]) -> tuple[float, float]:
    """`cftui kill --all`'s implementation in-process: (gateways, returns)."""
    runtimes = Runtimes(home)
    await start_all(home, bots, runtimes)
    runtime = runtimes.get("docker")
    assert isinstance(runtime, DockerRuntime)
    done = _time_gateway_kills(runtime)
    started = time.monotonic()
    result = await killswitch.kill(home, bots, runtimes)
    returned = time.monotonic() - started
    assert result.ok, [r.summary() for r in result.reports]
    _check_dead(runtime, bots)
    killswitch.unlock(home, [b.name for b in bots])
    await runtimes.aclose()
    return max(done) - started, returned


async def _cli_round(home: FleetHome, bots: list[BotConfig]) -> float:
    """`cftui kill --all` as a process: seconds until it exits."""
    runtimes = Runtimes(home)
    await start_all(home, bots, runtimes)
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'proxies'}"}
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "cftui", "kill", "--all", "--home", str(home.root)],
        check=True, env=env, capture_output=True,
    )  # fmt: skip
    returned = time.monotonic() - started
    runtime = runtimes.get("docker")
    assert isinstance(runtime, DockerRuntime)
    _check_dead(runtime, bots)
    killswitch.unlock(home, [b.name for b in bots])
    await runtimes.aclose()
    return returned


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bots", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    remote, direct, cli = [], [], []
    with bench_fleet(args.bots, "bench-rk") as (home, bots):
        for bot in bots:
            warm_images(home, bot)
        for _ in range(args.rounds):
            remote.append(asyncio.run(_remote_round(home, bots)))
            direct.append(asyncio.run(_direct_round(home, bots)))
            cli.append(asyncio.run(_cli_round(home, bots)))
    med = statistics.median
    r_gw, r_ans, r_ev = (med(x[i] for x in remote) for i in range(3))
    d_gw, d_ret = (med(x[i] for x in direct) for i in range(2))
    c_ret = med(cli)
    load = os.getloadavg()[0]
    print(f"{args.bots} bots, {args.rounds} round(s), load average {load:.1f}")
    print(f"{'how':<44} {'gateways dead + cut':>20} {'returns':>10} {'ratio':>7}")
    print(
        f"{'killswitch.kill in-process (baseline)':<44} {d_gw * 1e3:>17.0f} ms "
        f"{d_ret * 1e3:>7.0f} ms {1.0:>6.2f}x"
    )
    print(
        f"{'POST /kill to cftui serve':<44} {r_gw * 1e3:>17.0f} ms "
        f"{r_ans * 1e3:>7.0f} ms {r_gw / d_gw:>6.2f}x"
    )
    print(
        f"{'cftui kill --all (a process)':<44} {'-':>20} {c_ret * 1e3:>7.0f} ms "
        f"{c_ret / d_ret:>6.2f}x"
    )
    print(f"signed kill event at a loopback receiver, after the answer: {r_ev * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
