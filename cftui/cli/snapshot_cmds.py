"""Snapshots (`snapshot create|list|restore|rename|delete`), the gateway's
configuration (`config`) and source updates (`update`)."""

from __future__ import annotations

import argparse

from cftui.cli.common import add_command, not_yet


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "snapshot", "encrypted snapshots of a bot's state", cmd_snapshot)
    p.add_argument("action", choices=("create", "list", "restore", "rename", "delete"))
    p.add_argument("bot")
    p.add_argument("names", nargs="*")

    p = add_command(sub, "config", "show or change the gateway's openclaw.json", cmd_config)
    p.add_argument("bot")

    p = add_command(sub, "update", "fetch the gateway source's upstream and rebuild", cmd_update)
    p.add_argument("bot")


def cmd_snapshot(args: argparse.Namespace) -> int:
    not_yet("cftui snapshot")


def cmd_config(args: argparse.Namespace) -> int:
    not_yet("cftui config")


def cmd_update(args: argparse.Namespace) -> int:
    not_yet("cftui update")
