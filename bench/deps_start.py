"""Start time with an unchanged dependency list against a start with none (#24).

A bot whose approved dependency list is unchanged (its install's marker
matches, so the installer does not run) against a start of the same bot
declaring none (no package.json committed), real engine, in the same run.

    .venv/bin/python bench/deps_start.py [--rounds 5]

One demo-agent bot; its dependency list is one package from a registry
stand-in on its outside network (`tests/fakes/npm_registry.py`), installed
once for real through the egress proxy (that first install is printed too,
installer image already built). Then rounds of stop + timed start,
alternating a commit that removes package.json and one that brings the
same list back, so both ways see the same machine load. Also timed alone:
the start's dependency step when unchanged (`_install_deps`: the approved
files read from git, parsed, the marker compared).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import subprocess
import sys
import time
from pathlib import Path

from docker_bench_fleet import warm_images

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cftui import lifecycle
from cftui.fleet import BotConfig, FleetHome
from cftui.runtime import Runtimes
from cftui.runtime.docker.runtime import DockerRuntime
from cftui.runtime.docker.spec import LABEL_BOT
from cftui.runtime.images.installer import ensure_installer_image
from tests.fakes.npm_registry import PACKAGE, VERSION, manifest, run_registry
from tests.runtime_docker.helpers import destroy_world, make_world


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if got := predicate():
            return got
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def _git(code: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(code), "-c", "user.name=b", "-c", "user.email=b@example.invalid", *args],
        check=True,
        capture_output=True,
    )


def _declare(home: FleetHome, bot: str, files: dict[str, str] | None) -> None:
    """Commit the save state's files (None: remove them) on the approved branch."""
    code = home.code_dir(bot)
    save = code / "workspace" / f"{bot}_save"
    names = ("package.json", ".npmrc")
    if files is None:
        _git(code, "rm", "-q", "--cached", "--ignore-unmatch", *(f"{save}/{n}" for n in names))
        for n in names:
            (save / n).unlink(missing_ok=True)
        _git(code, "commit", "-q", "--allow-empty", "-m", "no dependencies")
        return
    save.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (save / name).write_text(text)
    _git(code, "add", "-f", *(str(save / n) for n in files))
    _git(code, "commit", "-q", "-m", "declared dependencies")


async def _restart(home: FleetHome, bot: BotConfig) -> tuple[float, list[str]]:
    runtimes = Runtimes(home)
    said: list[str] = []
    try:
        await lifecycle.stop(home, bot, runtimes)
        started = time.monotonic()
        await lifecycle.start(home, bot, runtimes, lambda e: said.append(e.message))
        return time.monotonic() - started, said
    finally:
        await runtimes.aclose()


def _dep_step(home: FleetHome, bot: BotConfig, n: int = 50) -> float:
    """Median seconds of the unchanged dependency step alone."""
    rt = DockerRuntime(home)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        assert rt._install_deps(bot) == "dependencies unchanged"
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    import tempfile

    import docker

    # The tests' Docker world (a network and fake provider of its own, so
    # nothing is shared with another run), one demo-agent bot in it.
    world = make_world(docker.from_env(timeout=60), Path(tempfile.mkdtemp(prefix="cf-bench-")))
    try:
        home = world.home
        bot = world.add_bot(f"bdp{world.suffix}")
        warm_images(home, bot)
        rt = DockerRuntime(home)
        ensure_installer_image(rt.client())
        client = rt.client()
        ext = f"cf-{bot.name}-ext"
        client.networks.create(ext, driver="bridge", labels={LABEL_BOT: bot.name})
        registry = None
        try:
            registry = run_registry(client, ext, f"cftest-{world.suffix}-registry", {}, _wait_for)
            bot = home.update_bot(bot.name, egress_allow=[*bot.egress_allow, registry.key])
            asyncio.run(_restart(home, bot))  # creates everything once
            declared = {
                "package.json": manifest(**{PACKAGE: VERSION}),
                ".npmrc": f"registry={registry.url}\n",
            }
            _declare(home, bot.name, declared)
            first, said = asyncio.run(_restart(home, bot))
            assert any("dependencies installed" in s for s in said), said
            none: list[float] = []
            same: list[float] = []
            for _ in range(args.rounds):
                _declare(home, bot.name, None)
                took, said = asyncio.run(_restart(home, bot))
                assert "no dependencies declared" in said, said
                none.append(took)
                _declare(home, bot.name, declared)
                took, said = asyncio.run(_restart(home, bot))
                assert "dependencies unchanged" in said, said
                same.append(took)
            step = _dep_step(home, bot)
        finally:
            if registry is not None:
                with contextlib.suppress(Exception):
                    registry.container.remove(force=True)
    finally:
        destroy_world(world)
        with contextlib.suppress(Exception):
            client.networks.get(ext).remove()
    base = statistics.median(none)
    rows = [
        ("start, no package.json (baseline)", base),
        ("start, unchanged dependency list", statistics.median(same)),
        ("start, first install (1 package)", first),
    ]
    print(f"{'start (median of ' + str(args.rounds) + ')':<36} {'seconds':>8}  {'vs none':>7}")
    for label, value in rows:
        print(f"{label:<36} {value:>8.2f}  {value / base:>6.2f}x")
    print(f"the unchanged dependency step alone: {step * 1000:.1f} ms (median of 50)")


if __name__ == "__main__":
    main()
