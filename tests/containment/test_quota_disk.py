"""Issue 15, "/state and /code have no disk quota": a Docker bot's tree
lives on a loop-mounted ext4 image of the size `disk` in fleet.toml asks
(cftui.loopdisk, cftui.botdisk).

Played as the agent: a real gateway writing until the kernel says ENOSPC,
while the host, the proxies' audit/ and the other bot go on. Played as the
host: an existing tree moved onto its image at the next start with nothing
lost, a move that dies half-way leaving the tree whole, a reboot that leaves
the image unmounted (nothing may read the empty directory under it, Docker's
restart policy included), growth, a non-root cftui, and delete releasing the
loop device. Every test unmounts and detaches what it made, even on failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cftui import botdisk, killswitch, lifecycle, loopdisk
from cftui.audit.events import read_events
from cftui.botinit import init_bot
from cftui.errors import DiskError
from cftui.fleet import BotConfig, FleetHome
from cftui.runtime import Runtimes
from cftui.runtime.docker.runtime import DockerRuntime
from tests.runtime_docker.helpers import World, wait_for

DISK = "48MiB"
DISK_BYTES = 48 << 20

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(autouse=True)
def _needs_root() -> None:
    if os.geteuid() != 0 or loopdisk.unavailable_reason() is not None:
        why = loopdisk.unavailable_reason() or "not root"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"the disk bound needs root and loop devices: {why}")
        pytest.skip(f"the disk bound needs root and loop devices: {why}")


def sweep(root: Path) -> None:
    """Unmount and detach every image under `root`, thaw what was frozen:
    whatever a test left, even one that failed half-way."""
    prefix = os.path.realpath(root) + os.sep
    with open("/proc/self/mountinfo") as fh:
        points = [line.split()[4] for line in fh]
    for point in sorted((p for p in points if p.startswith(prefix)), reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)
    for entry in Path("/sys/block").glob("loop*"):
        with contextlib.suppress(OSError):
            if (entry / "loop" / "backing_file").read_text().startswith(prefix):
                subprocess.run(["losetup", "-d", f"/dev/{entry.name}"], check=False)
    for marker in root.glob(f"**/{loopdisk.MARKER}"):
        with contextlib.suppress(OSError):
            loopdisk._set_immutable(marker.parent, False)


def loops_of(image: Path) -> list[str]:
    out = subprocess.run(["losetup", "-j", str(image)], capture_output=True, text=True).stdout
    return [line.split(":")[0] for line in out.splitlines()]


def manifest(tree: Path) -> dict[str, tuple]:
    """Every entry of a tree: type, mode, owner, and content or link target."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(tree):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                body: object = os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as fh:
                    body = hashlib.sha256(fh.read()).hexdigest()
            else:
                body = None
            out[os.path.relpath(path, tree)] = (st.st_mode, st.st_uid, st.st_gid, body)
    return out


def fill_state(home: FleetHome, bot: str) -> None:
    """What an agent leaves in a tree: nested files, a private one, a link
    out, files of the gateway's uid, a file with holes."""
    state = home.state_dir(bot)
    (state / "agents" / "main" / "agent").mkdir(parents=True)
    (state / "openclaw.json").write_text('{"agents": {}}\n')
    (state / "agents" / "main" / "agent" / "models.json").write_text("{}\n")
    secret = state / "private.txt"
    secret.write_text("only mine\n")
    os.chmod(secret, 0o600)
    (state / "link-out").symlink_to("/etc/shadow")
    (state / "memory").mkdir()
    (state / "memory" / "notes.md").write_bytes(os.urandom(3 << 20))
    with open(state / "sparse.bin", "wb") as fh:
        fh.seek(8 << 20)
        fh.write(b"end")
    os.chown(state / "memory", 70_000, 70_000)
    os.chown(state / "memory" / "notes.md", 70_000, 70_000)


# --- on the host: the move, crashes, reboots, growth, delete ----------------------
@dataclass
class Host:
    home: FleetHome
    bot: str
    runtime: DockerRuntime

    @property
    def image(self) -> Path:
        return self.home.disk_image(self.bot)

    @property
    def tree(self) -> Path:
        return self.home.bot_repo(self.bot, mount=False)

    def prepare(self) -> list[str]:
        return asyncio.run(
            botdisk.prepare_for_start(self.home, self.home.bot(self.bot), self.runtime)
        )


