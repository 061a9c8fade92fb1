"""The `cftui` command: parses, calls the domain, prints. No Textual import
here: the TUI is imported only when the app is opened (`cftui`, `--open`).

Each group of commands lives in its own module with a `register(subparsers)`
that adds its parsers and sets `handler` on them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence

from cfproxies.cli import OneLineParser

from cftui import __version__
from cftui.cli import (
    audit_cmds,
    capture_cmds,
    cost_cmds,
    events_cmds,
    fleet_cmds,
    host_cmds,
    proposal_cmds,
    serve_cmds,
    snapshot_cmds,
    stack_cmds,
)
from cftui.cli.common import add_home_option, fail, resolve_home
from cftui.errors import CftuiError, UsageError

# The app's bot tabs, in key order (1-7); `--open BOT:TAB` names one.
from cftui.tui.tabs import TABS


def build_parser() -> argparse.ArgumentParser:
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
    commands = (
        fleet_cmds,
        host_cmds,
        stack_cmds,
        snapshot_cmds,
        audit_cmds,
        events_cmds,
        cost_cmds,
        capture_cmds,
        proposal_cmds,
        serve_cmds,
    )
    for module in commands:
        module.register(sub)
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
    from cftui.tui.app import run_app  # Textual only here
    from cftui.tui.keymap import load_user_keymap

    keymap = load_user_keymap()  # a bad file: one line, and no app
    return run_app(
        home,
        open_bot=target[0] if target else None,
        open_tab=target[1] if target else None,
        read_only=args.readonly,
        keymap=keymap,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = args.debug or bool(os.environ.get("CFTUI_DEBUG"))
    try:
        if args.readonly and (args.command or args.run):
            raise UsageError("--readonly is for the app: use it alone or with --open")
        if args.command:
            return int(args.handler(args) or 0)
        if args.run:
            return stack_cmds.run_headless(args)
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
