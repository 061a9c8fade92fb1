"""The `cftui` command: parses, calls the domain, prints. No Textual import
here: the TUI is imported only when the app is opened (`cftui`, `--open`).

Each group of commands lives in its own module with a `register(subparsers)`
that adds its parsers and sets `handler` on them. A command line that names
a command builds that command's group only (`COMMANDS`): building all of
them is 30 parsers and ten modules, a fifth of what `cftui list` may spend.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Sequence

from cfproxies.cli import OneLineParser

from cftui import __version__
from cftui.cli.common import add_home_option, fail, resolve_home
from cftui.errors import CftuiError, UsageError

# The app's bot tabs, in key order (1-7); `--open BOT:TAB` names one.
from cftui.tui.tabs import TABS

# The command groups in help order, each with the commands it registers (a
# test checks these against what each module's `register` adds).
GROUPS: dict[str, tuple[str, ...]] = {
    "fleet_cmds": ("init", "delete", "list", "status"),
    "host_cmds": ("hosts", "move"),
    "stack_cmds": ("start", "stop", "restart", "rebuild", "kill", "unlock", "demo"),
    "snapshot_cmds": ("snapshot", "config", "update"),
    "audit_cmds": ("traffic",),
    "events_cmds": ("audit", "logs", "shell"),
    "cost_cmds": ("costs",),
    "capture_cmds": ("capture", "decrypt", "egress"),
    "proposal_cmds": ("proposals", "diff", "promote", "reject", "drift"),
    "serve_cmds": ("serve",),
}
COMMANDS = {command: group for group, commands in GROUPS.items() for command in commands}
# The top-level options that take a value (skipped to find the command).
_VALUED = ("--home", "--open", "--run")


def _groups_for(argv: Sequence[str] | None) -> tuple[str, ...]:
    """The command groups a command line needs: the named command's; none
    for the app, `--run` or `--version`; all of them for help or anything
    argparse must refuse (so its message lists every command)."""
    if argv is None:
        return tuple(GROUPS)
    args = iter(argv)
    for arg in args:
        if arg in _VALUED:
            next(args, None)
        elif arg in ("-h", "--help"):
            return tuple(GROUPS)
        elif not arg.startswith("-"):
            return (COMMANDS[arg],) if arg in COMMANDS else tuple(GROUPS)
    return ()


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser, with every command, or with those `argv` may name."""
    parser = OneLineParser(
        prog="cftui",
        description="Launch, contain, audit and stop a fleet of autonomous AI agents.",
    )
    parser.add_argument("--version", action="version", version=f"cftui {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    add_home_option(parser, top_level=True)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--open", metavar="BOT[:TAB]", help=f"open the app on a bot's tab ({', '.join(TABS)})"
    )
    mode.add_argument(
        "--run", metavar="BOT", help="headless: run a bot's stack until Ctrl-C or SIGTERM"
    )
    parser.add_argument(
        "--readonly",
        action="store_true",
        help=(
            "open the app to look, not act: every key and command that changes a bot "
            "is refused and hidden, except the kill switch (ctrl+k, ctrl+x), since "
            "stopping a runaway bot is always allowed"
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for group in _groups_for(argv):
        importlib.import_module(f"cftui.cli.{group}").register(sub)
    return parser


def _open_target(spec: str) -> tuple[str, str]:
    from cftui.fleet import validate_bot_name

    bot, _, tab = spec.partition(":")
    validate_bot_name(bot)
    tab = tab or "overview"
    if tab not in TABS:
        raise UsageError(f"unknown tab {tab!r}: use one of {', '.join(TABS)}")
    return bot, tab


def _run_app(args: argparse.Namespace) -> int:
    home = resolve_home(args)
    target = _open_target(args.open) if args.open else None
    if target:
        home.bot(target[0])
    from cftui.tui.fleet_files import start_reading

    early_files = start_reading(home)  # the rows, read while Textual is imported
    from cftui.tui.app import run_app  # Textual only here
    from cftui.tui.keymap import load_user_keymap

    keymap = load_user_keymap()  # a bad file: one line, and no app
    return run_app(
        home,
        open_bot=target[0] if target else None,
        open_tab=target[1] if target else None,
        read_only=args.readonly,
        keymap=keymap,
        early_files=early_files,
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    debug = args.debug or bool(os.environ.get("CFTUI_DEBUG"))
    try:
        if args.readonly and (args.command or args.run):
            raise UsageError("--readonly is for the app: use it alone or with --open")
        if args.command:
            return int(args.handler(args) or 0)
        if args.run:
            from cftui.cli.stack_cmds import run_headless

            return run_headless(args)
        return _run_app(args)
    except CftuiError as exc:
        if debug:
            raise
        return fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `cftui traffic | head`: the reader left; that is not an error.
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
