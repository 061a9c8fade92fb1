"""The MITM capture: `capture on|off` and `decrypt`."""

from __future__ import annotations

import argparse

from cftui.cli.common import add_command, not_yet


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "capture", "turn MITM capture of the egress proxy on or off", cmd_capture)
    p.add_argument("state", choices=("on", "off"))
    p.add_argument("bot")

    p = add_command(
        sub, "decrypt", "the decrypted MITM capture log (nothing is written to disk)", cmd_decrypt
    )
    p.add_argument("bot")
    p.add_argument("--json", action="store_true")


def cmd_capture(args: argparse.Namespace) -> int:
    not_yet("cftui capture")


def cmd_decrypt(args: argparse.Namespace) -> int:
    not_yet("cftui decrypt")
