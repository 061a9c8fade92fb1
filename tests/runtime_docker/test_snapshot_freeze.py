"""A snapshot of a running bot reads `state/` with the gateway frozen, so
the agent cannot swap a directory for a link to a host path between the
walk that lists a file and tar opening it; the kill switch still wins over
a frozen gateway."""

from __future__ import annotations

import shutil
import time
from importlib import resources
from pathlib import Path

import pytest

from cftui import killswitch, lifecycle, snapshots
from cftui.progress import ProgressEvent
from cftui.runtime import Runtimes

from .helpers import World

pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]


def _demo_code(dest: Path) -> Path:
    with resources.as_file(resources.files("cftui") / "templates" / "demo-agent") as src:
        shutil.copytree(src, dest)
    return dest


def _state(world: World, bot: str) -> dict:
    return world.client.api.inspect_container(f"cf-{bot}-gateway")["State"]


async def test_the_gateway_is_frozen_while_its_state_is_archived(
    world: World, tmp_path: Path
) -> None:
    bot = world.add_bot(f"fz{world.suffix}", code=_demo_code(tmp_path / "code"))
    runtimes = Runtimes(world.home)
    runtime = runtimes.get("docker")
    seen: list[bool] = []

    def progress(_event: ProgressEvent) -> None:
        if not seen:
            seen.append(bool(_state(world, bot.name)["Paused"]))

    try:
        await lifecycle.start(world.home, bot, runtimes)
        (world.home.state_dir(bot.name) / "memo.txt").write_text("kept")
        info = await snapshots.snapshot(
            world.home, bot, "frozen", runtime=runtime, progress=progress
        )
        assert seen == [True]
        after = _state(world, bot.name)
        assert after["Running"] and not after["Paused"]
        assert info.name.startswith("frozen--")

        # Frozen again, and killed while frozen: the kill is not held up.
        async with runtime.held_still(bot):
            assert _state(world, bot.name)["Paused"]
            started = time.monotonic()
            result = await killswitch.kill(world.home, [bot], runtimes)
            assert time.monotonic() - started < 5
        report = result.reports[0]
        assert report.ok and report.gateway_killed, report.summary()
        assert not _state(world, bot.name)["Running"]
    finally:
        killswitch.unlock(world.home, [bot.name])
        await runtimes.aclose()
