"""The fleet's first frame (issue #23: the fleet painted within 0.5 s of
launch). The CLI reads fleet.toml, the locks and the engine's states while
Textual is imported (`fleet_files.start_reading`); the app's first frame
then has every row, and is not one Textual drops (a screen pushed from
`on_mount` was laid out inside the start-up batch, whose frame never
reached the terminal). Checked on the frames the screen hands to the
terminal, never on times (bench/tui_startup.py has the figures)."""

from __future__ import annotations

import re
from concurrent.futures import Future
from pathlib import Path

from textual import events
from textual._compositor import LayoutUpdate

from cftui.botinit import init_bot
from cftui.fleet import FleetHome
from cftui.tui.app import make_app
from cftui.tui.fleet_files import FleetFilesRead, read_fleet_files, start_reading
from cftui.tui.fleet_screen import FleetScreen
from cftui.tui.fleet_table import FleetTable
from tests.tui.tui_helpers import wait_until

SIZE = (120, 36)
BOTS = [f"fp-{n:02d}" for n in range(12)]
ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _home(tmp_path: Path) -> FleetHome:
    home = FleetHome(tmp_path / "fleet")
    for name in BOTS:
        init_bot(home, name)
    return home


def _frames(app) -> list[tuple[bool, str]]:
    """Every full frame (a layout) the app's screens hand to the terminal,
    as (dropped: laid out inside a batch, never written; its text)."""
    frames: list[tuple[bool, str]] = []
    display = app._display

    def noted(screen, renderable) -> None:
        if isinstance(renderable, LayoutUpdate):
            text = ESCAPES.sub("", renderable.render_segments(app.console))
            frames.append((bool(app._batch_count), text))
        display(screen, renderable)

    app._display = noted
    return frames


async def test_the_first_frame_has_every_row_when_the_early_read_is_done(tmp_path: Path) -> None:
    home = _home(tmp_path)
    early = start_reading(home)
    early.result(timeout=30)  # as it is by the time Textual is imported
    app = make_app(home, status_interval=3600, live=False, early_files=early)
    frames = _frames(app)
    at_mount: list[int] = []  # the rows the app knew as its first widget mounted

    def hook(message: object) -> None:
        if isinstance(message, events.Mount) and not at_mount:
            at_mount.append(len(app.configs))

    async with app.run_test(size=SIZE, message_hook=hook) as pilot:
        await wait_until(pilot, lambda: frames and isinstance(app.screen, FleetScreen))
        assert at_mount == [len(BOTS)]  # taken at load, not from a worker racing the layout
        dropped, first = frames[0]
        assert not dropped
        assert [name for name in BOTS if name not in first] == []
        assert "loading" not in first  # the engine's states came with the rows


async def test_an_early_read_not_done_at_load_is_waited_for_off_the_loop(tmp_path: Path) -> None:
    """An engine slow to answer the first look: the app opens without the
    rows and takes them from the read when it ends (no second read)."""
    home = _home(tmp_path)
    early: Future[FleetFilesRead] = Future()
    app = make_app(home, status_interval=3600, live=False, early_files=early)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.1)
        assert app.screen.query_one(FleetTable).row_count == 0
        files = read_fleet_files(home)
        # Three bots of the twelve: told apart from a read of the app's own.
        files.configs = {name: files.configs[name] for name in BOTS[:3]}
        early.set_result(files)
        await wait_until(pilot, lambda: app.screen.query_one(FleetTable).row_count == 3)
        assert list(app.configs) == BOTS[:3]


async def test_an_early_read_that_failed_is_read_again(tmp_path: Path) -> None:
    home = _home(tmp_path)
    early: Future[FleetFilesRead] = Future()
    early.set_exception(PermissionError("fleet.toml: permission denied"))
    app = make_app(home, status_interval=3600, live=False, early_files=early)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(
            pilot, lambda: app.screen.query_one(FleetTable).row_count == len(BOTS), timeout=30
        )


async def test_a_fleet_toml_that_does_not_parse_is_said_in_the_first_frame(tmp_path: Path) -> None:
    """Its error, not "No bots yet" (which it said before: no rows)."""
    home = _home(tmp_path)
    home.fleet_toml.write_text("[bots.fp-00\nruntime = 'docker'\n")
    early = start_reading(home)
    early.result(timeout=30)
    app = make_app(home, status_interval=3600, live=False, early_files=early)
    frames = _frames(app)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: frames)
        assert "fleet.toml" in frames[0][1]
        assert app.screen.query_one(FleetTable).row_count == 0
