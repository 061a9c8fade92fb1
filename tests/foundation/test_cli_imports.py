"""Fast start (issue #23): a command imports only what it needs. Checked on
the modules a fresh interpreter has loaded after the command ran, not on
times (no timing assertions in tests: bench/startup.py has the figures)."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cftui.audit.traffic import spend
from cftui.cli import GROUPS, cost_cmds

# What no command pays for unless it uses it: the traffic reader, snapshots
# and the age code, the runtimes and their SDKs, the TUI, the event loop.
HEAVY = (
    "asyncio",
    "textual",
    "docker",
    "asyncssh",
    "cftui.audit.traffic",
    "cftui.snapshots",
    "cftui.age",
    "cftui.runtime.docker",
    "cftui.runtime.lima",
    "cftui.proposals",
    "cftui.tui.app",
)
# What `--version` and `--help` do not need either: not even fleet.toml.
FLEET = ("cftui.fleet", "tomlkit", "orjson", "regex")

PROBE = """
import json, sys
from cftui.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def _loaded(*argv: str, env: dict[str, str] | None = None) -> tuple[int, set[str]]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )
    doc = json.loads(proc.stderr.strip().splitlines()[-1])
    return doc["code"], set(doc["modules"])


def _hits(modules: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes))


@pytest.mark.parametrize("argv", [("--version",), ("--help",), ("traffic", "--help")])
def test_version_and_help_load_neither_the_domain_nor_fleet_toml(argv: tuple[str, ...]) -> None:
    code, modules = _loaded(*argv)
    assert code == 0
    assert _hits(modules, HEAVY + FLEET) == []


# What `cftui list` and `cftui status` of this machine's docker bots do
# without: the docker SDK (requests, urllib3), the event loop, tomlkit.
SDK_LOOP_TOMLKIT = ("docker", "requests", "urllib3", "asyncio", "tomlkit", "asyncssh")


@pytest.mark.parametrize("engine", ["real", "missing"])
@pytest.mark.parametrize("argv", [("list",), ("status",), ("status", "--json"), ("status", "bot1")])
def test_list_and_status_of_local_docker_bots_load_no_sdk_no_loop_no_tomlkit(
    argv: tuple[str, ...], engine: str, tmp_path: Path
) -> None:
    env = {"CLAWFACTORY_HOME": str(tmp_path / "fleet")}
    if engine == "missing":
        env["DOCKER_HOST"] = "unix:///nonexistent/docker.sock"
    assert _loaded("init", "bot1", env=env)[0] == 0
    assert _loaded("init", "bot2", env=env)[0] == 0
    code, modules = _loaded(*argv, env=env)
    assert code == 0
    assert "cftui.fleet" in modules and "cftui.runtime.docker.listing" in modules  # it did the work
    readers = ("textual", "cftui.audit.traffic", "cftui.snapshots", "cftui.age", "cftui.proposals")
    assert _hits(modules, SDK_LOOP_TOMLKIT + readers + ("cftui.runtime.docker.runtime",)) == []
    # Nor the parsers of the other commands.
    others = tuple(f"cftui.cli.{g}" for g in GROUPS if g != "fleet_cmds")
    assert _hits(modules, others) == []


def test_the_plain_list_of_an_unchanged_fleet_parses_no_toml_and_reads_no_disk(
    tmp_path: Path,
) -> None:
    """What the table does not show it does not load: fleet.toml's parse
    comes from its cache, each bot's disk is not read, the runtime interface
    stays unloaded (its states are in cftui.runtime.status)."""
    env = {"CLAWFACTORY_HOME": str(tmp_path / "fleet")}
    assert _loaded("init", "bot1", env=env)[0] == 0
    toml = tmp_path / "fleet" / "fleet.toml"
    os.utime(toml, (toml.stat().st_mtime - 60,) * 2)  # past the cache's racy window
    assert _loaded("list", env=env)[0] == 0  # parses, and keeps the parse
    code, modules = _loaded("list", env=env)
    assert code == 0 and "cftui.runtime.docker.listing" in modules
    unloaded = ("tomllib", "cftui.botdisk", "cftui.loopdisk", "cftui.runtime.base")
    assert _hits(modules, unloaded) == []
    assert "cftui.botdisk" in _loaded("list", "--json", env=env)[1]  # its disk is in the JSON


