"""The fleet screen against the real Docker engine (issue #23): the shell
key (`s`) and start/stop/restart of the bots marked with space. The stacks
are stand-ins (tests/tui/stand_ins.py); the runtime, its status, its stop
and its shell command are the real ones."""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from cftui import locks
from cftui.audit.events import read_events
from cftui.botinit import init_bot
from cftui.fleet import FleetHome
from cftui.runtime import Runtimes
from cftui.runtime.docker.spec import container_name
from cftui.tui.app import ClawFactoryApp, make_app
from cftui.tui.bot_screen import BotScreen
from cftui.tui.confirm import ConfirmModal
from cftui.tui.fleet_screen import FleetScreen
from cftui.tui.fleet_table import MARK, FleetTable
from tests.tmux import Tmux
from tests.tui.stand_ins import remove_stand_ins, stand_in_stack
from tests.tui.tui_helpers import notified, on_bot_screen, wait_until

SIZE = (120, 36)
WAIT = 60.0  # the real engine, on a machine other test suites share


@dataclass
class Fleet:
    home: FleetHome
    up: list[str]  # bots with a running stand-in stack
    down: str  # a bot with no container
    shells: list[list[str]] = field(default_factory=list)  # what the shell runner ran
    outputs: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def stacks(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """One fleet for the module (containers are slow to make on a busy
    engine): two bots with running stand-in stacks, one with none. Only the
    last test stops them."""
    tag = secrets.token_hex(3)
    home = FleetHome(tmp_path_factory.mktemp("fleet-docker") / "fleet")
    up = [f"tfd{tag}-a", f"tfd{tag}-b"]
    down = f"tfd{tag}-c"
    for bot in (*up, down):
        init_bot(home, bot)
    try:
        for bot in up:
            stand_in_stack(docker_client, bot, tag)
        yield Fleet(home, up, down)
    finally:
        remove_stand_ins(docker_client, tag)


@pytest.fixture
def fleet(stacks: Fleet) -> Fleet:
    stacks.shells.clear()
    stacks.outputs.clear()
    locks.remove_locks(stacks.home, [*stacks.up, stacks.down])
    return stacks


def shell_in_a_pty(fleet: Fleet) -> Any:
    """The shell runner's seam: the real argv, run under `script` (a pty,
    since `docker exec -it` wants one) with what an operator would type."""

    def run(_app: Any, argv: list[str]) -> int:
        fleet.shells.append(argv)
        proc = subprocess.run(
            ["script", "-qec", shlex.join(argv), "/dev/null"],
            input="echo in-$((6*7))\nexit 3\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
        fleet.outputs.append(proc.stdout)
        return proc.returncode

    return run


def app_on(fleet: Fleet, **options: Any) -> ClawFactoryApp:
    options.setdefault("shell_runner", shell_in_a_pty(fleet))
    return make_app(fleet.home, status_interval=3600, live=False, **options)


async def loaded(pilot: Any, fleet: Fleet) -> FleetTable:
    app = pilot.app
    await wait_until(pilot, lambda: isinstance(app.screen, FleetScreen), WAIT)
    table = app.screen.query_one(FleetTable)
    await wait_until(pilot, lambda: len(app.statuses) == 3 and table.row_count == 3, WAIT)
    return table


def acted(fleet: Fleet, bot: str) -> list[str]:
    """The lifecycle events of `bot` (its `init` aside)."""
    return [e["action"] for e in read_events(fleet.home, bot) if e["action"] != "init"]


def state(app: ClawFactoryApp, bot: str) -> str:
    return str(app.screen.query_one(FleetTable).get_cell(bot, "state"))


# --- the shell key ----------------------------------------------------------------


async def test_s_opens_the_runtimes_shell_in_the_gateway_and_comes_back(fleet: Fleet) -> None:
    bot = fleet.up[0]
    app = app_on(fleet)
    async with app.run_test(size=SIZE) as pilot:
        table = await loaded(pilot, fleet)
        table.select_bot(bot)
        await pilot.press("s")
        await wait_until(pilot, lambda: notified(app, "left the shell"), WAIT)
        expected = Runtimes(fleet.home).for_bot(fleet.home.bot(bot))
        argv = expected.shell_argv(fleet.home.bot(bot), "gateway", tty=True)
        assert fleet.shells == [argv]
        assert argv[1:] == ["exec", "-it", container_name(bot, "gateway"), "sh"]
        assert "in-42" in fleet.outputs[0]  # it ran in the real container
        assert notified(app, f"left the shell in {bot}'s gateway (exit status 3)")
        assert isinstance(app.screen, FleetScreen)
        await app.runtimes.aclose()


async def test_s_on_the_bot_screen_opens_the_same_shell(fleet: Fleet) -> None:
    bot = fleet.up[1]
    app = app_on(fleet, open_bot=bot, open_tab="overview")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: on_bot_screen(app) and app.statuses, WAIT)
        await pilot.press("s")
        await wait_until(pilot, lambda: fleet.shells, WAIT)
        assert fleet.shells[0][-2:] == [container_name(bot, "gateway"), "sh"]
        await wait_until(pilot, lambda: notified(app, "left the shell"), WAIT)
        assert isinstance(app.screen, BotScreen)
        await app.runtimes.aclose()


async def test_s_on_a_bot_that_is_not_running_is_one_line(fleet: Fleet) -> None:
    app = app_on(fleet)
    async with app.run_test(size=SIZE) as pilot:
        table = await loaded(pilot, fleet)
        table.select_bot(fleet.down)
        await pilot.press("s")
        await wait_until(pilot, lambda: notified(app, "gateway is not running"), WAIT)
        message = next(n.message for n in app._notifications if "not running" in n.message)
        assert "\n" not in message and "start it with S" in message
        assert fleet.shells == []
        await app.runtimes.aclose()


async def test_s_is_refused_in_read_only_mode(fleet: Fleet) -> None:
    app = app_on(fleet, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        table = await loaded(pilot, fleet)
        table.select_bot(fleet.up[0])
        await pilot.press("s")
        await wait_until(pilot, lambda: notified(app, "read-only mode: shell refused"), WAIT)
        assert fleet.shells == []
        await app.runtimes.aclose()


# --- marked bots --------------------------------------------------------------------


async def test_cancelling_the_question_keeps_the_marks_and_the_stacks(
    fleet: Fleet, docker_client: Any
) -> None:
    first, second = fleet.up
    app = app_on(fleet)
    async with app.run_test(size=SIZE) as pilot:
        table = await loaded(pilot, fleet)
        table.select_bot(first)
        await pilot.press("space", "space", "r")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), WAIT)
        assert "Restart 2 bots" in str(app.screen.query_one("#question").render())
        await pilot.press("enter")  # Cancel has the focus
        await wait_until(pilot, lambda: notified(app, "cancelled"), WAIT)
        assert table.marked_bots() == [first, second]
        assert not [b for b in (first, second) if acted(fleet, b)]
        gateway = docker_client.containers.get(container_name(first, "gateway"))
        assert gateway.status == "running"
        await app.runtimes.aclose()


