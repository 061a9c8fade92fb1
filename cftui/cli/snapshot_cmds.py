"""Snapshots (`snapshot create|list|restore|rename|delete`), the gateway's
configuration (`config`) and source updates (`update`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from cfproxies.cli import OneLineParser

from cftui.cli.common import (
    add_command,
    add_home_option,
    print_json,
    progress_bar,
    resolve_home,
    run_async,
    warn,
)
from cftui.errors import CftuiError, UsageError
from cftui.humanize import human_bytes
from cftui.inert import inert, inert_json_text

if TYPE_CHECKING:
    from cftui.fleet import BotConfig, FleetHome
    from cftui.progress import Progress
    from cftui.runtime import Runtimes
    from cftui.runtime.base import Runtime

T = TypeVar("T")


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "snapshot", "encrypted snapshots of a bot's state", None)
    actions = p.add_subparsers(
        dest="action", metavar="ACTION", parser_class=OneLineParser, required=True
    )

    def action(name: str, help_text: str, handler) -> argparse.ArgumentParser:
        ap = actions.add_parser(name, help=help_text, description=help_text)
        add_home_option(ap)
        ap.set_defaults(handler=handler)
        ap.add_argument("bot")
        return ap

    ap = action("create", "archive and encrypt the bot's state", cmd_create)
    ap.add_argument("label", nargs="?", default="manual")
    ap = action("list", "the bot's snapshots, newest first", cmd_list)
    ap.add_argument("--json", action="store_true")
    ap = action("restore", "restore a snapshot (the gateway is stopped and restarted)", cmd_restore)
    ap.add_argument("name", nargs="?", metavar="NAME|latest")
    ap.add_argument("--yes", action="store_true", help="restore the latest without asking")
    ap = action("rename", "give a snapshot a new label", cmd_rename)
    ap.add_argument("old", metavar="NAME")
    ap.add_argument("new", metavar="LABEL")
    ap = action("delete", "delete a snapshot, or all of them with --all", cmd_delete)
    ap.add_argument("name", nargs="?", metavar="NAME")
    ap.add_argument("--all", action="store_true", help="every snapshot of the bot")
    ap.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    p = add_command(sub, "config", "show or change the gateway's openclaw.json", cmd_config)
    p.add_argument("bot")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a dotted key to a JSON value (repeatable), e.g. gateway.port=18789",
    )
    p.add_argument("--edit", action="store_true", help="edit in $EDITOR, validated before saving")
    p.add_argument("--revert", action="store_true", help="bring back the known-good config")
    p.add_argument("--reveal", action="store_true", help="show credentials instead of masking")

    p = add_command(sub, "update", "fetch the gateway source's upstream and rebuild", cmd_update)
    p.add_argument("bot")
    p.add_argument("--force", action="store_true", help="update despite uncommitted changes")


async def _reachable_runtime(home: FleetHome, bot: BotConfig) -> tuple[Runtimes, Runtime | None]:
    """The bot's runtime if it answers; None (said once on stderr) otherwise."""
    from cftui.runtime import Runtimes

    runtimes = Runtimes(home)
    try:
        runtime = runtimes.for_bot(bot)
        await runtime.check()
        return runtimes, runtime
    except CftuiError as exc:
        warn(f"{exc}; going on without the runtime")
        return runtimes, None


def _run_with_runtime(
    home: FleetHome, bot: BotConfig, operation: Callable[[Runtime | None, Progress], Awaitable[T]]
) -> T:
    """Run `operation(runtime, progress)` with the bot's runtime if it answers,
    a progress bar, and the runtime's connections closed afterwards."""

    async def go() -> T:
        runtimes, runtime = await _reachable_runtime(home, bot)
        try:
            with progress_bar() as progress:
                return await operation(runtime, progress)
        finally:
            await runtimes.aclose()

    return run_async(go())