@pytest.fixture
def host(docker_client: Any, tmp_path: Path) -> Iterator[Host]:
    """A bot made by `cftui init` with state an agent would leave, its tree
    still a plain directory (as every bot's was before the bound)."""
    home = FleetHome(tmp_path / "home")
    init_bot(home, "qbot", code=str(Path(__file__).parents[2] / "cftui/templates/demo-agent"))
    home.update_bot("qbot", disk=DISK)
    fill_state(home, "qbot")
    runtime = DockerRuntime(home, docker_client)
    try:
        yield Host(home, "qbot", runtime)
    finally:
        with contextlib.suppress(Exception):
            botdisk.delete(home, "qbot")
        sweep(tmp_path)
        asyncio.run(runtime.aclose())


def test_quota_an_existing_tree_moves_onto_its_disk_at_the_next_start_intact(host: Host):
    before = manifest(host.tree)
    assert loopdisk.state_of(host.image, host.tree) == "plain"
    assert host.prepare() == []
    assert loopdisk.state_of(host.image, host.tree) == "mounted"
    assert manifest(host.tree) == before  # links as links, owners, modes, bytes
    assert os.lstat(host.tree).st_mode & 0o777 == 0o700
    assert not (host.tree / "lost+found").exists()
    use = loopdisk.usage(host.tree)
    assert DISK_BYTES * 0.8 < use.size <= DISK_BYTES
    assert os.stat(host.image).st_mode & 0o777 == 0o600
    assert os.stat(host.image.parent).st_mode & 0o777 == 0o700
    assert not host.image.is_relative_to(host.home.root / "bot_repos")
    moved = [e for e in read_events(host.home, "qbot") if e["action"] == "disk"]
    assert [(e["change"], e["size"]) for e in moved] == [("bound", DISK)]
    assert host.prepare() == [] and len(loops_of(host.image)) == 1  # again: nothing


def test_quota_a_move_that_dies_before_the_image_is_the_tree_leaves_the_tree_as_it_was(
    host: Host, monkeypatch: pytest.MonkeyPatch
):
    before = manifest(host.tree)

    def crash(_tree: Path) -> None:
        raise KeyboardInterrupt("the host lost power")

    with monkeypatch.context() as m:
        m.setattr(loopdisk, "_write_marker", crash)
        with pytest.raises(KeyboardInterrupt):
            host.prepare()
    assert loopdisk.state_of(host.image, host.tree) == "plain"
    assert manifest(host.tree) == before
    assert loops_of(host.image) == []
    host.prepare()  # the next start makes the image again
    assert manifest(host.tree) == before


