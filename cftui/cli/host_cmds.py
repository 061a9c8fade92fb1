"""`cftui hosts`: the Docker hosts of the fleet; `cftui move`: a bot
carried to another of them (CONTRACTS §12)."""

from __future__ import annotations

import argparse

from cftui.cli.common import add_command, print_json, progress_bar, resolve_home, run_async
from cftui.errors import UsageError
from cftui.inert import inert


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "hosts", "the fleet's Docker hosts: engine version, reachability, bots", cmd_hosts
    )
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--timeout",
        type=float,
        default=None,  # runtime.hosts.PROBE_TIMEOUT_S: not imported to build the parser
        metavar="SECONDS",
        help="how long to wait for each host (default 8)",
    )

    p = add_command(sub, "move", "carry a docker bot to another host through a snapshot", cmd_move)
    p.add_argument("bot")
    p.add_argument("--host", required=True, metavar="NAME", help="the host to move it to")


def cmd_move(args: argparse.Namespace) -> int:
    from cftui.move import MoveResult, move
    from cftui.runtime import Runtimes

    home = resolve_home(args)
    bot = home.bot(args.bot)

    async def go() -> MoveResult:
        runtimes = Runtimes(home)
        try:
            with progress_bar() as progress:
                return await move(home, bot, args.host, runtimes, progress)
        finally:
            await runtimes.aclose()

    result = run_async(go())
    carried = f"its state in snapshot {result.snapshot}" if result.snapshot else "no state to carry"
    print(inert(f"{result.bot}: moved from {result.source} to {result.target} ({carried})"))
    for note in result.notes:
        print(inert(f"  {note}"))
    return 0


def cmd_hosts(args: argparse.Namespace) -> int:
    from cftui.runtime.hosts import PROBE_TIMEOUT_S, probe_hosts

    if args.timeout is None:
        args.timeout = PROBE_TIMEOUT_S
    if not 0 < args.timeout <= 300:
        raise UsageError("--timeout must be more than 0 and at most 300 seconds")
    home = resolve_home(args)
    reports = run_async(probe_hosts(home, args.timeout))
    if args.json:
        print_json([r.as_json() for r in reports])
        return 0
    print(f"{'HOST':<16} {'ENGINE':<16} {'BOTS':>4}  {'STATE':<12} URL")
    for r in reports:
        state = "reachable" if r.reachable else "unreachable"
        print(
            inert(
                f"{r.name:<16} {r.engine_version or '-':<16} {r.bots:>4}  {state:<12} {r.url or '-'}"
            )
        )
        if r.error:
            print(inert(f"  {r.error}"))
    return 0