def cmd_create(args: argparse.Namespace) -> int:
    from cftui import snapshots

    home = resolve_home(args)
    bot = home.bot(args.bot)

    if bot.runtime == "docker" and bot.host == "local":  # state/ is here: no runtime needed
        with progress_bar() as progress:
            info = snapshots.create_snapshot(home, bot.name, args.label, progress=progress)
    else:
        info = _run_with_runtime(
            home,
            bot,
            lambda runtime, progress: snapshots.snapshot(
                home, bot, args.label, runtime=runtime, progress=progress
            ),
        )
    print(f"{bot.name}: created {info.name} ({human_bytes(info.size)})")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from cftui import snapshots

    home = resolve_home(args)
    bot = home.bot(args.bot)
    snaps = snapshots.list_snapshots(home, bot.name)
    if args.json:
        print_json(
            [
                {
                    "name": s.name,
                    "label": s.label,
                    "created": s.created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "size": s.size,
                    "latest": s.latest,
                }
                for s in snaps
            ]
        )
        return 0
    if not snaps:
        print(f"{bot.name} has no snapshots (create one: cftui snapshot create {bot.name})")
        return 0
    labels = [inert(s.label) for s in snaps]
    width = max(map(len, labels))
    for s, label in zip(snaps, labels, strict=True):
        when = s.created.strftime("%Y-%m-%d %H:%M:%S UTC")
        mark = "  <- latest" if s.latest else ""
        print(f"{when}  {human_bytes(s.size):>10}  {label:<{width}}  {inert(s.name)}{mark}")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from cftui import snapshots

    home = resolve_home(args)
    bot = home.bot(args.bot)
    name = args.name or "latest"
    path = snapshots.resolve(home, bot.name, name)  # a bad name fails before anything
    if args.name is None and not args.yes:
        # Named, the restore is the operator's decision; unnamed, it is
        # whatever is newest, so it asks (scripts name it or add --yes).
        what = f"{bot.name}'s latest snapshot, {inert(path.name)}"
        if not sys.stdin.isatty():
            raise UsageError(f"restore {what}? name it, or add --yes")
        question = (
            f"Restore {what}? Its state is replaced (the current one is kept as a "
            "pre-restore snapshot) and a running gateway restarted."
        )
        if not _confirm(question):
            print("nothing restored")
            return 1

    result = _run_with_runtime(
        home,
        bot,
        lambda runtime, progress: snapshots.restore(
            home, bot, name, runtime=runtime, progress=progress
        ),
    )
    print(f"{bot.name}: restored {inert(result.name)}")
    if result.safety:
        print(f"{bot.name}: the state before it is kept as {inert(result.safety)}")
    if result.gateway_restarted:
        print(f"{bot.name}: gateway restarted")
    for note in result.notes:  # may name what the archive (the agent's state) held
        print(f"{bot.name}: {inert(note)}")
    return 0


def cmd_rename(args: argparse.Namespace) -> int:
    from cftui import snapshots

    home = resolve_home(args)
    bot = home.bot(args.bot)
    new = snapshots.rename(home, bot.name, args.old, args.new)
    print(f"{bot.name}: renamed to {inert(new)}")
    return 0


def _confirm(question: str) -> bool:
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def cmd_delete(args: argparse.Namespace) -> int:
    from cftui import snapshots

    home = resolve_home(args)
    bot = home.bot(args.bot)
    if args.all:
        if args.name:
            raise UsageError("give either a snapshot name or --all, not both")
        count = len(snapshots.list_snapshots(home, bot.name))
        if not count:
            print(f"{bot.name} has no snapshots")
            return 0
        if not args.yes:
            if not sys.stdin.isatty():
                raise UsageError(f"refusing to delete all {count} snapshots without --yes")
            if not _confirm(f"Delete all {count} snapshots of {bot.name}?"):
                print("nothing deleted")
                return 1
        deleted = snapshots.delete_all(home, bot.name)
        print(f"{bot.name}: deleted {deleted} snapshot(s)")
        return 0
    if not args.name:
        raise UsageError("name the snapshot to delete (see `cftui snapshot list`), or use --all")
    snapshots.delete(home, bot.name, args.name)
    print(f"{bot.name}: deleted {inert(args.name)}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from cftui.gateway import config as gateway_config

    home = resolve_home(args)
    bot = home.bot(args.bot)
    chosen = sum((bool(args.set), args.edit, args.revert))
    if chosen > 1:
        raise UsageError("use one of --set, --edit or --revert at a time")
    if args.set:
        changed = gateway_config.set_keys(home, bot.name, args.set)
        print(
            f"{bot.name}: " + (inert(f"changed {', '.join(changed)}") if changed else "no change")
        )
        return 0
    if args.edit:
        written = gateway_config.edit(home, bot.name)
        print(f"{bot.name}: " + ("config saved" if written else "no change"))
        return 0
    if args.revert:
        gateway_config.revert(home, bot.name)
        print(f"{bot.name}: reverted to the known-good config")
        return 0
    path = gateway_config.config_path(home, bot.name)
    if not path.exists():
        print(f"{bot.name} has no {path.name} yet (the gateway writes one on first start)")
        return 0
    # The gateway writes this file: its strings may hold what JSON leaves raw.
    sys.stdout.write(inert_json_text(gateway_config.show(home, bot.name, reveal=args.reveal)))
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    from cftui import update
    from cftui.runtime import Runtimes

    home = resolve_home(args)
    bot = home.bot(args.bot)

    async def go() -> update.UpdateResult:
        runtimes = Runtimes(home)
        try:
            with progress_bar() as progress:
                return await update.update(home, bot, runtimes, force=args.force, progress=progress)
        finally:
            await runtimes.aclose()

    result = run_async(go())
    if result.changed:
        print(
            inert(
                f"{bot.name}: code {result.before[:12]} -> {result.after[:12]} ({result.upstream})"
            )
        )
    if result.snapshot:
        print(f"{bot.name}: state saved first as {result.snapshot}")
    if result.rebuilt:
        print(f"{bot.name}: gateway rebuilt")
    for note in result.notes:
        print(f"{bot.name}: {inert(note)}")
    return 0
