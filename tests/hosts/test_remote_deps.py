"""Declared dependencies of a bot on another Docker host (#21, #24), against
a real host (a network-namespace engine with its own sshd) and a registry
of the test's own on that host: the npm registry stand-in in a container
on the bot's outside network there, where only the bot's egress proxy
reaches it, listed in its allowlist.

The approved `workspace/<bot>_save/package.json` (and `.npmrc`, naming the
registry) is installed into the host's `state/installed/`, where the
gateway there sees it, by an installer container on the host's engine
(the image made here and sent over the link); npm's output comes to this
machine's `logs/<bot>/installer.log`. A second start installs nothing. A
link the agent planted in the host's `state/` refuses the install in one
line and nothing outside is touched; a failing npm (a registry off the
allowlist) fails the start in one line naming `cftui logs BOT installer`,
and keeps the previous install.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pytest

from cftui import lifecycle
from cftui.botinit import init_bot
from cftui.deps import declared
from cftui.errors import CftuiError
from cftui.fleet import FleetHome
from cftui.hosts.layout import HostLayout
from cftui.progress import ProgressEvent
from cftui.runtime import Runtimes
from cftui.runtime.docker.spec import LABEL_BOT, container_name
from cftui.runtime.gateway_uid import gateway_user
from cftui.runtime.images.catalog import INSTALLER_IMAGE
from tests.fakes.npm_registry import PACKAGE, VERSION, Registry, manifest, run_registry
from tests.hosts.conftest import _make_host, operator_fleet
from tests.hosts.testhost import TestHost
from tests.runtime_docker.helpers import commit_declared, free_port, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1200)]

BOT = "depbot"
BASE = "clawfactory/base:bookworm"  # the registry stand-in's image


@pytest.fixture(scope="module")
def deps_host(operator_ssh: Path) -> Iterator[TestHost]:
    """A host of this module's own (netns cfh24d): others' tests may run at once."""
    yield from _make_host(operator_ssh, "cfh24d", 24)


@dataclass
class RemoteDeps:
    home: FleetHome
    host: TestHost
    layout: HostLayout
    registry: Registry

    @property
    def state(self) -> Path:
        """The bot's state/ on the host (the namespace host shares this machine's disk)."""
        return Path(str(self.layout.state_dir(BOT)))

    @property
    def package(self) -> Path:
        return self.state / "installed" / "node_modules" / PACKAGE / "package.json"

    def start(self) -> list[ProgressEvent]:
        events: list[ProgressEvent] = []

        async def go() -> None:
            runtimes = Runtimes(self.home)
            try:
                bot = self.home.bot(BOT)
                await lifecycle.stop(self.home, bot, runtimes)
                await lifecycle.start(self.home, bot, runtimes, events.append)
            finally:
                await runtimes.aclose()

        asyncio.run(go())
        return events

    def commit_save(self, files: dict[str, str]) -> None:
        """A new approved dependency list (a commit on the approved branch)."""
        commit_declared(self.home.code_dir(BOT), BOT, files)

    def logs(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cftui", "logs", BOT, "installer", "--home", str(self.home.root)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip


@pytest.fixture(scope="module")
def remote(
    deps_host: TestHost, operator_ssh: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RemoteDeps]:
    """A demo-agent bot on the host declaring one dependency, and the
    registry stand-in on its outside network there (made ahead of its
    start, which adopts it)."""
    import docker

    mp = pytest.MonkeyPatch()
    home = operator_fleet(
        mp, operator_ssh, deps_host, tmp_path_factory.mktemp("remote-deps") / "fleet"
    )
    root = deps_host.root / "cf"
    subprocess.run(
        f"docker save {BASE} | DOCKER_HOST={deps_host.docker_host} docker load",
        shell=True, check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    client = docker.DockerClient(base_url=deps_host.docker_host, timeout=120)
    ext = f"cf-{BOT}-ext"
    client.networks.create(ext, driver="bridge", labels={LABEL_BOT: BOT})
    registry = run_registry(client, ext, "cfrd-registry", {}, wait_for)
    with resources.as_file(resources.files("cftui") / "templates" / "demo-agent") as src:
        init_bot(home, BOT, code=str(src), gateway="generic", host="h2")
    bot = home.update_bot(BOT, gateway_port=free_port(), egress_allow=[registry.key])
    with home.gateway_env(BOT).open("a") as f:
        f.write("DEMO_INTERVAL_S=3600\n")  # no LLM calls needed here
    deps = RemoteDeps(home, deps_host, HostLayout(root), registry)
    deps.commit_save(
        {"package.json": manifest(**{PACKAGE: VERSION}), ".npmrc": f"registry={registry.url}\n"}
    )
    assert bot.host == "h2"
    try:
        yield deps
    finally:
        mp.undo()
        client.close()
        subprocess.run(["docker", "image", "rm", "-f", "--no-prune", f"clawfactory/gateway-{BOT}:latest"],
                       capture_output=True)  # fmt: skip


def test_the_dependency_is_installed_on_the_host_through_its_egress(remote: RemoteDeps):
    events = remote.start()
    assert any("dependencies installed" in e.message for e in events), events
    assert json.loads(remote.package.read_text())["version"] == VERSION
    assert f"/{PACKAGE}" in remote.registry.gets()
    assert any(g.endswith(".tgz") for g in remote.registry.gets())
    # The gateway's user made it, and the marker of the approved list is there.
    assert os.stat(remote.package).st_uid == gateway_user()[0]
    marker = remote.state / "installed" / ".cftui-deps.json"
    assert len(json.loads(marker.read_text())["digest"]) == 64
    assert sorted(p.name for p in remote.state.iterdir() if p.name.startswith(".installed")) == []
    # The gateway on the host sees it where its state is mounted.
    seen = remote.host.docker("exec", container_name(BOT, "gateway"), "python3", "-c",
                   f"print(open('/state/installed/node_modules/{PACKAGE}/package.json').read())")  # fmt: skip
    assert json.loads(seen.stdout)["version"] == VERSION
    # The installer ran on the host's engine (its image sent there), not this machine's.
    assert remote.host.docker("image", "inspect", INSTALLER_IMAGE).returncode == 0
    assert not (remote.home.state_dir(BOT) / "installed").exists()
    # npm's output kept on this machine for `cftui logs BOT installer`.
    out = remote.logs()
    assert out.returncode == 0, out.stderr
    assert "cftui: npm install of " in out.stdout and ": exit 0" in out.stdout, out.stdout
    assert "added 1 package" in out.stdout, out.stdout
    assert remote.home.installer_log(BOT).stat().st_mode & 0o777 == 0o600


def test_an_unchanged_list_is_not_installed_again(remote: RemoteDeps):
    before = os.stat(remote.state / "installed")
    fetched = len(remote.registry.gets())
    events = remote.start()
    assert any("dependencies unchanged" in e.message for e in events), events
    after = os.stat(remote.state / "installed")
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert len(remote.registry.gets()) == fetched


@pytest.mark.parametrize("planted", ["installed", ".installed-new"])
def test_a_link_the_agent_planted_in_state_is_refused_in_one_line(
    remote: RemoteDeps, tmp_path: Path, planted: str
):
    """`state/installed -> <a root-owned directory>` (holding a marker that
    claims the new list is installed) or `state/.installed-new -> /`: the
    start fails in one line, the link stays a link, and nothing it points
    at is touched."""
    # A new approved list, so that the install runs.
    spec = "~1.3.0" if planted == "installed" else ">=1.3.0"
    remote.commit_save({"package.json": manifest(**{PACKAGE: spec})})
    if planted == "installed":
        outside = tmp_path / "outside"
        outside.mkdir(mode=0o755)
        (outside / "keep").write_text("keep")
        digest = declared.approved_deps(remote.home.code_dir(BOT), BOT).digest()
        (outside / ".cftui-deps.json").write_text(json.dumps({"digest": digest}))
    else:
        outside = Path("/")
    before = sorted(os.listdir(outside))
    before_mtime = os.stat(outside).st_mtime_ns
    # The real install set aside (this test's doing, as root).
    aside = remote.state.parent / "installed.test-aside"
    real = remote.state / "installed"
    if planted == "installed":
        real.rename(aside)
    link = remote.state / planted
    link.symlink_to(outside)
    os.chown(link, *gateway_user(), follow_symlinks=False)  # the agent's
    try:
        with pytest.raises(CftuiError) as err:
            remote.start()
        message = str(err.value)
        assert "\n" not in message, message
        assert f"{BOT}: host h2's state/{planted} is a symbolic link" in message, message
        assert "refused" in message, message
        assert link.is_symlink() and os.readlink(link) == str(outside)
        assert sorted(os.listdir(outside)) == before
        assert os.stat(outside).st_mtime_ns == before_mtime
        if planted == "installed":
            assert (outside / "keep").read_text() == "keep"
        else:
            assert real.is_dir() and not real.is_symlink()  # the previous install kept
    finally:
        link.unlink()
        if aside.exists():
            aside.rename(real)


def test_a_failing_npm_fails_the_start_in_one_line(remote: RemoteDeps):
    """A registry off the allowlist: the egress refuses npm, which fails;
    the start fails with npm's reason in one line and the previous install
    stays."""
    remote.home.update_bot(BOT, egress_allow=["registry.npmjs.org"])
    remote.commit_save({"package.json": manifest(**{PACKAGE: "^1.3.0"})})
    before = os.stat(remote.state / "installed").st_ino
    try:
        with pytest.raises(CftuiError) as err:
            remote.start()
    finally:
        remote.home.update_bot(BOT, egress_allow=[remote.registry.key])
    reason = str(err.value)
    assert "\n" not in reason and "installing its dependencies failed" in reason, reason
    assert reason.endswith(f"(cftui logs {BOT} installer)"), reason
    assert "403" in reason or "Forbidden" in reason or "refused" in reason.lower(), reason
    assert os.stat(remote.state / "installed").st_ino == before
    assert not (remote.state / ".installed-new").exists()
    log = remote.logs().stdout
    assert "npm ERR!" in log or "npm error" in log, log
    assert ": exit 0" not in log, log  # this install's log replaced the last
