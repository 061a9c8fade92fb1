"""`cftui traffic`: the LLM call log of a bot."""

from __future__ import annotations

import argparse

from cftui.cli.common import add_command, not_yet


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "traffic", "the LLM call log, newest last", cmd_traffic)
    p.add_argument("bot")
    p.add_argument("--follow", "-f", action="store_true")
    p.add_argument("--json", action="store_true")


def cmd_traffic(args: argparse.Namespace) -> int:
    not_yet("cftui traffic")
