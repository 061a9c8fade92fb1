"""Lifecycle: `start|stop|restart|rebuild`, the kill switch (`kill`,
`unlock`), headless `--run` and `demo`."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from cftui.cli.common import add_command, print_json, progress_bar, resolve_home, run_async, warn
from cftui.errors import CftuiError, UsageError
from cftui.inert import inert

if TYPE_CHECKING:
    from cftui.fleet import BotConfig, FleetHome


def register(sub: argparse._SubParsersAction) -> None:
    for name, help_text in (
        ("start", "bring a bot's stack up"),
        ("stop", "stop a bot's stack cleanly (state is kept)"),
        ("restart", "stop, then start a bot's stack"),
        ("rebuild", "rebuild the gateway image from code/ and restart"),
    ):
        p = add_command(sub, name, help_text + " (several bots: one line each)", cmd_lifecycle)
        p.add_argument("bots", nargs="*", metavar="BOT")
        p.add_argument("--all", action="store_true", help="every bot of the fleet")
        p.add_argument(
            "--json",
            action="store_true",
            help='at the end, one JSON list: {"bot", "action", "ok", "error", "notes"} a bot',
        )

    p = add_command(
        sub, "kill", "the kill switch: cut the network and stop bots, locked until unlock", cmd_kill
    )
    p.add_argument("bots", nargs="*", metavar="BOT")
    p.add_argument("--all", action="store_true", help="every bot of the fleet")
    p.add_argument("--json", action="store_true", help="what was done to each bot, as JSON")

    p = add_command(sub, "unlock", "lift the kill switch's lock", cmd_unlock)
    p.add_argument("bots", nargs="*", metavar="BOT")
    p.add_argument("--all", action="store_true", help="every locked bot")
    p.add_argument("--json", action="store_true", help='{"unlocked": [BOT, ...]}')

    p = add_command(
        sub, "demo", "start a small demo fleet with a fake LLM provider and open the app", cmd_demo
    )
    p.add_argument("--no-tui", action="store_true", help="leave the fleet running and return")


def named_bots(home: FleetHome, args: argparse.Namespace, verb: str) -> list[BotConfig]:
    """The bots a many-bot verb acts on: those named (every name checked
    before anything is done) or, with `--all`, the whole fleet."""
    if args.all and args.bots:
        raise UsageError(f"name the bots to {verb}, or use --all: not both")
    if not args.bots and not args.all:
        raise UsageError(f"name the bots to {verb}, or use --all")
    return home.resolve_bots(None if args.all else args.bots)


def cmd_lifecycle(args: argparse.Namespace) -> int:
    """One bot after another (a start may build an image: in parallel they
    would share the machine's cores anyway); a bot that fails is said in its
    line and the others still go; exit 1 if any failed."""
    from cftui import lifecycle
    from cftui.runtime import Runtimes

    home = resolve_home(args)
    bots = named_bots(home, args, args.command)
    if not bots:
        if args.json:
            print_json([])
        else:
            print(f"no bots to {args.command}")
        return 0
    action = getattr(lifecycle, args.command)
    done: list[dict] = []  # --json: each bot's outcome

    async def one(bot: BotConfig, runtimes: Runtimes) -> list[str]:
        if args.command == "stop":
            await action(home, bot, runtimes)
            return []
        with progress_bar() as progress:
            notes: list[str] = await action(home, bot, runtimes, progress)
            return notes

    async def go() -> bool:
        ok = True
        runtimes = Runtimes(home)
        try:
            for bot in bots:
                try:
                    notes = await one(bot, runtimes)
                except CftuiError as exc:
                    if len(bots) == 1 and not args.json:
                        raise  # one bot: the usual one-line error and its exit code
                    ok = False
                    done.append(_outcome(bot.name, args.command, str(exc)))
                    if not args.json:
                        print(inert(f"{bot.name}: {args.command} failed: {exc}"))
                    continue
                for note in notes:
                    warn(note)
                done.append(_outcome(bot.name, args.command, None, notes))
                if not args.json:
                    print(f"{bot.name}: {args.command} done")
        finally:
            await runtimes.aclose()
        return ok

    ok = run_async(go())
    if args.json:
        print_json(done)
    return 0 if ok else 1


def _outcome(bot: str, action: str, error: str | None, notes: list[str] | None = None) -> dict:
    """One bot's line of `start|stop|restart|rebuild --json`."""
    return {"bot": bot, "action": action, "ok": error is None, "error": error, "notes": notes or []}


def cmd_kill(args: argparse.Namespace) -> int:
    from cftui import killswitch

    home = resolve_home(args)
    bots = named_bots(home, args, "kill")
    if not bots:
        if args.json:
            print_json({"ok": True, "seconds": 0.0, "bots": []})
        else:
            print("no bots to kill")
        return 0
    result = run_async(killswitch.kill(home, bots))
    if args.json:
        print_json(
            {
                "ok": result.ok,
                "seconds": result.seconds,
                "bots": [r.to_json() for r in result.reports],
            }
        )
        return 0 if result.ok else 1
    for report in result.reports:
        print(inert(report.summary()))  # may quote the engine's errors
    print(
        f"killed {len(result.reports)} bot(s) in {result.seconds * 1000:.0f} ms; "
        "locked until `cftui unlock`"
    )
    return 0 if result.ok else 1


def cmd_unlock(args: argparse.Namespace) -> int:
    from cftui import killswitch, locks
    from cftui.runtime import Runtimes

    home = resolve_home(args)
    named = named_bots(home, args, "unlock")
    # --all: every lock, even one of a bot no longer in fleet.toml.
    names = locks.locked_bots(home) if args.all else [b.name for b in named]

    async def go() -> killswitch.UnlockResult:
        runtimes = Runtimes(home)
        try:
            return await killswitch.lift(home, names, runtimes)
        finally:
            await runtimes.aclose()

    result = run_async(go())
    held = [
        inert(f"{bot}: still locked, its host's kill marker stays: {why}")
        for bot, why in result.held.items()
    ]
    if args.json:
        print_json({"unlocked": result.lifted, **({"host_errors": held} if held else {})})
        return 1 if held else 0
    for line in held:
        print(line)
    if result.lifted:
        print("unlocked " + ", ".join(result.lifted) + " (start them with `cftui start BOT`)")
    elif not result.held:
        print("nothing was locked")
    return 1 if result.held else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from cftui import demo
    from cftui.runtime import Runtimes

    home = demo.demo_home(getattr(args, "home", None))

    async def go() -> list:
        runtimes = Runtimes(home)
        try:
            with progress_bar() as progress:
                return await demo.start_demo(home, runtimes, progress)
        finally:
            await runtimes.aclose()

    bots = run_async(go())
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
