"""End to end: `cftui demo` as an operator meets it, in a real terminal
(tmux) on the real Docker engine. The demo's names are fixed (`demo-ada`,
`demo-bob`, `cf-fake-llm`, `cf-demo`), so everything the demo makes is
removed before and after the test: a rerun starts from nothing."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cftui import botdisk, locks
from cftui.demo import DEMO_BOTS, DEMO_NETWORK, FAKE_LLM
from cftui.fleet import FleetHome
from cftui.runtime.docker.spec import (
    LABEL_BOT,
    container_name,
    ext_network,
    int_network,
    volume_specs,
)

CFTUI = Path(sys.executable).parent / "cftui"

pytestmark = [
    pytest.mark.docker,
    # Beside another xdist worker's Docker tests its first start passed 300 s
    # in every parallel run (cause not found); alone it takes about 90 s.
    pytest.mark.alone,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux"),
]


def _wait(what: str, check: Callable[[], Any], timeout: float) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


class Tmux:
    def __init__(self, name: str) -> None:
        self.name = name

    def run(self, *args: str) -> str:
        return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True).stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", self.name)

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", self.name, *keys)

    def wait_for(self, what: str, check: Callable[[str], Any], timeout: float = 20.0) -> Any:
        try:
            return _wait(what, lambda: check(self.screen()), timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; screen:\n{self.screen()}") from None

    def wait_text(self, text: str, timeout: float = 20.0) -> str:
        return self.wait_for(repr(text), lambda s: s if text in s else None, timeout)

    def kill(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


def _fleet_rows(screen: str) -> dict[str, dict[str, str]]:
    """The fleet table as {bot: {column: cell}}, cut at the header's columns
    (the table's cells start where their header starts)."""
    lines = screen.splitlines()
    header = next((line for line in lines if re.match(r"\s*Bot\s+Runtime\s+State", line)), None)
    if header is None:
        return {}
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    names = header.split()
    rows = {}
    for line in lines:
        first = line.split()[:1]
        if first and first[0] in DEMO_BOTS:
            cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
            rows[first[0]] = dict(zip(names, cells, strict=True))
    return rows


def _remove_demo(client: Any) -> None:
    """Everything `cftui demo` makes on the engine: the bots' containers,
    networks and volumes, the fake provider and the demo network."""
    import docker.errors

    for bot in DEMO_BOTS:
        for container in client.containers.list(all=True, filters={"label": f"{LABEL_BOT}={bot}"}):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
    with contextlib.suppress(docker.errors.NotFound):
        client.containers.get(FAKE_LLM).remove(force=True)
    for name in [DEMO_NETWORK, *(f(b) for b in DEMO_BOTS for f in (int_network, ext_network))]:
        with contextlib.suppress(docker.errors.NotFound):
            network = client.networks.get(name)
            network.reload()
            for container in network.containers:  # left by a run that died midway
                with contextlib.suppress(docker.errors.APIError):
                    network.disconnect(container, force=True)
            network.remove()
    for vol in (v for b in DEMO_BOTS for v in volume_specs(b)):
        with contextlib.suppress(docker.errors.NotFound):
            client.volumes.get(vol.name).remove(force=True)


@pytest.fixture
def demo_engine(docker_client: Any, tmp_path: Path) -> Iterator[Any]:
    _remove_demo(docker_client)
    try:
        yield docker_client
    finally:
        _remove_demo(docker_client)
        for bot in DEMO_BOTS:  # a started bot's tree is on a loop-mounted image
            with contextlib.suppress(Exception):
                botdisk.delete(FleetHome(tmp_path / "demo"), bot)


def _gateways_down(client: Any) -> bool:
    """Every demo gateway is not running and attached to no network."""
    for bot in DEMO_BOTS:
        gateway = client.containers.get(container_name(bot, "gateway"))
        if gateway.attrs["State"]["Running"] or gateway.attrs["NetworkSettings"]["Networks"]:
            return False
    return True


def test_the_demo_runs_its_bots_shows_their_calls_kills_and_unlocks(
    demo_engine: Any, tmp_path: Path
) -> None:
    home = FleetHome(tmp_path / "demo")
    tmux = Tmux(f"cftui-demo-e2e-{secrets.token_hex(4)}")
    command = f"{CFTUI} demo --home {home.root}; echo EXITED=$?; sleep 30"
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", tmux.name, "-x", "160", "-y", "45", command],
        check=True,
        env={**os.environ, "TERM": "xterm-256color"},
    )
    try:
        # The fleet screen, both demo bots running.
        tmux.wait_for(
            "both demo bots running",
            lambda s: (
                all("running" in r["State"] for r in _fleet_rows(s).values())
                and len(_fleet_rows(s)) == len(DEMO_BOTS)
            ),
            timeout=300,  # a first demo builds its bots' gateway images
        )
        # Their agents' LLM calls, through the real LLM proxy, reach the table.
        tmux.wait_for(
            "LLM calls counted for every demo bot",
            lambda s: (
                len(rows := _fleet_rows(s)) == len(DEMO_BOTS)
                and all(r["Calls"].isdigit() and int(r["Calls"]) > 0 for r in rows.values())
            ),
            timeout=30,
        )
        # The first bot's traffic tab holds a real call from the anthropic proxy.
        tmux.keys("t")
        tmux.wait_for(
            "an anthropic call row",
            lambda s: re.search(r"\d\d:\d\d:\d\d\.\d{3} anthropic\s+claude\S*\s+200\s", s),
        )
        tmux.keys("Escape")
        tmux.wait_text("Runtime  State")
        # The kill switch: banner at once, every gateway dead and cut off.
        tmux.keys("C-k")
        screen = tmux.wait_text("KILL SWITCH ENGAGED")
        assert "WHOLE FLEET LOCKED" in screen
        _wait(
            "every demo gateway stopped and disconnected", lambda: _gateways_down(demo_engine), 20
        )
        assert locks.locked_bots(home) == sorted(DEMO_BOTS)
        # Unlock asks first; confirming lifts every lock.
        tmux.keys("U")
        tmux.wait_text("Unlock demo-ada, demo-bob?")
        tmux.keys("Tab", "Enter")
        _wait("the locks lifted", lambda: not locks.locked_bots(home), 10)
        assert not list(home.root.glob("locks/*.lock"))
        tmux.wait_for("the banner gone", lambda s: "KILL SWITCH" not in s and "Runtime" in s)
        # ctrl+q quits cleanly.
        tmux.keys("C-q")
        screen = tmux.wait_text("EXITED=")
        assert "EXITED=0" in screen
        # The fleet is left running; the demo's own home says how to stop it.
        assert f"demo fleet running in {home.root}: demo-ada, demo-bob" in screen
        assert f"cftui --home {home.root} stop demo-ada" in screen.replace("\n", "")
    finally:
        tmux.kill()
