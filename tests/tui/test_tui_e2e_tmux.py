"""End to end: the real `cftui` binary in a real terminal (tmux), against a
prepared fleet home with a traffic.jsonl, through the real runtime registry
(Docker). The bots carry a random suffix so that the kill switch can never
touch another engineer's containers. Reads the screen with `capture-pane`."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cftui import locks
from cftui.botinit import init_bot
from cftui.fleet import FleetHome
from tests.tmux import Tmux
from tests.tui.tui_helpers import append_records, make_record

CFTUI = Path(sys.executable).parent / "cftui"

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")


def _events(home: FleetHome) -> list[dict]:
    try:
        return [json.loads(x) for x in home.events_log.read_text().splitlines()]
    except FileNotFoundError:
        return []


@pytest.fixture
def e2e_home(tmp_path: Path) -> tuple[FleetHome, str, str]:
    home = FleetHome(tmp_path / "fleet")
    suffix = secrets.token_hex(3)
    first, second = f"e2e-a{suffix}", f"e2e-b{suffix}"
    for bot in (first, second):
        init_bot(home, bot)
    append_records(
        home.traffic_log(first),
        [make_record(n, bot=first, id=f"e2e-call-{n:04d}") for n in range(300)],
    )
    return home, first, second


def test_the_real_binary_shows_traffic_follows_kills_and_unlocks(e2e_home) -> None:
    home, first, second = e2e_home
    tmux = Tmux(f"cftui-e2e-{secrets.token_hex(4)}")
    env = {**os.environ, "CLAWFACTORY_HOME": str(home.root), "TERM": "xterm-256color"}
    command = f"{CFTUI} --open {first}:traffic; echo EXITED=$?; sleep 30"
    # -e: a tmux server that is already up gives new sessions ITS environment,
    # not this client's, so the fleet home is set on the session itself.
    options = ["-x", "120", "-y", "36", "-e", f"CLAWFACTORY_HOME={home.root}"]
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", tmux.name, *options, command],
        check=True,
        env=env,
    )
    try:
        # The newest call is on screen, with its detail.
        screen = tmux.wait_for("e2e-call-0299")
        assert "all calls: 300 calls" in tmux.wait_for("all calls: 300 calls")
        # An appended call shows up while the app follows the file.
        append_records(home.traffic_log(first), [make_record(300, bot=first, id="e2e-call-0300")])
        tmux.wait_for("e2e-call-0300")
        # The filter narrows the table (typed text shown before Enter).
        tmux.keys("/")
        tmux.wait_cursor_on("filter: provider:")
        tmux.keys("model:claude status:5xx")
        tmux.wait_for("model:claude status:5xx")
        tmux.keys("Enter")
        tmux.wait_for("filter «model:claude status:5xx»: 10 calls")
        # ctrl+k kills the whole fleet, even with the filter field focused.
        tmux.keys("/")
        tmux.keys("C-k")
        screen = tmux.wait_for("KILL SWITCH ENGAGED")
        assert "WHOLE FLEET LOCKED" in screen
        deadline = time.monotonic() + 10
        while locks.locked_bots(home) != sorted([first, second]):
            assert time.monotonic() < deadline, locks.locked_bots(home)
            time.sleep(0.1)
        deadline = time.monotonic() + 15  # the event is written once every bot answered
        while not any(e["action"] == "kill" for e in _events(home)):
            assert time.monotonic() < deadline, _events(home)
            time.sleep(0.1)
        # Unlock asks first; Enter on the focused Cancel keeps the lock.
        tmux.keys("Escape")
        tmux.wait_for("Calls")  # the fleet screen
        tmux.keys("U")
        tmux.wait_for("Unlock e2e-")
        tmux.keys("Enter")
        tmux.wait_for("Unlock cancelled")
        assert locks.locked_bots(home)
        tmux.keys("U")
        tmux.wait_for("Unlock e2e-")
        tmux.keys("Tab", "Enter")
        deadline = time.monotonic() + 10
        while locks.locked_bots(home):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        # q quits cleanly.
        tmux.keys("q")
        assert "EXITED=0" in tmux.wait_for("EXITED=")
    finally:
        if tmux.alive():
            subprocess.run(["tmux", "kill-session", "-t", tmux.name], capture_output=True)
