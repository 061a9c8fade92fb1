"""`--json` everywhere a list is printed (issue #23): every command either
has it or is named here with the reason it prints no list, so a new command
fails this test until someone decides."""

from __future__ import annotations

import argparse

from cftui.cli import build_parser

# Commands whose output is no list: one line of what was done, a document of
# its own, an interactive program, or a server.
NO_LIST = {
    "init": "one bot created: its paths and recipient",
    "demo": "opens the app (--no-tui: how to reach the demo fleet)",
    "snapshot create": "one snapshot made",
    "snapshot restore": "one snapshot restored",
    "snapshot rename": "one snapshot renamed",
    "snapshot delete": "how many were deleted",
    "config": "prints openclaw.json itself (a JSON document already)",
    "update": "one update done",
    "shell": "an interactive shell",
    "capture": "one toggle",
    "diff": "a unified diff",
    "serve": "the controller, until stopped (its log on stderr)",
    "move": "one bot moved (a line: from, to, what was carried)",
}


def _commands(
    parser: argparse.ArgumentParser, prefix: str = ""
) -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                nested = _commands(sub, f"{prefix}{name} ")
                found.update(nested or {f"{prefix}{name}": sub})
    return found


def test_every_command_that_prints_a_list_has_json() -> None:
    commands = _commands(build_parser())
    assert set(NO_LIST) <= set(commands), set(NO_LIST) - set(commands)
    missing = [
        name
        for name, sub in commands.items()
        if name not in NO_LIST and "--json" not in sub._option_string_actions
    ]
    assert missing == []
    assert "snapshot list" in commands and "list" in commands  # the walk saw both levels
