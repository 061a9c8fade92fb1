#!/usr/bin/env python3
"""Regenerate screenshots/*.svg: the app rendering itself.

By default it renders the deterministic sample fleet of the snapshot tests
(tests/tui/scene.py: four bots, a day of LLM calls, a real encrypted capture
session, real snapshots; an in-memory runtime reports their states). With
`--home PATH` it renders a real fleet home instead (e.g. the demo fleet
started by `cftui demo --no-tui`) through the real runtimes.

    .venv/bin/python scripts/screenshots.py [--home PATH] [--bot BOT]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "screenshots"
SIZE = (120, 36)


async def _until(predicate, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError("the app did not get there in time")
        await asyncio.sleep(0.05)


async def shoot(make, name: str, tab: str | None, bot: str | None, prepare=None) -> Path:
    """Run the app headless, wait for the screen's data, save the SVG."""
    from cftui.tui.traffic_view import TrafficView

    app = make(open_bot=bot if tab else None, open_tab=tab)
    async with app.run_test(size=SIZE) as pilot:
        await _until(lambda: app.configs_loaded and len(app.statuses) == len(app.configs))
        if tab == "traffic":
            await _until(lambda: app.screen.query(TrafficView))
            view = app.screen.query_one(TrafficView)
            await _until(lambda: view.row_count and view.cursor == view.row_count - 1)
            await _until(lambda: not view.counting)
        if prepare is not None:
            await prepare(app, pilot)
        await asyncio.sleep(0.5)  # the tab's worker fills the table
        await pilot.pause()
        path = OUT / f"{name}.svg"
        app.save_screenshot(path.name, str(OUT))
    return path


async def main_async(args: argparse.Namespace) -> None:
    from cftui import locks
    from cftui.fleet import FleetHome
    from cftui.tui.app import make_app

    OUT.mkdir(exist_ok=True)
    if args.home:
        home = FleetHome(args.home)
        bot = args.bot or next(iter(home.bots()))

        def make(**options):
            return make_app(home, **options)

        locker = None
    else:
        sys.path.insert(0, str(REPO))  # the tests are a package: tests.tui.scene
        from tests.tui.scene import scene_app

        root = Path(tempfile.mkdtemp(prefix="cftui-screens-"))
        made: list = []

        def make(**options):
            app, home, runtime = scene_app(root / f"home{len(made)}", **options)
            made.append((home, runtime))
            return app

        bot = args.bot or "scout"

        def locker(app) -> None:
            home, runtime = made[-1]
            locks.lock_bots(home, list(home.bots()))
            for name in home.bots():
                runtime._set(name, "stopped")
                runtime._set(name, "killed", ("gateway",))

    shots = [
        ("fleet", None),
        ("traffic", "traffic"),
        ("capture", "capture"),
        ("snapshots", "snapshots"),
        ("overview", "overview"),
    ]
    for name, tab in shots:
        print(await shoot(make, name, tab, bot))

    async def lock(app, pilot) -> None:
        if locker is not None:
            locker(app)
            app.read_fleet_files()
            app.refresh_status()
            await _until(lambda: app.locked)
        else:  # a real fleet: the same kill switch as `cftui kill --all`
            await pilot.press("ctrl+k")
            await _until(lambda: app.locked)
            await asyncio.sleep(3)

    if locker is not None or args.kill:
        print(await shoot(make, "locked", None, bot, prepare=lock))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", help="a real fleet home (default: the sample fleet)")
    parser.add_argument("--bot", help="the bot whose tabs are shot")
    parser.add_argument(
        "--kill", action="store_true", help="with --home: press ctrl+k for the locked shot"
    )
    asyncio.run(main_async(parser.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
