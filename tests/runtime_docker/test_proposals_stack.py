"""The approved tree on the real engine: the demo agent's gateway reads `/code`
read-only but for its writable paths, proposes under `/proposals`, and a
`cftui promote` puts the proposal under `/code` in the restarted gateway.

One stack is shared by the module; the tests run in file order.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from cftui.audit.events import read_events
from cftui.fleet import BotConfig

from .helpers import World, cftui, start_bot, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]

SKILL = "workspace/skills/probe/SKILL.md"


@pytest.fixture(scope="module")
def bot(world: World) -> BotConfig:
    # The demo agent proposes in its first cycle, then rarely: the test's own
    # writes are the ones it checks.
    config = world.add_bot(f"p{world.suffix}", DEMO_PROPOSE_EVERY="1000")
    asyncio.run(start_bot(world, config))
    return config


def _sh(world: World, bot: BotConfig, script: str) -> tuple[int, str]:
    """A shell command in the running gateway, as the gateway's user."""
    container = world.client.containers.get(f"cf-{bot.name}-gateway")
    code, out = container.exec_run(["sh", "-c", script])
    return code, out.decode(errors="replace")


def test_code_is_read_only_but_for_its_writable_paths(world: World, bot: BotConfig) -> None:
    # The approved tree stays root's (only the writable paths are handed to
    # the gateway), so a write is refused by its mode before the read-only
    # mount would refuse it; /code itself is the gateway group's, so there
    # the mount is what says no.
    denied = ("Read-only file system", "Permission denied")
    code, out = _sh(world, bot, "echo evil >> /code/workspace/SOUL.md")
    assert code != 0 and any(d in out for d in denied), out
    code, out = _sh(world, bot, "touch /code/workspace/skills/x 2>&1")
    assert code != 0 and any(d in out for d in denied), out
    code, out = _sh(world, bot, "touch /code/new 2>&1")
    assert code != 0 and "Read-only file system" in out, out
    code, out = _sh(world, bot, "grep ' /code ' /proc/mounts")
    assert code == 0 and " ro," in out, out
    assert (world.home.code_dir(bot.name) / "workspace/SOUL.md").read_text().count("evil") == 0
    code, out = _sh(
        world,
        bot,
        f"echo kept > /code/workspace/memory/note.md && ls -d /code/workspace/{bot.name}_save",
    )
    assert code == 0, out
    assert (world.home.code_dir(bot.name) / "workspace/memory/note.md").read_text() == "kept\n"
    # The note the wiring leaves says how to propose.
    code, out = _sh(world, bot, "cat /code/workspace/memory/cftui-proposals.md")
    assert code == 0 and "/proposals/workspace/skills/" in out, out


def test_the_demo_agent_shows_both_ways(world: World, bot: BotConfig) -> None:
    container = world.client.containers.get(f"cf-{bot.name}-gateway")

    def logs() -> str | None:
        text = container.logs().decode(errors="replace")
        return text if "directly failed, as it must" in text else None

    text = wait_for(logs, 60, "the demo agent's proposal cycle")
    assert "proposed skill demo-skill-0 at /proposals/workspace/skills/demo-skill-0" in text
    assert "APPROVED TREE WRITABLE" not in text
    found = json.loads(cftui(world, "proposals", bot.name, "--json").stdout)
    assert "workspace/skills/demo-skill-0/SKILL.md" in [c["path"] for c in found["changes"]]
    # Leave only the test's own proposal pending.
    res = cftui(world, "reject", bot.name)
    assert res.returncode == 0, res.stderr


def test_a_proposed_skill_is_promoted_into_the_restarted_gateway(
    world: World, bot: BotConfig
) -> None:
    code, out = _sh(
        world,
        bot,
        f"mkdir -p /proposals/workspace/skills/probe && echo '# probe' > /proposals/{SKILL}",
    )
    assert code == 0, out
    res = cftui(world, "proposals", bot.name, "--json")
    assert res.returncode == 0, res.stderr
    changes = json.loads(res.stdout)["changes"]
    assert [(c["path"], c["status"]) for c in changes] == [(SKILL, "added")]
    before = world.client.api.inspect_container(f"cf-{bot.name}-gateway")["State"]["StartedAt"]

    res = cftui(world, "promote", bot.name, "-m", "probe skill")
    assert res.returncode == 0, res.stderr
    # The workspace is no build input of the demo agent: a restart, no rebuild.
    assert "restarted" in res.stdout, res.stdout
    after = world.client.api.inspect_container(f"cf-{bot.name}-gateway")["State"]["StartedAt"]
    assert after != before
    code, out = _sh(world, bot, f"cat /code/{SKILL}")
    assert code == 0 and out == "# probe\n", out
    promoted = [e for e in read_events(world.home, bot.name) if e["action"] == "promote"]
    assert promoted and SKILL in json.dumps(promoted[-1])
    res = cftui(world, "proposals", bot.name, "--json")
    # Nothing left but what the restarted demo agent may have proposed again.
    left = [c["path"] for c in json.loads(res.stdout)["changes"]]
    assert set(left) <= {"workspace/skills/demo-skill-0/SKILL.md"}, left
