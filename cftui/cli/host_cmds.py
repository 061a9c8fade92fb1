"""`cftui hosts`: the Docker hosts of the fleet (CONTRACTS §12)."""

from __future__ import annotations

import argparse
import asyncio

from cftui.cli.common import add_command, print_json, resolve_home
from cftui.errors import UsageError
from cftui.inert import inert
from cftui.runtime.hosts import PROBE_TIMEOUT_S, probe_hosts


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "hosts", "the fleet's Docker hosts: engine version, reachability, bots", cmd_hosts
    )
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--timeout",
        type=float,
        default=PROBE_TIMEOUT_S,
        metavar="SECONDS",
        help=f"how long to wait for each host (default {PROBE_TIMEOUT_S:g})",
    )


def cmd_hosts(args: argparse.Namespace) -> int:
    if not 0 < args.timeout <= 300:
        raise UsageError("--timeout must be more than 0 and at most 300 seconds")
    home = resolve_home(args)
    reports = asyncio.run(probe_hosts(home, args.timeout))
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