def test_the_command_groups_are_what_each_module_registers() -> None:
    """`main` builds only the named command's group, found in GROUPS."""
    for group, commands in GROUPS.items():
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(f"cftui.cli.{group}").register(sub)
        assert tuple(sub.choices) == commands, group


@pytest.mark.parametrize(
    ("argv", "groups"),
    [
        (["list"], ("fleet_cmds",)),
        (["--home", "status", "list"], ("fleet_cmds",)),  # a home named "status"
        (["--debug", "snapshot", "list", "bot1"], ("snapshot_cmds",)),
        (["--version"], ()),
        (["--open", "bot1:traffic"], ()),
        (["--help"], tuple(GROUPS)),
        (["lst"], tuple(GROUPS)),  # refused, with every command named
    ],
)
def test_a_command_line_builds_the_parsers_it_names(argv: list[str], groups: tuple) -> None:
    from cftui.cli import _groups_for

    assert _groups_for(argv) == groups


def test_list_pays_for_the_sdk_only_when_the_fleet_has_another_runtime(tmp_path: Path) -> None:
    """A Lima bot (or another host's, or a DOCKER_HOST that is no unix
    socket) takes the runtimes' path, event loop and all."""
    env = {"CLAWFACTORY_HOME": str(tmp_path / "fleet"), "DOCKER_HOST": "tcp://127.0.0.1:1"}
    assert _loaded("init", "bot1", env=env)[0] == 0
    code, modules = _loaded("list", env=env)
    assert code == 0
    assert "asyncio" in modules and "cftui.runtime.docker.runtime" in modules


def test_costs_loads_the_traffic_reader_but_no_runtime(tmp_path: Path) -> None:
    env = {"CLAWFACTORY_HOME": str(tmp_path / "fleet")}
    assert _loaded("init", "bot1", env=env)[0] == 0
    code, modules = _loaded("costs", env=env)
    assert code == 0
    assert "cftui.audit.traffic.spend" in modules
    assert _hits(modules, ("asyncio", "docker", "cftui.runtime.docker", "textual")) == []


def test_the_cli_groupings_are_the_readers() -> None:
    """`costs --by` is parsed without importing the reader: same names."""
    assert cost_cmds.GROUPINGS == spend.GROUPINGS


def test_audit_loads_the_events_reader_only(tmp_path: Path) -> None:
    env = {"CLAWFACTORY_HOME": str(tmp_path / "fleet")}
    assert _loaded("init", "bot1", env=env)[0] == 0
    code, modules = _loaded("audit", env=env)
    assert code == 0 and "cftui.audit.events" in modules
    assert _hits(modules, HEAVY) == []


def test_the_serve_help_names_the_controllers_default_listener(cli) -> None:
    from cftui.controller.settings import DEFAULT_LISTEN

    r = cli("serve", "--help")
    assert r.code == 0 and f"else {DEFAULT_LISTEN})" in " ".join(r.out.split())


def test_the_hosts_help_names_the_probe_timeout(cli) -> None:
    from cftui.runtime.hosts import PROBE_TIMEOUT_S

    r = cli("hosts", "--help")
    assert r.code == 0 and f"(default {PROBE_TIMEOUT_S:g})" in " ".join(r.out.split())


def test_dataclasses_load_without_inspect_and_still_use_it_when_asked() -> None:
    """`cftui.lean_dataclasses`: no command pays for `inspect` to define its
    dataclasses; a class without a docstring (the one use) still gets its
    signature written, through the real module, which then is the only one."""
    probe = """
import json, sys
import cftui.fleet
before = "inspect" in sys.modules
from dataclasses import dataclass
@dataclass
class Bare:
    a: int
import inspect, dataclasses
print(json.dumps({"before": before, "doc": Bare.__doc__,
    "same": dataclasses.inspect.signature is inspect.signature,
    "module": type(sys.modules["inspect"]).__name__}))
"""
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    doc = json.loads(out.stdout)
    assert doc["before"] is False
    assert doc["doc"] == "Bare(a: int)"
    assert doc["same"] and doc["module"] == "module"
