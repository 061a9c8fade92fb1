"""The fleet table with bots on other hosts (issue #21): a Host column,
rows grouped by host (this machine's first, then by host name), and a bot
whose host does not answer shown `unknown`, never stopped. The hosts here
are addresses nothing answers on (loopback port 1: refused at once); this
machine's bots are asked of the real engine."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cftui.botinit import init_bot
from cftui.fleet import FleetHome
from cftui.runtime.docker.spec import LABEL_BOT, LABEL_SERVICE, container_name
from cftui.tui.app import make_app
from cftui.tui.fleet_screen import FleetScreen
from cftui.tui.fleet_table import FleetTable
from tests.hosts.conftest import _make_host, as_operator, operator_ssh  # noqa: F401 - fixtures
from tests.hosts.testhost import TestHost
from tests.tui.tui_helpers import wait_until

WAIT = 60.0
TINY = "cf-tiny:sleep"


def _home(tmp_path: Path) -> FleetHome:
    home = FleetHome(tmp_path / "fleet")
    home.root.mkdir(parents=True)
    home.fleet_toml.write_text(
        '[hosts.far]\nurl = "ssh://cf@127.0.0.1:1"\n[hosts.bee]\nurl = "ssh://cf@127.0.0.1:1"\n'
    )
    init_bot(home, "zed", host="far")
    init_bot(home, "loc1")
    init_bot(home, "abe", host="bee")
    init_bot(home, "loc2")
    return home


def _order(table: FleetTable) -> list[str]:
    return [str(row.key.value) for row in table.ordered_rows]


async def test_hosts_column_groups_rows_and_an_unreachable_host_is_unknown(
    tmp_path: Path, docker_client: Any
) -> None:
    home = _home(tmp_path)
    app = make_app(home, status_interval=3600, live=False)
    async with app.run_test(size=(160, 36)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, FleetScreen), WAIT)
        table = app.screen.query_one(FleetTable)
        await wait_until(pilot, lambda: table.row_count == 4, WAIT)
        assert "host" in table.shown_columns
        # this machine's bots first (in fleet.toml's order), then host by host
        assert _order(table) == ["loc1", "loc2", "abe", "zed"]
        assert [str(table.get_cell(b, "host")) for b in _order(table)] == [
            "local",
            "local",
            "bee",
            "far",
        ]
        await wait_until(pilot, lambda: len(app.statuses) == 4, WAIT)
        for bot in ("abe", "zed"):
            state = str(table.get_cell(bot, "state"))
            assert "unknown" in state and "stop" not in state, state
        assert "absent" in str(table.get_cell("loc1", "state"))  # asked of this engine
        errors = str(app.screen.query_one("#fleet-errors").render())
        lines = errors.strip().splitlines()  # one line per host, saying why
        assert len(lines) == 2 and all("unreachable" in line for line in lines), lines
        # the sort keeps the groups: by name within each host
        while table.sort_column != "bot":
            table.cycle_sort()
        assert _order(table) == ["loc1", "loc2", "abe", "zed"]
        await app.runtimes.aclose()


async def test_a_fleet_on_this_machine_alone_has_no_host_column(
    tmp_path: Path, docker_client: Any
) -> None:
    home = FleetHome(tmp_path / "fleet")
    init_bot(home, "loc1")
    app = make_app(home, status_interval=3600, live=False)
    async with app.run_test(size=(160, 36)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, FleetScreen), WAIT)
        table = app.screen.query_one(FleetTable)
        await wait_until(pilot, lambda: table.row_count == 1 and app.statuses, WAIT)
        assert "host" not in table.shown_columns
        assert "Host" not in str(table.tooltip or "")
        await app.runtimes.aclose()


# --- a real host that drops out and comes back -------------------------------------


@pytest.fixture(scope="module")
def tui_host(operator_ssh: Path) -> Iterator[TestHost]:  # noqa: F811 - the hosts' fixture
    """A namespace host of this module's own (netns cfh21t), with a stand-in
    stack of bot "far" (a gateway and an LLM proxy, named and labelled as
    the runtime names its own) on a tiny image made there from this
    machine's `sleep`: no image needs sending over."""
    for host in _make_host(operator_ssh, "cfh21t", 22):
        env = dict(os.environ, DOCKER_HOST=host.docker_host)
        files = ["bin/sleep", "lib/x86_64-linux-gnu/libc.so.6", "lib64/ld-linux-x86-64.so.2"]
        subprocess.run(
            f"tar -chf - -C / {' '.join(files)} | docker import - {TINY}",
            shell=True, env=env, check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        for service in ("gateway", "llm-proxy"):
            subprocess.run(
                ["docker", "run", "-d", "--name", container_name("far", service),
                 "--label", f"{LABEL_BOT}=far", "--label", f"{LABEL_SERVICE}={service}",
                 TINY, "/bin/sleep", "3600"],
                env=env, check=True, capture_output=True, timeout=120,
            )  # fmt: skip
        yield host


async def test_a_host_that_drops_out_shows_its_bots_unknown_and_comes_back_by_itself(
    tmp_path: Path,
    tui_host: TestHost,
    as_operator: Path,  # noqa: F811 - the hosts' fixture
    docker_client: Any,
) -> None:
    home = FleetHome(tmp_path / "fleet")
    home.root.mkdir(parents=True)
    home.fleet_toml.write_text(tui_host.fleet_entry("tuihost", f"{tui_host.root}/cf-tui"))
    init_bot(home, "far", host="tuihost")
    init_bot(home, "loc")
    app = make_app(home, status_interval=1.0)
    async with app.run_test(size=(160, 36)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, FleetScreen), WAIT)
        table = app.screen.query_one(FleetTable)

        def state() -> str:
            return str(table.get_cell("far", "state")) if table.row_count == 2 else ""

        def shown() -> str:
            errors = str(app.screen.query_one("#fleet-errors").render()).strip()
            links = {name: link.is_up for name, link in app.runtimes.links.items()}
            return f"state {state()!r}, errors {errors[:300]!r}, links up {links}"

        await wait_until(pilot, lambda: "partial" in state(), WAIT, shown)  # two of its four run
        real = state()
        tui_host.cut()
        try:
            await wait_until(pilot, lambda: "unknown" in state(), WAIT, shown)
            assert "stop" not in state()
            errors = str(app.screen.query_one("#fleet-errors").render())
            # One line says why, naming the host (not this machine's DOCKER_HOST hint).
            assert "tuihost" in errors and "DOCKER_HOST" not in errors, errors
            assert "absent" in str(table.get_cell("loc", "state"))  # this engine still asked
        finally:
            tui_host.restore()
        await wait_until(pilot, lambda: state() == real, WAIT, shown)
        await wait_until(
            pilot,
            lambda: not str(app.screen.query_one("#fleet-errors").render()).strip(),
            WAIT,
            shown,
        )
        links = list(app.runtimes.links.values())
        assert any(link.is_up for link in links)
        assert _forward_dirs()  # the engine's forwarded socket, in a directory of its own
    # The app's exit closed what it opened: the link, and the socket's directory.
    assert links and not any(link.is_up for link in links)
    assert _forward_dirs() == []


def _forward_dirs() -> list[Path]:
    return sorted(Path(tempfile.gettempdir()).glob("cf-host-tuihost-*"))
