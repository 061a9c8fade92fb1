"""Fixtures of the hosts tests: the operator's own SSH identity (a HOME of
the test's making, with `~/.ssh/id_ed25519` and `known_hosts`) and remote
Docker hosts in network namespaces (tests/hosts/testhost.py)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cftui.fleet import FleetHome
from tests.conftest import IN_CI
from tests.hosts.names import host_names
from tests.hosts.testhost import HostUnavailable, TestHost


@pytest.fixture(scope="module")
def operator_ssh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A HOME whose ~/.ssh holds the operator's key (known_hosts filled by tests)."""
    home = tmp_path_factory.mktemp("operator")
    ssh = home / ".ssh"
    ssh.mkdir(mode=0o700)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ssh / "id_ed25519")],
        check=True,
    )
    (ssh / "known_hosts").write_text("")
    return home


def _make_host(operator_ssh: Path, netns: str, index: int) -> Iterator[TestHost]:
    """The host `netns` at `index` of 10.250.21.0/24; under xdist, worker N's
    own copy (namespace `<netns>wN`, 10.250.<100+N>.0/24), so that two
    workers never build one namespace; and a spare copy (`<netns>pK`,
    10.250.<40+K>.0/24) while another live run holds those (names.py)."""
    names = host_names()
    netns = f"{netns}{names.suffix}"
    host = TestHost(netns, index, Path(f"/tmp/cf-host-{netns}"), subnet=names.subnet)
    host.close()  # what a killed earlier run of this test left (only our own names)
    try:
        host.build((operator_ssh / ".ssh" / "id_ed25519.pub").read_text())
    except (HostUnavailable, subprocess.CalledProcessError) as exc:
        host.close()
        if IN_CI:
            pytest.fail(f"a test host is required under CI: {exc}")
        pytest.skip(f"cannot build a test host: {exc}")
    with (operator_ssh / ".ssh" / "known_hosts").open("a") as f:
        f.write(host.known_hosts_line() + "\n")
    try:
        yield host
    finally:
        host.close()


@pytest.fixture(scope="module")
def remote_host(operator_ssh: Path) -> Iterator[TestHost]:
    """One remote host (netns cfh21a, 10.250.21.2 outside xdist), known to the operator."""
    yield from _make_host(operator_ssh, "cfh21a", 0)


@pytest.fixture(scope="module")
def second_host(operator_ssh: Path) -> Iterator[TestHost]:
    """Another (netns cfh21b, 10.250.21.6)."""
    yield from _make_host(operator_ssh, "cfh21b", 1)


def operator_env(mp: pytest.MonkeyPatch, operator_ssh: Path) -> None:
    """HOME is the operator's, so that asyncssh (and ssh) read their ~/.ssh,
    and no agent of the machine's offers other keys."""
    mp.setenv("HOME", str(operator_ssh))
    mp.delenv("SSH_AUTH_SOCK", raising=False)


def operator_fleet(
    mp: pytest.MonkeyPatch, operator_ssh: Path, host: TestHost, at: Path
) -> FleetHome:
    """A module's fleet home at `at` (CLAWFACTORY_HOME) with `host` as host
    `h2`, bots under its `cf/`, in the operator's environment."""
    operator_env(mp, operator_ssh)
    home = FleetHome(at)
    mp.setenv("CLAWFACTORY_HOME", str(home.root))
    home.root.mkdir(parents=True)
    home.fleet_toml.write_text(host.fleet_entry("h2", host.root / "cf"))
    return home


@pytest.fixture
def as_operator(operator_ssh: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The operator's environment for one test (`operator_env`)."""
    operator_env(monkeypatch, operator_ssh)
    return operator_ssh
