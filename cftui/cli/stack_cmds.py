"""Lifecycle: `start|stop|restart|rebuild`, the kill switch (`kill`,
`unlock`), headless `--run` and `demo`."""

from __future__ import annotations

import argparse
import asyncio

from cftui import killswitch, lifecycle, locks
from cftui.cli.common import add_command, progress_bar, resolve_home, warn
from cftui.errors import UsageError
from cftui.inert import inert
from cftui.runtime import Runtimes


def register(sub: argparse._SubParsersAction) -> None:
    for name, help_text in (
        ("start", "bring a bot's stack up"),
        ("stop", "stop a bot's stack cleanly (state is kept)"),
        ("restart", "stop, then start a bot's stack"),
        ("rebuild", "rebuild the gateway image from code/ and restart"),
    ):
        p = add_command(sub, name, help_text, cmd_lifecycle)
        p.add_argument("bot")

    p = add_command(
        sub, "kill", "the kill switch: cut the network and stop bots, locked until unlock", cmd_kill
    )
    p.add_argument("bots", nargs="*", metavar="BOT")
    p.add_argument("--all", action="store_true", help="every bot of the fleet")

    p = add_command(sub, "unlock", "lift the kill switch's lock", cmd_unlock)
    p.add_argument("bots", nargs="*", metavar="BOT")
    p.add_argument("--all", action="store_true", help="every locked bot")

    p = add_command(
        sub, "demo", "start a small demo fleet with a fake LLM provider and open the app", cmd_demo
    )
    p.add_argument("--no-tui", action="store_true", help="leave the fleet running and return")


def cmd_lifecycle(args: argparse.Namespace) -> int:
    home = resolve_home(args)
    bot = home.bot(args.bot)
    action = getattr(lifecycle, args.command)

    async def go() -> list[str]:
        runtimes = Runtimes(home)
        try:
            if args.command == "stop":
                await action(home, bot, runtimes)
                return []
            with progress_bar() as progress:
                return await action(home, bot, runtimes, progress)
        finally:
            await runtimes.aclose()

    for note in asyncio.run(go()):
        warn(note)
    print(f"{bot.name}: {args.command} done")
    return 0


def cmd_kill(args: argparse.Namespace) -> int:
    home = resolve_home(args)
    if not args.bots and not args.all:
        raise UsageError("name the bots to kill, or use --all")
    bots = home.resolve_bots(None if args.all else args.bots)
    if not bots:
        print("no bots to kill")
        return 0
    result = asyncio.run(killswitch.kill(home, bots))
    for report in result.reports:
        print(inert(report.summary()))  # may quote the engine's errors
    print(
        f"killed {len(result.reports)} bot(s) in {result.seconds * 1000:.0f} ms; "
        "locked until `cftui unlock`"
    )
    return 0 if result.ok else 1


def cmd_unlock(args: argparse.Namespace) -> int:
    home = resolve_home(args)
    if not args.bots and not args.all:
        raise UsageError("name the bots to unlock, or use --all")
    names = locks.locked_bots(home) if args.all else [b.name for b in home.resolve_bots(args.bots)]
    lifted = killswitch.unlock(home, names)
    if lifted:
        print("unlocked " + ", ".join(lifted) + " (start them with `cftui start BOT`)")
    else:
        print("nothing was locked")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from cftui import demo

    home = demo.demo_home(getattr(args, "home", None))

    async def go() -> list:
        runtimes = Runtimes(home)
        try:
            with progress_bar() as progress:
                return await demo.start_demo(home, runtimes, progress)
        finally:
            await runtimes.aclose()

    bots = asyncio.run(go())
    if args.no_tui:
        _print_demo_left_running(home.root, [b.name for b in bots])
        return 0
    from cftui.tui.app import run_app  # Textual only here

    status = run_app(home)
    # Quitting the app leaves the fleet running, as it always does; the
    # demo's home is not the usual one, so say how to reach and stop it.
    _print_demo_left_running(home.root, [b.name for b in bots])
    return status


def _print_demo_left_running(root: object, names: list[str]) -> None:
    at = f"cftui --home {root}"
    print(f"demo fleet running in {root}: {', '.join(names)}")
    print(f"  watch: {at}")
    print("  stop:  " + " && ".join(f"{at} stop {name}" for name in names))


def run_headless(args: argparse.Namespace) -> int:
    from cftui.cli import headless

    return headless.run(resolve_home(args), [args.run])
