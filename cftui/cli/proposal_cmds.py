"""Proposals and promotion (CONTRACTS §9): `proposals` (with the egress
requests: `--allow KEY`, `--dismiss KEY`), `diff`, `promote`, `reject`, and
`drift` for the gateway's own openclaw.json. Every path, host and string
here may be the agent's: printed inert."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from cftui.cli.capture_cmds import _applied  # the one wording of a live allowlist change
from cftui.cli.common import add_command, print_json, progress_bar, resolve_home, run_async
from cftui.errors import UsageError
from cftui.humanize import format_ago, human_bytes
from cftui.inert import inert

if TYPE_CHECKING:
    from cftui.fleet import FleetHome
    from cftui.proposals.egress_inbox import EgressInbox
    from cftui.proposals.model import Proposals

_MARK = {"added": "A", "changed": "M", "removed": "D"}
MAX_WINDOW_HOURS = 24 * 366 * 10


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub,
        "proposals",
        "what the bot proposes: changes to its code, and hosts it was refused (egress requests)",
        cmd_proposals,
    )
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = (
        "Egress requests are what the egress proxy refused (audit/<bot>/egress.requests.json),\n"
        "one KEY each: HOST:PORT for an unlisted host, 'HOST:PORT METHOD PATH' for a request\n"
        "outside a method/path rule (quote it). --allow KEY adds the entry's suggested pattern\n"
        "to the allowlist live, as `cftui egress BOT --allow` does (refused while the bot is\n"
        "locked); the entry is hidden until the proxy refuses it again. --dismiss KEY hides\n"
        "it until it is refused again after the window (`last` later than the dismissal\n"
        "plus --window-hours, default 24)."
    )
    p.add_argument("bot")
    p.add_argument("--json", action="store_true")
    settle = p.add_mutually_exclusive_group()
    settle.add_argument(
        "--allow", metavar="KEY", help="allow an egress request: its suggestion joins the allowlist"
    )
    settle.add_argument("--dismiss", metavar="KEY", help="hide an egress request for a while")
    p.add_argument(
        "--window-hours",
        type=float,
        default=None,  # egress_inbox.DEFAULT_WINDOW, read when it is used
        metavar="H",
        help="with --dismiss: how long a new refusal stays hidden (default 24)",
    )

    p = add_command(sub, "diff", "the unified diff of the bot's proposals", cmd_diff)
    p.add_argument("bot")
    p.add_argument("path", nargs="?", metavar="PATH")

    p = add_command(
        sub,
        "promote",
        "commit the bot's proposals to its approved code, then rebuild or restart it",
        cmd_promote,
    )
    p.add_argument("bot")
    p.add_argument("paths", nargs="*", metavar="PATH", help="only these (default: all)")
    p.add_argument("-m", "--message", help="the commit message")
    p.add_argument(
        "--from",
        dest="source",
        metavar="REMOTE/BRANCH",
        help="fast-forward the approved code to a reviewed branch instead",
    )
    p.add_argument("--no-restart", action="store_true", help="commit only; apply at next start")
    p.add_argument("--json", action="store_true", help="what was promoted and applied, as JSON")

    p = add_command(sub, "reject", "put the bot's proposals back to its approved code", cmd_reject)
    p.add_argument("bot")
    p.add_argument("paths", nargs="*", metavar="PATH", help="only these (default: all)")
    p.add_argument("--json", action="store_true", help='{"bot", "all", "rejected": [PATH, ...]}')

    p = add_command(sub, "drift", "changes the gateway made to its own openclaw.json", cmd_drift)
    p.add_argument("bot")
    action = p.add_mutually_exclusive_group()
    action.add_argument("--accept", action="store_true", help="approve the current config")
    action.add_argument("--revert", action="store_true", help="write the approved config back")
    p.add_argument("--json", action="store_true")


def _size(n: int | None) -> str:
    return "" if n is None else human_bytes(n)  # the units of every other screen (KiB)


def _counts(added: int | None, removed: int | None, binary: bool) -> str:
    if binary:
        return "binary"
    if added is None:
        return "large"
    return f"+{added} -{removed}"


def print_proposals(found: Proposals) -> None:
    head = f"{found.bot}: against {found.branch}@{found.approved[:12]}"
    if not found.seeded:
        print(inert(f"{head}: no proposals tree yet (it is made at the bot's next start)"))
        return
    if not (found.changes or found.refused or found.commits or found.config_drift):
        print(inert(f"{head}: nothing proposed in its code"))
        print_dependencies(found)
        return
    print(inert(f"{head}: {len(found.changes)} file(s) proposed"))
    width = max((len(c.path) for c in found.changes), default=0)
    for c in found.changes:
        counts = _counts(c.lines_added, c.lines_removed, c.binary)
        print(inert(f"  {_MARK[c.status]} {c.path:<{width}}  {_size(c.size):>9}  {counts}"))
    for r in found.refused:
        print(inert(f"  ! {r.path}: refused: {r.reason}"))
    if found.config_drift:
        keys = ", ".join(found.config_drift[:8]) + (" …" if len(found.config_drift) > 8 else "")
        print(inert(f"  config drift in openclaw.json: {keys} (`cftui drift {found.bot}`)"))
    print_dependencies(found)
    if found.commits:
        print("agent commits:")
        for commit in found.commits:
            print(inert(f"  {commit.id[:12]} {commit.date} {commit.summary}  ({commit.author})"))
    if found.commits_note:
        print(inert(f"  ({found.commits_note})"))


def print_dependencies(found: Proposals) -> None:
    """The save directory's dependency list against the approved one: one
    line a package (the agent's words inert)."""
    deps = found.dependencies
    if deps is None:
        return
    print(inert(f"dependency changes in {deps.path} (not installed until promoted):"))
    if deps.note:
        print(inert(f"  ! {deps.note}"))
    for d in deps.changes:
        if d.status == "added":
            print(inert(f"  + {d.name} {d.proposed}"))
        elif d.status == "removed":
            print(inert(f"  - {d.name} (was {d.approved})"))
        else:
            print(inert(f"  ~ {d.name} {d.approved} -> {d.proposed}"))
    if deps.lockfile_changed:
        print(inert("  ~ package-lock.json differs from the approved one"))


def print_egress(inbox: EgressInbox, now: datetime) -> None:
    """The egress requests section: one line an entry, the agent's words inert."""
    bot = inbox.ledger.bot
    hidden = f" ({inbox.hidden} dismissed or allowed)" if inbox.hidden else ""
    if not inbox.pending:
        print(f"egress requests: none{hidden}")
    else:
        print(
            f"egress requests: {inbox.count}{hidden} "
            f"(`cftui proposals {bot} --allow KEY` / `--dismiss KEY`)"
        )
    for r in inbox.pending:
        when = (
            f"first {format_ago((now - r.first_at).total_seconds())}, "
            f"last {format_ago((now - r.last_at).total_seconds())}"
        )
        print(inert(f"  {r.key}  x{r.count}  {when}  {r.attempt}"))
        why = f"outside rule {r.rule!r}" if r.rule else "host not on the allowlist"
        adds = f"--allow adds: {r.suggest}" if r.suggest else "no allowlist entry can admit it"
        print(inert(f"      {why}; {adds}"))
    if inbox.ledger.dropped:
        print(f"  ({inbox.ledger.dropped} older entries dropped by the egress proxy)")
    for note in inbox.notes:
        print(inert(f"  ! {note}"))


def _settle(args: argparse.Namespace, home: FleetHome, bot: str) -> int:
    from cftui.proposals import egress_inbox

    if args.allow is not None:
        result = egress_inbox.allow(home, bot, args.allow)
        if args.json:
            print_json(
                {
                    "bot": bot,
                    "key": result.request.key,
                    "allow": result.pattern,
                    "already": result.already,
                    "applied": result.applied.confirmed,
                }
            )
            return 0
        verb = "was already on" if result.already else "added to"
        print(
            inert(f"{bot}: {result.pattern} {verb} the egress allowlist {_applied(result.applied)}")
        )
        return 0
    if (
        args.window_hours is not None and not 0 <= args.window_hours <= MAX_WINDOW_HOURS
    ):  # also refuses nan
        raise UsageError(f"--window-hours must be between 0 and {MAX_WINDOW_HOURS}")
    window = (
        egress_inbox.DEFAULT_WINDOW
        if args.window_hours is None
        else timedelta(hours=args.window_hours)
    )
    request, settled = egress_inbox.dismiss(home, bot, args.dismiss, window=window)
    if args.json:
        print_json({"bot": bot, "key": request.key, "dismissed": settled.to_json()})
        return 0
    print(
        inert(
            f"{bot}: egress request {request.key} dismissed; it shows again if refused "
            f"more than {window.total_seconds() / 3600:g} h from now"
        )
    )
    return 0


def cmd_proposals(args: argparse.Namespace) -> int:
    from cftui.proposals.egress_inbox import read_inbox
    from cftui.proposals.scan import scan

    home = resolve_home(args)
    bot = home.bot(args.bot)
    if args.allow is not None or args.dismiss is not None:
        return _settle(args, home, bot.name)
    found = scan(home, bot.name)
    inbox = read_inbox(home, bot.name)
    if args.json:
        doc = found.to_json()
        doc["egress"] = [r.to_json() for r in inbox.pending]
        doc["egress_hidden"] = inbox.hidden
        doc["egress_dropped"] = inbox.ledger.dropped
        doc["egress_notes"] = inbox.notes
        print_json(doc)
    else:
        print_proposals(found)
        print_egress(inbox, datetime.now(UTC))
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from cftui.proposals.diff import diff

    home = resolve_home(args)
    bot = home.bot(args.bot)
    text = diff(home, bot.name, args.path)
    # The agent's bytes: escaped line by line, newlines kept.
    sys.stdout.write(inert(text, multiline=True))
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from cftui.proposals import promote, rollout
    from cftui.runtime import Runtimes

    home = resolve_home(args)
    bot = home.bot(args.bot)
    if args.source and (args.paths or args.message):
        raise UsageError("--from takes no PATH or -m: it fast-forwards to the branch as it is")

    async def go() -> promote.PromoteResult:
        runtimes = Runtimes(home)
        try:
            with progress_bar() as progress:
                if args.no_restart:
                    if args.source:
                        return await promote.promote_from(home, bot, args.source, progress=progress)
                    return await promote.promote(
                        home, bot, args.paths, args.message, progress=progress
                    )
                return await rollout.promote_and_roll_out(
                    home,
                    bot,
                    runtimes,
                    args.paths,
                    args.message,
                    source=args.source,
                    progress=progress,
                )
        finally:
            await runtimes.aclose()

    result = run_async(go())
    if args.json:
        print_json(
            {
                "bot": bot.name,
                "commit": result.commit,
                "before": result.before,
                "source": result.source,
                "paths": result.paths,
                "refused": [{"path": r.path, "reason": r.reason} for r in result.refused],
                "snapshot": result.snapshot,
                "rebuilt": result.rebuilt,
                "restarted": result.restarted,
                "notes": result.notes,
            }
        )
        return 0
    what = f"{result.source} " if result.source else ""
    print(
        inert(
            f"{bot.name}: promoted {what}{len(result.paths)} file(s) as "
            f"{result.commit[:12]} (was {result.before[:12]})"
        )
    )
    if result.snapshot:
        print(f"{bot.name}: state saved first as {result.snapshot}")
    for r in result.refused:
        print(inert(f"{bot.name}: not promoted, {r.path}: {r.reason}"))
    if result.rebuilt:
        print(f"{bot.name}: gateway image rebuilt and restarted")
    elif result.restarted:
        print(f"{bot.name}: restarted (the image's build inputs did not change)")
    for note in result.notes:
        print(inert(f"{bot.name}: {note}"))
    return 0


def cmd_reject(args: argparse.Namespace) -> int:
    from cftui.proposals.reject import reject

    home = resolve_home(args)
    bot = home.bot(args.bot)
    done = run_async(reject(home, bot.name, args.paths))
    if args.json:  # "*": every proposal, the tree made the approved code again
        every = done == ["*"]
        print_json({"bot": bot.name, "all": every, "rejected": [] if every else done})
    elif done == ["*"]:
        print(f"{bot.name}: every proposal rejected; the proposals are the approved code again")
    else:
        for path in done:
            print(inert(f"{bot.name}: rejected {path}"))
    return 0


def cmd_drift(args: argparse.Namespace) -> int:
    from cftui.gateway import drift as config_drift

    home = resolve_home(args)
    bot = home.bot(args.bot)
    if args.accept or args.revert:
        keys = run_async(config_drift.settle(home, bot.name, accept=args.accept))
        verb = "accepted" if args.accept else "reverted"
        print(inert(f"{bot.name}: config drift {verb}: {', '.join(keys) or 'whole file'}"))
        if args.revert:
            print(f"{bot.name}: restart it (`cftui restart {bot.name}`) if it runs")
        return 0
    found = config_drift.drift(home, bot.name)
    if args.json:
        print_json(
            {
                "bot": bot.name,
                "drifted": found.drifted,
                "changed": found.changed,
                "approved_recorded": found.approved_recorded,
                "current_valid": found.current_valid,
            }
        )
        return 0
    if not found.approved_recorded:
        print(
            f"{bot.name}: no approved config recorded yet: `cftui drift {bot.name} --accept` "
            "approves the current one"
        )
        return 0
    if not found.drifted:
        print(f"{bot.name}: openclaw.json is the approved version")
        return 0
    print(inert(f"{bot.name}: openclaw.json drifted: {', '.join(found.changed)}"))
    text = config_drift.diff_text(home, bot.name)
    sys.stdout.write(inert(text, multiline=True))
    return 0
