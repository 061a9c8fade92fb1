"""`cftui traffic`: the LLM call log of a bot, newest last."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from cftui.cli.common import add_command, resolve_home, warn
from cftui.errors import UsageError
from cftui.inert import inert, inert_json

if TYPE_CHECKING:
    from cftui.audit.traffic.log import Change, TrafficLog


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "traffic", "the LLM call log, newest last", cmd_traffic)
    p.add_argument("bot")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new calls")
    p.add_argument("--json", action="store_true", help="one JSON record a line")
    p.add_argument(
        "--tail", "-n", type=int, default=None, metavar="N", help="only the last N calls"
    )


def cmd_traffic(args: argparse.Namespace) -> int:
    from cftui.audit.traffic.log import TrafficLog  # the reader: only for this command

    home = resolve_home(args)
    home.bot(args.bot)
    if args.tail is not None and args.tail < 0:
        raise UsageError("--tail must be 0 or more")
    log = TrafficLog(home.traffic_log(args.bot))
    try:
        if not log.open() and not args.follow:
            warn(f"no traffic yet for {args.bot} ({home.traffic_log(args.bot)})")
            return 0
        log.scan()
        if args.tail is None:
            _print_lines(log, 0, len(log), args.json)
        elif args.tail:
            last = log.tail(args.tail)
            first = last[0][0] if last else len(log)
            _print_lines(log, first, len(log), args.json)
        if args.follow:
            _follow(log, args.json)
        if log.malformed:
            warn(f"skipped {len(log.malformed)} malformed line(s)")
    finally:
        log.close()
    return 0


def _print_lines(
    log: TrafficLog, first: int, end: int, as_json: bool, *, following: bool = False
) -> None:
    """Lines first..end as calls. Following, a call's start line is left out:
    the call is printed once, when its end line comes."""
    from cftui.audit.traffic.display import format_call

    out = sys.stdout
    for i in range(first, end):
        record = log.call(i) if following else log.record(i)
        if record is None:
            continue
        out.write(inert_json(record) if as_json else inert(format_call(record)))
        out.write("\n")
    out.flush()


def _follow(log: TrafficLog, as_json: bool) -> None:
    """Print appended calls until Ctrl-C; start over after a truncation or
    rotation (the new file's calls are all new)."""
    import threading

    shown = len(log)
    stop = threading.Event()

    def on_change(change: Change) -> None:
        nonlocal shown
        if change.reset:
            shown = 0
        end = len(log)
        _print_lines(log, shown, end, as_json, following=True)
        shown = end

    try:
        log.follow(on_change, stop)
    except KeyboardInterrupt:
        stop.set()