def test_quota_a_move_that_dies_while_emptying_the_directory_resumes_whole(
    host: Host, monkeypatch: pytest.MonkeyPatch
):
    before = manifest(host.tree)
    real_rmtree = shutil.rmtree
    calls = []

    def crash_second(path: Any, *args: Any, **kwargs: Any) -> None:
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt("the host lost power")
        real_rmtree(path, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(shutil, "rmtree", crash_second)  # loopdisk imports it where it deletes
        with pytest.raises(KeyboardInterrupt):
            host.prepare()
    assert loopdisk.state_of(host.image, host.tree) == "unmounted"
    assert manifest(host.home.state_dir("qbot")) == {  # the getter mounts first
        k.removeprefix("state/"): v for k, v in before.items() if k.startswith("state/")
    }
    assert manifest(host.tree) == before
    loopdisk.release(host.image, host.tree)  # the directory under it: emptied, frozen
    assert os.listdir(host.tree) == [loopdisk.MARKER] and loopdisk.is_immutable(host.tree)


def test_quota_after_a_reboot_nothing_reads_the_empty_directory_under_the_image(
    host: Host, cli, monkeypatch: pytest.MonkeyPatch
):
    host.prepare()
    loopdisk.release(host.image, host.tree)  # what a reboot leaves
    assert os.listdir(host.tree) == [loopdisk.MARKER]
    with pytest.raises(PermissionError):
        (host.tree / "state").mkdir()  # nothing lands beside the bound
    with monkeypatch.context() as m:  # a cftui that is not root refuses in one line
        m.setattr(loopdisk.os, "geteuid", lambda: 1000)
        with pytest.raises(DiskError, match="not mounted"):
            host.home.state_dir("qbot")
        result = cli("--home", str(host.home.root), "snapshot", "create", "qbot", "x")
    assert result.code == 1 and result.err.count("\n") == 1 and "not mounted" in result.err
    assert list(host.home.snapshots_dir("qbot").iterdir()) == []
    # As root, the first reader mounts it: the gateway's config, a snapshot.
    result = cli("--home", str(host.home.root), "config", "qbot")
    assert result.code == 0 and '"agents"' in result.out, result.err
    assert loopdisk.state_of(host.image, host.tree) == "mounted"
    loopdisk.release(host.image, host.tree)
    result = cli("--home", str(host.home.root), "snapshot", "create", "qbot", "after-reboot")
    assert result.code == 0, result.err
    assert loopdisk.state_of(host.image, host.tree) == "mounted"
    assert (host.home.state_dir("qbot") / "private.txt").read_text() == "only mine\n"


def test_quota_a_bigger_disk_in_fleet_toml_grows_it_and_a_smaller_one_is_refused(host: Host):
    host.prepare()
    before = manifest(host.tree)
    host.home.update_bot("qbot", disk="96MiB")
    assert host.prepare() == []
    assert loopdisk.usage(host.tree).size > DISK_BYTES * 1.5
    assert manifest(host.tree) == before
    grown = [e for e in read_events(host.home, "qbot") if e.get("change") == "grown"]
    assert [e["size"] for e in grown] == ["96MiB"]
    host.home.update_bot("qbot", disk="32MiB")
    (note,) = host.prepare()
    assert "never shrunk" in note and "96.0 MiB" in note
    assert os.stat(host.image).st_size == 96 << 20


def test_quota_a_cftui_that_is_not_root_says_the_tree_is_unbounded(
    host: Host, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(loopdisk.os, "geteuid", lambda: 1000)
    (note,) = host.prepare()
    assert "no disk bound" in note and "root" in note and "\n" not in note
    assert loopdisk.state_of(host.image, host.tree) == "plain" and not host.image.exists()
    disk = botdisk.status(host.home, host.home.bot("qbot"))
    assert disk is not None and disk.state == "unbounded" and "root" in disk.line()


def test_quota_disk_off_leaves_the_tree_plain(host: Host):
    host.home.update_bot("qbot", disk="off")
    assert host.prepare() == []
    assert loopdisk.state_of(host.image, host.tree) == "plain"


def test_quota_delete_unmounts_and_releases_the_loop_device(host: Host):
    host.prepare()
    (device,) = loops_of(host.image)
    botdisk.delete(host.home, "qbot")
    assert loops_of(host.image) == [] and not host.image.exists()
    assert not os.path.lexists(host.tree)
    assert not Path(f"/sys/block/{os.path.basename(device)}/loop/backing_file").exists() or (
        Path(f"/sys/block/{os.path.basename(device)}/loop/backing_file").read_text().strip()
        != str(host.image)
    )
    botdisk.delete(host.home, "qbot")  # again: nothing to do


# --- from inside a real gateway -------------------------------------------------------
@dataclass
class Fleet:
    world: World
    full: BotConfig  # fills its disk
    other: BotConfig  # beside it

    def gateway(self, bot: BotConfig) -> Any:
        return self.world.client.containers.get(f"cf-{bot.name}-gateway")

    def sh(self, bot: BotConfig, script: str) -> tuple[int, str]:
        code, out = self.gateway(bot).exec_run(["sh", "-c", script])
        return code, out.decode(errors="replace")


def _start(home: FleetHome, bots: list[BotConfig]) -> list[list[str]]:
    async def go() -> list[list[str]]:
        runtimes = Runtimes(home)
        try:
            return list(await asyncio.gather(*(lifecycle.start(home, b, runtimes) for b in bots)))
        finally:
            await runtimes.aclose()

    return asyncio.run(go())


@pytest.fixture(scope="module")
def fleet(world: World) -> Iterator[Fleet]:
    names = [f"qa{world.suffix}", f"qb{world.suffix}"]
    try:
        for name in names:
            world.add_bot(name)
            world.home.update_bot(name, disk=DISK)
        (world.home.state_dir(names[0]) / "kept.txt").write_text("written before the move\n")
        assert _start(world.home, [world.home.bot(n) for n in names]) == [[], []]
        yield Fleet(world, world.home.bot(names[0]), world.home.bot(names[1]))
    finally:
        for name in names:  # the world removes the stacks; the disks are ours
            with contextlib.suppress(Exception):
                asyncio.run(DockerRuntime(world.home).remove(BotConfig(name=name)))
            with contextlib.suppress(Exception):
                botdisk.delete(world.home, name)
        sweep(world.home.root)


@pytest.mark.docker
def test_quota_a_gateway_filling_its_disk_gets_enospc_and_nothing_else_fills(fleet: Fleet, cli):
    home, bot = fleet.world.home, fleet.full
    image, traffic = home.disk_image(bot.name), home.traffic_log(bot.name)
    code, out = fleet.sh(bot, "cat /state/kept.txt")  # the move kept it
    assert code == 0 and out == "written before the move\n"
    code, out = fleet.sh(bot, "id -u; dd if=/dev/zero of=/state/fill bs=1M count=200 2>&1")
    assert out.startswith("70000\n") and code != 0 and "No space left on device" in out
    code, out = fleet.sh(bot, "dd if=/dev/zero of=/code/workspace/memory/more bs=1M count=4 2>&1")
    assert code != 0 and "No space left on device" in out  # code/ shares the bound
    # The host paid at most the bound for it, whatever the agent asked for.
    assert os.stat(image).st_blocks * 512 <= DISK_BYTES
    assert os.path.getsize(home.state_dir(bot.name) / "fill") < DISK_BYTES
    # The proxies' audit/ still takes the agent's calls, the other bot writes.
    size = traffic.stat().st_size if traffic.exists() else 0
    wait_for(lambda: traffic.exists() and traffic.stat().st_size > size, 60, "a new call record")
    code, out = fleet.sh(fleet.other, "dd if=/dev/zero of=/state/fine bs=1M count=8 2>&1")
    assert code == 0, out
    # And the operator is told.
    result = cli("--home", str(home.root), "status", bot.name)
    assert result.code == 0 and "disk  FULL:" in result.out, result.out
    result = cli("--home", str(home.root), "status", bot.name, "--json")
    assert '"full": true' in result.out
    fleet.sh(bot, "rm -f /state/fill")
    result = cli("--home", str(home.root), "status", bot.name)
    assert "disk  FULL" not in result.out
    assert re.search(r"\n  disk  [\d.]+ [KM]iB of [\d.]+ MiB used\n", result.out), result.out


@pytest.mark.docker
def test_quota_after_a_reboot_docker_cannot_start_the_gateway_on_the_empty_directory(
    fleet: Fleet, cli
):
    home, bot, client = fleet.world.home, fleet.full, fleet.world.client
    image, tree = home.disk_image(bot.name), home.bot_repo(bot.name, mount=False)
    killed = cli("--home", str(home.root), "kill", bot.name)
    assert killed.code == 0, killed.err
    assert loopdisk.is_mounted(image, tree)  # the kill unmounts nothing: it stays instant
    assert killswitch.unlock(home, [bot.name]) == [bot.name]
    loopdisk.release(image, tree)  # what a host reboot leaves
    # The kernel detaches it once the stopped gateway's namespace is gone.
    wait_for(lambda: loops_of(image) == [], 30, "the loop device to be detached")
    import docker.errors

    # The restart policy brings containers back at boot, before any cftui:
    # the bind mount's source is not there, so the gateway does not start.
    with pytest.raises(docker.errors.APIError):
        client.api.start(f"cf-{bot.name}-gateway")
    assert os.listdir(tree) == [loopdisk.MARKER]
    assert _start(home, [bot]) == [[]]
    code, out = fleet.sh(bot, "cat /state/kept.txt")
    assert code == 0 and out == "written before the move\n"
    assert len(loops_of(image)) == 1


@pytest.mark.docker
def test_quota_cftui_delete_removes_the_stack_and_releases_the_disk(fleet: Fleet, cli):
    home, bot, client = fleet.world.home, fleet.other, fleet.world.client
    image, tree = home.disk_image(bot.name), home.bot_repo(bot.name, mount=False)
    assert len(loops_of(image)) == 1
    refused = cli("--home", str(home.root), "delete", bot.name)
    assert refused.code == 2 and "--yes" in refused.err and refused.err.count("\n") == 1
    assert loopdisk.is_mounted(image, tree)  # nothing happened without --yes
    result = cli("--home", str(home.root), "delete", bot.name, "--yes")
    assert result.code == 0, result.err
    assert f"kept {home.snapshots_dir(bot.name)}" in result.out
    assert (
        client.containers.list(all=True, filters={"label": f"io.clawfactory.bot={bot.name}"}) == []
    )
    wait_for(lambda: loops_of(image) == [], 30, "the loop device to be released")
    assert not image.exists() and not os.path.lexists(tree)
    assert bot.name not in home.bots() and home.secrets_dir(bot.name).is_dir()
    assert [e["action"] for e in read_events(home, bot.name)][-1] == "delete"