async def test_start_of_marked_bots_refuses_a_locked_one_and_starts_none(fleet: Fleet) -> None:
    first, second = fleet.up
    locks.lock_bots(fleet.home, [second])
    app = app_on(fleet)
    async with app.run_test(size=SIZE) as pilot:
        table = await loaded(pilot, fleet)
        table.select_bot(first)
        await pilot.press("space", "space", "S")
        await wait_until(pilot, lambda: notified(app, "locked by the kill switch"), WAIT)
        assert not app.operations
        assert table.marked_bots() == [first, second]
        assert not acted(fleet, first)
        await app.runtimes.aclose()


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_the_real_binary_drops_into_the_container_and_comes_back(fleet: Fleet) -> None:
    """In a real terminal: `s` hands it to `docker exec -it ... sh` in the
    bot's gateway, and the app is back, redrawn, when the shell exits."""
    bot = fleet.up[0]
    tmux = Tmux("app", socket=f"cftui-shell-{secrets.token_hex(4)}")
    env = [f"CLAWFACTORY_HOME={fleet.home.root}", f"PYTHONPATH={os.environ.get('PYTHONPATH', '')}"]
    tmux.start(f"{sys.executable} -m cftui; echo EXITED=$?; sleep 30", 120, 36, env)
    try:
        tmux.wait_for(fleet.down, WAIT)
        tmux.wait_for("● running", 2 * WAIT)  # the statuses are in
        for _ in range(fleet.up.index(bot)):  # the cursor to the bot's row
            tmux.keys("j")
        tmux.keys("s")
        deadline = time.monotonic() + WAIT  # the app steps aside: its rows leave the screen
        while fleet.down in tmux.screen():
            assert time.monotonic() < deadline, "the app never gave the terminal to the shell"
            time.sleep(0.1)
        tmux.keys("echo in-$((6*7)) $(hostname)", "Enter")
        assert "in-42" in tmux.wait_for("in-42", WAIT)
        tmux.keys("exit", "Enter")
        screen = tmux.wait_for("left the shell", WAIT)  # the toast (its words may wrap)
        assert fleet.down in screen and "in-42" not in screen  # the app redrawn
        tmux.keys("q")
        assert "EXITED=0" in tmux.wait_for("EXITED=", WAIT)
    finally:
        tmux.close()


# Last: it stops the module's stacks.
async def test_space_marks_and_x_stops_every_marked_bot_after_one_question(
    fleet: Fleet, docker_client: Any
) -> None:
    first, second = fleet.up
    app = app_on(fleet)
    async with app.run_test(size=SIZE) as pilot:
        table = await loaded(pilot, fleet)
        await wait_until(pilot, lambda: "running" in state(app, first), WAIT)
        table.select_bot(first)
        await pilot.press("space")  # marks, then moves down to the second
        assert table.selected_bot == second
        await pilot.press("space")
        assert table.marked_bots() == [first, second]
        assert str(table.get_cell(first, "bot")) == MARK + first
        marks = str(app.screen.query_one("#fleet-marks").render())
        assert f"2 marked: {first}, {second}" in marks
        table.select_bot(fleet.down)  # the cursor's bot is not what acts
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), WAIT)
        question = str(app.screen.query_one("#question").render())
        assert f"Stop 2 bots: {first}, {second}?" in question
        assert app.focused is not None and app.focused.id == "cancel"
        await pilot.press("tab", "enter")
        await wait_until(pilot, lambda: not table.marked, WAIT)
        await wait_until(
            pilot, lambda: acted(fleet, second) == ["stop"] and not app.operations, 120
        )
        for bot in (first, second):
            gateway = docker_client.containers.get(container_name(bot, "gateway"))
            assert gateway.status != "running"
            assert acted(fleet, bot) == ["stop"]
        assert not acted(fleet, fleet.down)
        assert not app.screen.query_one("#fleet-marks").display
        await app.runtimes.aclose()
