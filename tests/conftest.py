"""Fixtures every test area shares: a fresh fleet home, the `cftui` CLI run
in-process, and the real Docker engine (which must be there under CI)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cftui.cli import main as cftui_main
from cftui.fleet import FleetHome
from tests import parallel

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.hookimpl(tryfirst=True)  # before xdist's own, which reads the group marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The groups of tests/parallel.py `GROUPS`, as `xdist_group` marks."""
    for item in items:
        group = parallel.group_of(item.nodeid.split("::", 1)[0])
        if group is not None and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(group))


class _Schedule:
    @pytest.hookimpl
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: object) -> object:
        if config.getvalue("dist") != "loadgroup":
            return None
        return parallel.make_scheduler(config, log)


def pytest_configure(config: pytest.Config) -> None:
    # A plugin of its own: without xdist (`-p no:xdist`) its hook is unknown.
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_Schedule(), "cftui-schedule")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FleetHome:
    """An empty fleet home; CLAWFACTORY_HOME points at it."""
    root = tmp_path / "fleet"
    monkeypatch.setenv("CLAWFACTORY_HOME", str(root))
    return FleetHome(root)


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run `cftui ARGS...` in-process; returns exit code, stdout, stderr."""

    def run(*args: str) -> CliResult:
        try:
            code = cftui_main(list(args))
        except SystemExit as exc:  # argparse exits on bad usage and --help
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def docker_client() -> Iterator[object]:
    """The real Docker engine. Under CI a missing engine fails, never skips."""
    import docker

    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"Docker engine required under CI but not reachable: {exc}")
        pytest.skip(f"Docker engine not reachable: {exc}")
    yield client
    client.close()
