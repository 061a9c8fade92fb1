"""The MITM capture and the egress allowlist: `capture on|off`, `decrypt`, `egress`."""

from __future__ import annotations

import argparse
import sys
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

from cftui.cli.common import add_command, print_json, resolve_home, warn
from cftui.errors import UsageError
from cftui.humanize import human_bytes
from cftui.inert import inert, inert_json_text

if TYPE_CHECKING:
    from cftui.egress_control import ApplyResult


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "capture", "turn MITM capture of the egress proxy on or off", cmd_capture)
    p.add_argument("state", choices=("on", "off"))
    p.add_argument("bot")

    p = add_command(
        sub,
        "decrypt",
        "the decrypted MITM capture log, newest last (nothing is written to disk)",
        cmd_decrypt,
    )
    p.add_argument("bot")
    p.add_argument("--json", action="store_true", help="one JSON record a line, in full")
    p.add_argument(
        "--newest-first", action="store_true", help="default: newest last, as `cftui traffic`"
    )
    # The old default's opposite, kept so that scripts still run: a no-op now.
    p.add_argument("--oldest-first", action="store_true", help=argparse.SUPPRESS)
    p.add_argument(
        "--limit", "-n", type=int, default=None, metavar="N", help="only the newest N flows"
    )
    p.add_argument(
        "--identity",
        metavar="FILE",
        default=None,
        help="age identity to decrypt with (default: secrets/<bot>/snapshot.key)",
    )

    p = add_command(
        sub,
        "egress",
        "show or edit a bot's egress allowlist (hosts, and rules by method and path)",
        cmd_egress,
    )
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EGRESS_GRAMMAR
    p.add_argument("bot")
    p.add_argument("--allow", action="append", default=[], metavar="ENTRY")
    p.add_argument("--remove", action="append", default=[], metavar="ENTRY")
    p.add_argument("--set", nargs="*", default=None, metavar="ENTRY", help="replace the list")
    p.add_argument("--json", action="store_true")


EGRESS_GRAMMAR = """\
An ENTRY is a host, optionally narrowed to methods and path prefixes
(quote it: it holds spaces):

  HOST [METHODS] [PREFIX ...]

  HOST     api.example.com, *.example.com (its subdomains), an IP address
           (192.0.2.7, [2001:db8::1]) or a network (10.1.0.0/16); :PORT
           optional (every port without it)
  METHODS  GET,HEAD,... (any case) or *; absent: any method
  PREFIX   starts with /; the request's path (query dropped) must start
           with one of them; end it with / to stop at a segment

  cftui egress BOT --allow api.github.com
  cftui egress BOT --allow 'api.github.com GET,HEAD /repos/acme/'

A plain host is tunnelled untouched. A host listed only by entries with
methods or paths is inspected (TLS terminated with the bot's capture CA,
recorded only when capture is on), and each request (each HTTP/2 stream;
a WebSocket upgrade as its GET; with an X-HTTP-Method-Override header, as
that method too) must match one of its entries; several
entries for one host add up, and a plain one admits everything. Paths are
compared with escapes of unreserved characters decoded; a path with a . or
.. segment (plain or %2e-encoded) passes no rule. A refused request gets a
403 JSON answer naming the entry it missed, and the egress proxy records
it, with the entry that would allow it, in audit/BOT/egress.requests.json.

A listed name is reached only at addresses that are public or listed
themselves: a name that resolves to a private, loopback or link-local
address (a Docker service, localhost) needs that address or its network
listed too (with the same methods and paths, or the address admits all).
"""


def _applied(result: ApplyResult) -> str:
    if result.confirmed is None:
        return "(the egress proxy is not running; it applies this when it starts)"
    if result.confirmed:
        return "(applied by the running egress proxy)"
    return "(written, but the running egress proxy has not confirmed it yet)"


def cmd_capture(args: argparse.Namespace) -> int:
    from cftui.egress_control import set_capture

    home = resolve_home(args)
    result = set_capture(home, args.bot, args.state == "on")
    print(f"{args.bot}: capture {args.state} {_applied(result)}")
    return 0


def cmd_decrypt(args: argparse.Namespace) -> int:
    import orjson

    from cftui.audit.capture import CaptureReader

    home = resolve_home(args)
    home.bot(args.bot)
    if args.limit is not None and args.limit < 0:
        raise UsageError("--limit must be 0 or more")
    reader = CaptureReader(
        home, args.bot, identity_path=Path(args.identity) if args.identity else None
    )
    if args.oldest_first and args.newest_first:
        raise UsageError("--oldest-first and --newest-first: choose one")
    out = sys.stdout
    shown = 0
    # Everything: a full scan, in worker processes when the log is big, in the
    # order asked. The newest N: read here, lazily, from the end, then put in
    # that order (newest last unless told otherwise), as `traffic --tail` does.
    if args.limit is None:
        entries = reader.iter_entries(newest_first=args.newest_first, workers=None)
    else:
        newest = list(islice(reader.iter_entries(newest_first=True, workers=1), args.limit))
        entries = iter(newest if args.newest_first else newest[::-1])
    for entry in entries:
        if args.json:
            out.write(inert_json_text(orjson.dumps(entry.record).decode()) + "\n")
        else:
            ts, method, status, url, size, ms = entry.summary()
            dur = f"{ms:.0f}ms" if isinstance(ms, int | float) else "-"
            line = f"{ts}  {method:<7} {status:>4}  {url}  {human_bytes(size)}  {dur}"
            out.write(inert(line) + "\n")
        shown += 1
    if reader.skipped.total:
        warn(f"skipped {reader.skipped.total} unreadable lines ({reader.skipped.describe()})")
    if shown == 0 and not args.json:
        warn(f"no captured flows for {args.bot} (turn capture on: cftui capture on {args.bot})")
    return 0


def cmd_egress(args: argparse.Namespace) -> int:
    from cftui.egress_control import edit_allowlist, read_stats, set_allowlist

    home = resolve_home(args)
    config = home.bot(args.bot)
    result: ApplyResult | None = None
    if args.set is not None:
        if args.allow or args.remove:
            raise UsageError("--set replaces the list: do not combine it with --allow/--remove")
        result = set_allowlist(home, args.bot, args.set)
    elif args.allow or args.remove:
        result = edit_allowlist(home, args.bot, add=args.allow, remove=args.remove)
    if result is not None:
        config = result.bot
    stats = read_stats(home, args.bot)
    if args.json:
        print_json(
            {
                "bot": args.bot,
                "allow": list(config.egress_allow),
                "capture": config.capture,
                "applied": result.confirmed if result else None,
                "proxy": stats,
            }
        )
        return 0
    allow = list(config.egress_allow)
    print(f"{args.bot}: {len(allow)} egress pattern(s){' ' + _applied(result) if result else ''}")
    for p in allow:
        print(f"  {inert(p)}")
    if stats and stats.get("refused"):
        print(f"refused so far: {stats.get('refused_total', 0)}")
        for target, n in stats["refused"].items():
            print(f"  {n!s:>6}  {inert(target)}")
    return 0
