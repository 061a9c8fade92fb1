"""`cftui costs`: what the fleet's LLM calls cost, per bot, model, provider
or day, since a date. The calls with no price (an unknown model, a log
older than costs, an unfinished call) are counted in their own column and
left out of the sums: their cost is unknown, never $0."""

from __future__ import annotations

import argparse
import re
import sys
from datetime import date
from typing import TYPE_CHECKING, Any

from cftui.cli.common import add_command, print_json, resolve_home
from cftui.errors import UsageError
from cftui.humanize import format_usd, human_count
from cftui.inert import inert

if TYPE_CHECKING:
    from cftui.audit.traffic.spend import Groups
    from cftui.audit.traffic.totals import Totals

# What `--by` takes; cftui.audit.traffic.spend checks it is its own GROUPINGS
# (a test), so the parser is built without importing the traffic reader.
GROUPINGS = ("bot", "model", "provider", "day")

_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "costs", "what the LLM calls cost, per bot, model, provider or day", run)
    p.add_argument("bot", nargs="?", help="one bot (default: every bot)")
    p.add_argument("--by", choices=GROUPINGS, default="bot", help="group by (default: bot)")
    p.add_argument("--since", metavar="DATE", help="calls on or after DATE (YYYY-MM-DD, UTC)")
    p.add_argument("--json", action="store_true", help="the groups as JSON")


def parse_since(text: str | None) -> date | None:
    """`--since YYYY-MM-DD` as a date; UsageError (one line) otherwise."""
    if text is None:
        return None
    try:
        if not _DATE_RE.fullmatch(text):
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"bad --since {text!r}: use a UTC date, YYYY-MM-DD") from None


def run(args: argparse.Namespace) -> int:
    from cftui.audit.traffic.spend import merge, since_ts, spend, total

    home = resolve_home(args)
    since = parse_since(args.since)
    names = [home.bot(args.bot).name] if args.bot else list(home.bots())
    groups: Groups = {}
    for name in names:
        found = spend(home.traffic_log(name), args.by, since_ts(since) if since else "", bot=name)
        merge(groups, found)
    rows = _ordered(groups, args.by)
    whole = total(groups.values())
    if args.json:
        print_json(
            {
                "by": args.by,
                "since": since.isoformat() if since else None,
                "groups": [{"key": key, **as_json(t)} for key, t in rows],
                "total": as_json(whole),
            }
        )
        return 0
    _print_table(rows, whole, args.by)
    return 0


def _ordered(groups: Groups, by: str) -> list[tuple[str, Totals]]:
    """Days in time order; anything else the most costly first."""
    if by == "day":
        return sorted(groups.items())
    return sorted(groups.items(), key=lambda kv: (-kv[1].cost_pico, -kv[1].calls, kv[0]))


def as_json(t: Totals) -> dict[str, Any]:
    """One group's totals for `--json`: `cost_usd` is null when no call of
    it had a price (unknown, not zero)."""
    return {
        "calls": t.calls,
        "priced_calls": t.priced,
        "unpriced_calls": t.unpriced,
        "cost_usd": t.cost_usd if t.priced else None,
        "tokens_in": t.tokens_in,
        "tokens_out": t.tokens_out,
        "tokens": t.tokens,
        "errors": t.errors,
        "unfinished": t.unfinished,
    }


def _print_table(rows: list[tuple[str, Totals]], whole: Totals, by: str) -> None:
    out = sys.stdout
    if not rows:
        out.write("no calls\n")
        return
    width = max(8, len(by), *(len(inert(key)) for key, _ in rows))
    width = min(width, 40)
    head = f"{by.upper():<{width}}  {'CALLS':>7}  {'COST':>10}  {'UNPRICED':>8}  {'TOKENS':>7}"
    out.write(head + "\n")
    for key, t in [*rows, ("total", whole)]:
        name = inert(key)
        name = name if len(name) <= width else name[: width - 1] + "…"
        out.write(
            f"{name:<{width}}  {t.calls:>7}  {format_usd(t.cost_usd if t.priced else None):>10}  "
            f"{t.unpriced or '':>8}  {human_count(t.tokens):>7}\n"
        )
    if whole.unpriced:
        out.write(
            f"{whole.unpriced} call(s) unpriced (unknown model, older than costs, or"
            " unfinished): not in the costs\n"
        )
