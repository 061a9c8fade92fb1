"""`cftui --readonly` on the command line (issue #23): documented in --help,
meant for the app only, and passed through to it (alone or with --open)."""

from __future__ import annotations

import pytest

from cftui.fleet import FleetHome


def test_help_documents_readonly_and_the_kill_switch(cli) -> None:
    out = " ".join(cli("--help").out.split())
    assert "--readonly" in out and "except the kill switch" in out


@pytest.mark.parametrize("args", [["list"], ["--run", "bot1"], ["stop", "bot1"]])
def test_readonly_with_a_command_is_one_line_exit_2(home: FleetHome, cli, args) -> None:
    assert cli("init", "bot1").code == 0
    result = cli("--readonly", *args)
    assert result.code == 2
    assert "--readonly is for the app" in result.err and result.err.count("\n") == 1


@pytest.mark.parametrize("args", [[], ["--open", "bot1:traffic"]])
def test_readonly_reaches_the_app(home: FleetHome, cli, monkeypatch, args) -> None:
    import cftui.tui.app

    opened: list[tuple[str | None, str | None, bool]] = []

    def run_app(
        home, open_bot=None, open_tab=None, *, read_only=False, keymap=None, early_files=None
    ) -> int:
        opened.append((open_bot, open_tab, read_only))
        return 0

    monkeypatch.setattr(cftui.tui.app, "run_app", run_app)
    assert cli("init", "bot1").code == 0
    assert cli("--readonly", *args).code == 0
    assert opened == [("bot1" if args else None, "traffic" if args else None, True)]
