"""Proposals and promotion (CONTRACTS §9): `proposals`, `diff`, `promote`,
`reject`, and `drift` for the gateway's own openclaw.json. Every path and
string here may be the agent's: printed inert."""

from __future__ import annotations

import argparse
import asyncio
import sys

from cftui.cli.common import add_command, print_json, progress_bar, resolve_home
from cftui.errors import UsageError
from cftui.humanize import human_bytes
from cftui.inert import inert
from cftui.proposals.model import Proposals
from cftui.runtime import Runtimes

_MARK = {"added": "A", "changed": "M", "removed": "D"}


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "proposals", "what the bot proposes to change in its code", cmd_proposals)
    p.add_argument("bot")
    p.add_argument("--json", action="store_true")

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

    p = add_command(sub, "reject", "put the bot's proposals back to its approved code", cmd_reject)
    p.add_argument("bot")
    p.add_argument("paths", nargs="*", metavar="PATH", help="only these (default: all)")

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
        print(inert(f"{head}: nothing proposed"))
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
    if found.commits:
        print("agent commits:")
        for commit in found.commits:
            print(inert(f"  {commit.id[:12]} {commit.date} {commit.summary}  ({commit.author})"))
    if found.commits_note:
        print(inert(f"  ({found.commits_note})"))


def cmd_proposals(args: argparse.Namespace) -> int:
    from cftui.proposals.scan import scan

    home = resolve_home(args)
    bot = home.bot(args.bot)
    found = scan(home, bot.name)
    if args.json:
        print_json(found.to_json())
    else:
        print_proposals(found)
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

    result = asyncio.run(go())
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
    done = asyncio.run(reject(home, bot.name, args.paths))
    if done == ["*"]:
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
        keys = asyncio.run(config_drift.settle(home, bot.name, accept=args.accept))
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
