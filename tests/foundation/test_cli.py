"""The CLI shell: every command of CONTRACTS §1, one-line errors, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cftui import locks
from cftui.audit.events import read_events
from cftui.fleet import FleetHome

COMMANDS = [
    ["init"],
    ["list"],
    ["status"],
    ["start"],
    ["stop"],
    ["restart"],
    ["rebuild"],
    ["kill"],
    ["unlock"],
    ["snapshot"],
    ["traffic"],
    ["costs"],
    ["capture"],
    ["decrypt"],
    ["demo"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_every_contract_command_has_help(cli, command: list[str]) -> None:
    result = cli(*command, "--help")
    assert result.code == 0
    assert "--home" in result.out


def test_top_level_help_names_open_and_run(cli) -> None:
    result = cli("--help")
    assert result.code == 0
    assert "--open" in result.out and "--run" in result.out


def test_unknown_command_is_one_line_exit_2(cli) -> None:
    result = cli("frobnicate")
    assert result.code == 2
    assert result.err.count("\n") == 1


def test_unknown_bot_is_one_line_exit_2(home: FleetHome, cli) -> None:
    assert cli("init", "bot1").code == 0
    result = cli("status", "nope")
    assert result.code == 2
    assert "no bot named 'nope'" in result.err and result.err.count("\n") == 1


def test_open_refuses_bad_tab_and_unknown_bot(home: FleetHome, cli) -> None:
    assert cli("init", "bot1").code == 0
    assert cli("--open", "bot1:nonsense").code == 2
    assert cli("--open", "ghost:traffic").code == 2


def test_malformed_fleet_toml_is_one_line_and_left_intact(home: FleetHome, cli) -> None:
    home.root.mkdir(parents=True)
    home.fleet_toml.write_text("[bots.bot1\nruntime = ")
    result = cli("list")
    assert result.code == 1
    assert "not valid TOML" in result.err and result.err.count("\n") == 1
    assert home.fleet_toml.read_text() == "[bots.bot1\nruntime = "


def test_wrong_types_in_fleet_toml_are_reported(home: FleetHome, cli) -> None:
    home.root.mkdir(parents=True)
    home.fleet_toml.write_text('[bots.bot1]\nruntime = "podman"\n')
    result = cli("list")
    assert result.code == 1 and "runtime must be one of" in result.err


def test_list_still_lists_bots_when_no_runtime_answers(
    home: FleetHome, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    assert cli("init", "bot1").code == 0
    assert cli("init", "bot2").code == 0
    result = cli("list")
    assert result.code == 0
    assert "bot1" in result.out and "bot2" in result.out
    assert len(result.err.strip().splitlines()) == 1
    data = json.loads(cli("list", "--json").out)
    assert [d["bot"] for d in data] == ["bot1", "bot2"]
    assert all(d["error"] for d in data)


def test_home_option_and_environment(tmp_path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLAWFACTORY_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert cli("init", "a").code == 0
    assert (tmp_path / "xdg" / "clawfactory" / "fleet.toml").is_file()
    assert cli("init", "b", "--home", str(tmp_path / "other")).code == 0
    assert (tmp_path / "other" / "fleet.toml").is_file()
    monkeypatch.setenv("CLAWFACTORY_HOME", str(tmp_path / "env"))
    assert cli("init", "c").code == 0
    assert (tmp_path / "env" / "fleet.toml").is_file()


def test_kill_locks_and_start_refuses_until_unlock(home: FleetHome, cli) -> None:
    assert cli("init", "bot1").code == 0
    cli("kill", "bot1")  # whatever the runtime says, the lock must hold
    assert locks.is_locked(home, "bot1")
    result = cli("start", "bot1")
    assert result.code == 1
    assert "locked" in result.err and "cftui unlock bot1" in result.err
    assert cli("unlock", "bot1").code == 0
    assert not locks.is_locked(home, "bot1")
    actions = [e["action"] for e in read_events(home)]
    assert "kill" in actions and actions[-1] == "unlock"


def test_kill_needs_bots_or_all(home: FleetHome, cli) -> None:
    assert cli("init", "bot1").code == 0
    assert cli("kill").code == 2
    assert not locks.is_locked(home, "bot1")


def test_kill_refuses_a_bad_name_without_locking_anything(home: FleetHome, cli) -> None:
    assert cli("init", "bot1").code == 0
    assert cli("kill", "bot1", "BAD").code == 2
    assert locks.locked_bots(home) == []


def test_headless_commands_never_import_textual() -> None:
    """`cftui --run` and every non-TUI command stay free of Textual (STYLE.md)."""
    code = (
        "import importlib, pkgutil, sys, cftui\n"
        "names = [m.name for m in pkgutil.walk_packages(cftui.__path__, 'cftui.')\n"
        "         if not m.name.startswith(('cftui.tui', 'cftui.__main__'))]\n"
        "for n in names: importlib.import_module(n)\n"
        "bad = [m for m in sys.modules if m == 'textual' or m.startswith('textual.')]\n"
        "print(len(names)); sys.exit(1 if bad else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr or "textual was imported by a non-TUI module"
    assert int(proc.stdout) >= 10


@pytest.mark.parametrize(
    "args",
    [("list",), ("status",), ("kill", "--all"), ("snapshot", "list", "bot1"), ("traffic", "bot1")],
)
def test_a_mistyped_home_says_so_exit_2(tmp_path, cli, monkeypatch, args: tuple) -> None:
    """A home that does not exist was an empty fleet, exit 0 (issue #22)."""
    monkeypatch.delenv("CLAWFACTORY_HOME", raising=False)
    missing = tmp_path / "nonexistent" / "dir"
    r = cli("--home", str(missing), *args)
    assert r.code == 2, r
    assert r.err.strip() == (
        f"cftui: no fleet home at {missing} (--home): check the path, "
        "or make one there with `cftui init BOT`"
    )
    assert not missing.exists()
    monkeypatch.setenv("CLAWFACTORY_HOME", str(missing))
    r = cli(*args)
    assert r.code == 2 and "(CLAWFACTORY_HOME)" in r.err and len(r.err.splitlines()) == 1
    assert not missing.exists()
    assert cli("init", "bot1").code == 0  # init makes it
    assert cli("list").code == 0 and "bot1" in cli("list").out
