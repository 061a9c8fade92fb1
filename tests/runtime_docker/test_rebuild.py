"""`rebuild` on the real engine: the gateway image is built again from
`code/` without the build cache, the stack comes back healthy on the new
image, the bot's state is kept, and a locked bot is refused before anything
is stopped."""

from __future__ import annotations

import json

import pytest

from cftui import killswitch, lifecycle, locks
from cftui.audit.events import read_events
from cftui.errors import BotLocked
from cftui.runtime import Runtimes

from .helpers import World, http_get, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]


def _gateway(world: World, bot: str) -> dict:
    return world.client.api.inspect_container(f"cf-{bot}-gateway")


def _healthy(port: int) -> bool:
    try:
        return json.loads(http_get(f"http://127.0.0.1:{port}/health"))["ok"] is True
    except (OSError, ValueError, KeyError):
        return False


async def test_rebuild_makes_a_new_gateway_image_and_keeps_state(world: World) -> None:
    bot = world.add_bot(f"rb{world.suffix}")
    runtimes = Runtimes(world.home)
    try:
        await lifecycle.start(world.home, bot, runtimes)
        wait_for(lambda: _healthy(bot.gateway_port), 60, "the gateway before the rebuild")
        image_before = _gateway(world, bot.name)["Image"]
        kept = world.home.state_dir(bot.name) / "kept-across-rebuild.txt"
        kept.write_text("memory\n")
        agent = world.home.code_dir(bot.name) / "agent.py"
        agent.write_text(agent.read_text() + "\n# changed before the rebuild\n")

        await lifecycle.rebuild(world.home, bot, runtimes)

        gateway = _gateway(world, bot.name)
        assert gateway["Image"] != image_before
        assert gateway["State"]["Running"] is True
        assert list(gateway["NetworkSettings"]["Networks"]) == [f"cf-{bot.name}-int"]
        wait_for(lambda: _healthy(bot.gateway_port), 60, "the gateway after the rebuild")
        assert kept.read_text() == "memory\n"
        assert any(e.get("action") == "rebuild" for e in read_events(world.home, bot.name))
    finally:
        await runtimes.aclose()


async def test_rebuild_of_a_locked_bot_is_refused_and_stops_nothing(world: World) -> None:
    bot = world.home.bot(world.bots[0])
    runtimes = Runtimes(world.home)
    locks.lock_bots(world.home, [bot.name])
    try:
        with pytest.raises(BotLocked):
            await lifecycle.rebuild(world.home, bot, runtimes)
        assert _gateway(world, bot.name)["State"]["Running"] is True
    finally:
        killswitch.unlock(world.home, [bot.name])
        await runtimes.aclose()
