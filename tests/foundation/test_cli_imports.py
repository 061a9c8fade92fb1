"""Fast start (issue #23): a command imports only what it needs. Checked on
the modules a fresh interpreter has loaded after the command ran, not on
times (no timing assertions in tests: bench/startup.py has the figures)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cftui.audit.traffic import spend
from cftui.cli import cost_cmds

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


def test_list_loads_the_fleet_and_the_runtime_but_not_the_readers(tmp_path: Path) -> None:
    home = tmp_path / "fleet"
    env = {"CLAWFACTORY_HOME": str(home), "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    assert _loaded("init", "bot1", env=env)[0] == 0
    code, modules = _loaded("list", env=env)
    assert code == 0
    assert "cftui.fleet" in modules and "cftui.runtime.docker" in modules  # it did the work
    readers = ("textual", "cftui.audit.traffic", "cftui.snapshots", "cftui.age", "cftui.proposals")
    assert _hits(modules, readers) == []


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
