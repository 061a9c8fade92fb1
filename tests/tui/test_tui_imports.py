"""What the app loads to put the fleet on screen (issue #23: rows within
0.5 s of launch). Checked on the modules a fresh interpreter holds once the
rows and the engine's statuses are shown, never on times
(bench/tui_startup.py has the figures)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from cftui.botinit import init_bot
from cftui.fleet import FleetHome
from cftui.runtime import Runtimes
from tests.tui.stand_ins import remove_stand_ins, stand_in_stack

PROBE = """
import asyncio, json, sys
from pathlib import Path
from cftui.fleet import FleetHome
from cftui.tui.app import make_app
from cftui.tui.fleet_table import FleetTable
from cftui.tui.messages import FleetStatusUpdated

async def main():
    app = make_app(FleetHome(Path(sys.argv[1])), status_interval=3600)
    full = []  # the full status (the first look's come before it)

    def hook(message):
        if isinstance(message, FleetStatusUpdated):
            full.append(message)

    async with app.run_test(size=(120, 36), message_hook=hook) as pilot:
        while not (app.screen.query(FleetTable) and app.screen.query_one(FleetTable).row_count):
            await pilot.pause(0.02)
        while not full:
            await pilot.pause(0.02)
        await pilot.pause(0.2)
        states = {name: s.state for name, s in app.statuses.items()}
        modules = sorted(sys.modules)
    print(json.dumps({"states": states, "modules": modules}), file=sys.stderr)

asyncio.run(main())
"""


# The app's state in the rows' first paint: at the first message handled
# once fleet.toml's rows are known (they and the first look arrive in one
# call, `_files_read`; what loads the domain starts only after that paint),
# and at the first full status.
FIRST_PAINT = """
import asyncio, json, sys
from pathlib import Path
from cftui.fleet import FleetHome
from cftui.tui.app import make_app
from cftui.tui.messages import FleetStatusUpdated

async def main():
    app = make_app(FleetHome(Path(sys.argv[1])), status_interval=3600, live=False)
    seen = {}

    def states(statuses):
        return {n: (s.state if (s := statuses.get(n)) else None) for n in app.configs}

    def hook(message):
        if app.configs and "first" not in seen:
            seen["first"] = {"states": states(app.statuses), "modules": sorted(sys.modules)}
        if isinstance(message, FleetStatusUpdated) and "full" not in seen:
            seen["full"] = states(message.statuses)

    async with app.run_test(size=(120, 36), message_hook=hook) as pilot:
        while "full" not in seen:
            await pilot.pause(0.02)
    print(json.dumps(seen), file=sys.stderr)

asyncio.run(main())
"""


def _run_probe(script: str, home: FleetHome, engine: str) -> dict:
    """`script` run on `home` in a fresh interpreter, against the real
    engine or a `missing` one; what it printed last, as JSON."""
    env = {**os.environ}
    if engine == "missing":
        env["DOCKER_HOST"] = "unix:///nonexistent/docker.sock"
    proc = subprocess.run(
        [sys.executable, "-c", script, str(home.root)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stderr.strip().splitlines()[-1])


def _hits(modules: list[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes))


@pytest.mark.parametrize("engine", ["real", "missing"])
def test_the_fleet_on_screen_loads_no_bot_screen_no_ssh(engine: str, tmp_path: Path) -> None:
    """Neither a bot's screen (its tabs, the traffic reader: the footer's
    unlock check imported it for the first paint) nor asyncssh for this
    machine's Docker bots (the runtime's remote placement imported it)."""
    home = FleetHome(tmp_path / "fleet")
    init_bot(home, "bot1")
    init_bot(home, "bot2")
    doc = _run_probe(PROBE, home, engine)
    assert set(doc["states"]) == {"bot1", "bot2"}  # the engine was asked (or said why not)
    assert "cftui.runtime.docker.runtime" in doc["modules"]
    assert _hits(doc["modules"], ("cftui.tui.bot_screen", "asyncssh", "cftui.hosts.ssh")) == []


class _Where(Runtimes):
    """The real runtimes, noting the thread each kind's runtime is made in."""

    def __init__(self, home: FleetHome) -> None:
        super().__init__(home)
        self.made: dict[str, str] = {}

    def get(self, kind: str):
        if kind not in self._by_kind:
            self.made[kind] = threading.current_thread().name
        return super().get(kind)


async def test_a_bot_of_another_runtime_added_later_has_its_runtime_made_off_the_loop(
    tmp_path: Path,
) -> None:
    """A Lima bot put in fleet.toml while the app runs: its runtime (and
    asyncssh under it) is made in a thread, as the first ones are, never on
    the event loop at the next poll."""
    from cftui.tui.app import make_app
    from tests.tui.tui_helpers import wait_until

    home = FleetHome(tmp_path / "fleet")
    init_bot(home, "bot1")
    runtimes = _Where(home)
    app = make_app(home, runtimes, status_interval=3600, live=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_until(pilot, lambda: "bot1" in app.statuses, timeout=30)
        init_bot(home, "vm1", runtime="lima")
        app.read_fleet_files()
        await wait_until(pilot, lambda: "vm1" in app.configs, timeout=30)
        app.refresh_status()
        await wait_until(pilot, lambda: "vm1" in app.statuses, timeout=30)
    loop_thread = threading.main_thread().name
    assert set(runtimes.made) == {"docker", "lima"}
    assert loop_thread not in runtimes.made.values(), runtimes.made


# What the full status needs and the first look does without (~300 ms of
# imports on a quiet machine: issue #23, every row's state within 0.5 s).
NOT_FOR_THE_FIRST_LOOK = (
    "docker",
    "requests",
    "cftui.runtime.docker.runtime",
    "cftui.runtime.docker.engine",
    "cftui.lifecycle",
)


@pytest.mark.parametrize("engine", ["real", "missing"])
def test_the_rows_first_paint_has_the_engines_states_without_the_sdk(
    engine: str, tmp_path: Path, docker_client: Any
) -> None:
    """The rows are drawn with each bot's state as this machine's engine
    socket says it (`fleet_view.read_now`), before the docker SDK, the
    Docker runtime or the lifecycle are imported; the full status then says
    the same. An engine that does not answer leaves the rows' states to the
    full status, which says why (not a first look's error of its own)."""
    tag = secrets.token_hex(3)
    up, down = f"tfl{tag}-a", f"tfl{tag}-b"
    home = FleetHome(tmp_path / "fleet")
    init_bot(home, up)
    init_bot(home, down)
    try:
        if engine == "real":
            stand_in_stack(docker_client, up, tag)
        seen = _run_probe(FIRST_PAINT, home, engine)
    finally:
        remove_stand_ins(docker_client, tag)
    first = seen["first"]
    assert _hits(first["modules"], NOT_FOR_THE_FIRST_LOOK) == []
    if engine == "real":
        assert first["states"] == {up: "running", down: "absent"}
        assert seen["full"] == first["states"]
    else:
        assert first["states"] == {up: None, down: None}
        assert seen["full"] == {up: "unknown", down: "unknown"}
