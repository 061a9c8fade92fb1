"""`cftui audit`: the operator's actions (audit/events.jsonl); `cftui logs`:
a service's log through its runtime; `cftui shell`: a shell where it runs.
What audit and logs print others wrote (an event's details, an agent's log
lines): control characters escaped."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from cftui.cli.common import add_command, resolve_home, run_async, warn
from cftui.errors import UsageError
from cftui.humanize import parse_duration
from cftui.inert import inert, inert_json

if TYPE_CHECKING:
    from cftui.audit.events import EventsReader
    from cftui.runtime.base import LogLine

FOLLOW_POLL_S = 0.5  # events.jsonl gains a line per operator action: polling is plenty


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "audit", "the operator's actions (audit/events.jsonl), oldest first", cmd_audit
    )
    p.add_argument("bot", nargs="?", help="one bot's events (default: the fleet's)")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    p.add_argument("--json", action="store_true", help="one JSON event a line")
    p.add_argument("--since", metavar="WHEN", help="10m, 2h, 3d, or a UTC time (2026-12-01T10:00)")

    p = add_command(sub, "logs", "a service's log, through its runtime (Docker or Lima)", cmd_logs)
    p.add_argument("bot")
    p.add_argument(
        "service",
        nargs="?",
        default="gateway",
        help="default: gateway; `installer`: the last dependency install's output",
    )
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new lines")
    p.add_argument("--tail", "-n", type=int, default=200, metavar="N", help="the last N lines")
    p.add_argument("--since", metavar="WHEN", help="10m, 2h, 3d, or a UTC time (2026-12-01T10:00)")
    p.add_argument(
        "--json",
        action="store_true",
        help='one JSON line a log line: {"bot", "service", "ts", "text"} (with --follow too)',
    )

    p = add_command(
        sub,
        "shell",
        "an interactive shell in a service's container, or as its user in the VM",
        cmd_shell,
    )
    p.add_argument("bot")
    p.add_argument("service", nargs="?", default="gateway", help="default: gateway")


def since_time(text: str | None, now: datetime | None = None) -> datetime | None:
    """`--since`: an age (`90s`, `10m`, `2h`, `3d`) or a UTC date or time
    (ISO 8601); UsageError (one line) for anything else."""
    if text is None:
        return None
    ago = parse_duration(text, units="smhd")
    if ago is not None:
        return (now or datetime.now(UTC)) - timedelta(seconds=ago)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"bad --since {text!r}: use an age (10m, 2h, 3d) or a UTC time (2026-12-01T10:00)"
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _event_time(event: dict[str, Any]) -> datetime | None:
    try:
        when = datetime.fromisoformat(event["ts"])
    except (ValueError, TypeError):
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def _print_events(reader: EventsReader, since: datetime | None, as_json: bool) -> None:
    from cftui.audit.events import format_event

    out = sys.stdout
    for event in reader.read():
        if since is not None:
            when = _event_time(event)
            if when is None or when < since:
                continue
        out.write((inert_json(event) if as_json else format_event(event)) + "\n")
    out.flush()


def cmd_audit(args: argparse.Namespace) -> int:
    from cftui.audit.events import EventsReader

    home = resolve_home(args)
    if args.bot:
        home.bot(args.bot)
    since = since_time(args.since)
    reader = EventsReader(home, args.bot)
    try:
        _print_events(reader, since, args.json)
        while args.follow:
            time.sleep(FOLLOW_POLL_S)
            _print_events(reader, since, args.json)
    except KeyboardInterrupt:
        pass
    finally:
        if reader.skipped:
            warn(f"skipped {reader.skipped} malformed line(s) of {home.events_log}")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    from cftui.runtime import Runtimes
    from cftui.runtime.base import INSTALLER, LOG_SERVICES

    home = resolve_home(args)
    bot = home.bot(args.bot)
    if args.service not in LOG_SERVICES:
        raise UsageError(f"unknown service {args.service!r}: use one of {', '.join(LOG_SERVICES)}")
    if args.tail < 0:
        raise UsageError("--tail must be 0 or more")
    since = since_time(args.since)

    async def go() -> int:
        runtimes = Runtimes(home)
        shown = 0
        try:
            runtime = runtimes.for_bot(bot)  # its host's engine
            lines = runtime.logs(bot, args.service, follow=args.follow, tail=args.tail)
            async for line in lines:
                if since is not None and (line.ts is None or line.ts < since):
                    continue
                sys.stdout.write(_log_json(line) if args.json else _log_text(line))
                sys.stdout.flush()
                shown += 1
        finally:
            await runtimes.aclose()
        return shown

    try:
        shown = run_async(go())
    except KeyboardInterrupt:
        return 0
    if shown == 0 and not args.follow and args.service == INSTALLER:
        warn(f"no dependency install has run for {bot.name} (`cftui logs` keeps the last one)")
    elif shown == 0 and not args.follow:
        warn(
            f"no log lines for {bot.name}/{args.service} (is it running? `cftui status {bot.name}`)"
        )
    return 0


def _log_text(line: LogLine) -> str:
    stamp = line.ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ") + "  " if line.ts else ""
    # The agent's bytes: one line each, control characters escaped.
    return stamp + inert(line.text) + "\n"


def _log_json(line: LogLine) -> str:
    """A log line as JSON (`--json`): the text as the service wrote it, which
    JSON's escapes keep on one line and inert on a terminal."""
    ts = line.ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if line.ts else None
    doc = {"bot": line.bot, "service": line.service, "ts": ts, "text": line.text}
    return inert_json(doc) + "\n"


def cmd_shell(args: argparse.Namespace) -> int:
    """The runtime's shell command, run here until the operator leaves it;
    its exit status is ours (the shell said what went wrong, if anything)."""
    import subprocess

    from cftui.runtime import Runtimes
    from cftui.runtime.status import SERVICES

    home = resolve_home(args)
    bot = home.bot(args.bot)
    if args.service not in SERVICES:
        raise UsageError(f"unknown service {args.service!r}: use one of {', '.join(SERVICES)}")
    argv = Runtimes(home).for_bot(bot).shell_argv(bot, args.service, tty=sys.stdin.isatty())
    try:
        return subprocess.run(argv, check=False).returncode
    except OSError as exc:
        raise UsageError(f"cannot run {argv[0]}: {exc.strerror}") from None
