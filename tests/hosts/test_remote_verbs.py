"""`cftui shell`, `snapshot restore`, `move` and `delete` of a bot on another
Docker host (issue #21), against real namespace hosts of this module's own
(tests/hosts/testhost.py), each with its engine and sshd.

The shell is the operator's own `ssh` (their key and known_hosts, the host
key checked) into the host's `docker exec`, in a pipe and in a real
terminal. A restore there starts the gateway again. A move clears the old
host (containers, networks, iptables rules, every tree under its root) once
the new one holds the bot, and a delete clears the bot's host, with links the
agent planted pointing out of the root (at `/` and at a directory of the
test's) followed by nothing. A login that is not root is named at `cftui
hosts` and at a start, in one line.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest

from cftui import lifecycle, snapshots
from cftui.botinit import init_bot
from cftui.demo import PLACEHOLDER_KEY, _set_env_lines
from cftui.fleet import FleetHome
from cftui.hosts.layout import HostLayout
from cftui.runtime import Runtimes
from cftui.runtime.docker.names import LABEL_BOT
from cftui.runtime.docker.spec import container_name
from tests.hosts.conftest import _make_host
from tests.hosts.testhost import TestHost
from tests.runtime_docker.helpers import free_port
from tests.tmux import Tmux

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1200)]

WAIT_S = 60.0


@pytest.fixture(scope="module")
def host_v(operator_ssh: Path) -> Iterator[TestHost]:
    """A host of this module's own (netns cfh21v): others' tests may run at once."""
    yield from _make_host(operator_ssh, "cfh21v", 30)


@pytest.fixture(scope="module")
def host_w(operator_ssh: Path, host_v: TestHost) -> Iterator[TestHost]:
    """A second one (netns cfh21w)."""
    yield from _make_host(operator_ssh, "cfh21w", 31)


@pytest.fixture
def gateway_images() -> Iterator[list[str]]:
    """The bots' gateway images this test builds on this machine's engine."""
    bots: list[str] = []
    yield bots
    for bot in bots:
        subprocess.run(["docker", "image", "rm", "-f", "--no-prune", f"clawfactory/gateway-{bot}:latest"],
                       capture_output=True)  # fmt: skip


def _fleet(home: FleetHome, hosts: dict[str, TestHost], user: str = "root") -> None:
    home.root.mkdir(parents=True, exist_ok=True)
    tag = home.root.parent.name
    home.fleet_toml.write_text(
        "".join(h.fleet_entry(name, f"{h.root}/cf-{tag}", user) for name, h in hosts.items())
    )


def _init(home: FleetHome, bot: str, host: str) -> None:
    with resources.as_file(resources.files("cftui") / "templates" / "demo-agent") as src:
        init_bot(home, bot, code=str(src), gateway="generic", host=host)
    _set_env_lines(
        home.providers_env(bot),
        {"ANTHROPIC_API_KEY": PLACEHOLDER_KEY, "OPENAI_API_KEY": PLACEHOLDER_KEY},
    )
    _set_env_lines(home.gateway_env(bot), {"DEMO_INTERVAL_S": "3600"})
    home.update_bot(bot, gateway_port=free_port())


def _start(home: FleetHome, bot: str) -> None:
    async def go() -> None:
        runtimes = Runtimes(home)
        try:
            await lifecycle.start(home, home.bot(bot), runtimes)
        finally:
            await runtimes.aclose()

    asyncio.run(go())


def _docker(host: TestHost, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DOCKER_HOST=host.docker_host)
    return subprocess.run(["docker", *args], env=env, capture_output=True, text=True, timeout=120)


def _layout(home: FleetHome, host: str) -> HostLayout:
    return HostLayout.of(home.host(host))


def _paths(lay: HostLayout, bot: str) -> list[Path]:
    return [
        Path(str(p))
        for p in (
            lay.secrets_dir(bot),
            lay.bot_repo(bot),
            lay.proposals_dir(bot),
            lay.audit_dir(bot),
            lay.kill_marker(bot),
        )
    ]


def _left_on(host: TestHost, bot: str) -> dict[str, list[str]]:
    """What the host's engine and firewall still hold of the bot."""
    containers = _docker(host, "ps", "-aq", "--filter", f"label={LABEL_BOT}={bot}").stdout.split()
    networks = [
        n
        for n in _docker(host, "network", "ls", "--format", "{{.Name}}").stdout.split()
        if n.startswith(f"cf-{bot}-")
    ]
    rules = subprocess.run(
        ["ip", "netns", "exec", host.netns, "iptables", "-S", "INPUT"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    tagged = [ln for ln in rules.splitlines() if f"cftui-host-isolation:{bot}" in ln]
    return {"containers": containers, "networks": networks, "rules": tagged}


def _shell(home: FleetHome, bot: str, ssh_home: Path, script: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CLAWFACTORY_HOME": str(home.root), "HOME": str(ssh_home)}
    env.pop("SSH_AUTH_SOCK", None)
    return subprocess.run(
        [sys.executable, "-m", "cftui", "shell", bot, "gateway"],
        input=script, capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip


def _tmux_shell(home: FleetHome, bot: str, ssh_home: Path) -> str:
    """`cftui shell BOT` in a real terminal: what the screen showed."""
    tmux = Tmux("sh", socket=f"cftui-rshell-{os.getpid()}")
    env = [
        f"CLAWFACTORY_HOME={home.root}",
        f"HOME={ssh_home}",
        f"PYTHONPATH={os.environ.get('PYTHONPATH', '')}",
    ]
    tmux.start(f"{sys.executable} -m cftui shell {bot}; echo EXITED=$?; sleep 30", 120, 30, env)
    try:
        tmux.keys("tty; echo in-$((6*7))-$(id -u)", "Enter")
        screen = tmux.wait_for("in-42-", WAIT_S, poll=0.2)
        tmux.keys("exit 5", "Enter")
        return screen + tmux.wait_for("EXITED=", WAIT_S, poll=0.2)
    finally:
        tmux.close()


def test_shell_and_restore_reach_a_bot_on_another_host(
    home: FleetHome, host_v: TestHost, operator_ssh: Path, as_operator: Path, cli, gateway_images
) -> None:
    _fleet(home, {"hv": host_v})
    _init(home, "rshell", "hv")
    gateway_images.append("rshell")
    _start(home, "rshell")
    gw = json.loads(_docker(host_v, "inspect", container_name("rshell", "gateway")).stdout)[0]
    hostname = gw["Config"]["Hostname"]
    # A pipe: the host's container answers, and its exit status is ours.
    proc = _shell(home, "rshell", operator_ssh, "echo in-$(hostname)-$((6*7))\nexit 3\n")
    assert proc.returncode == 3, proc.stderr
    assert f"in-{hostname}-42" in proc.stdout
    # A real terminal, as the TUI's `s` hands it over.
    if shutil.which("tmux") is not None:
        screen = _tmux_shell(home, "rshell", operator_ssh)
        assert "/dev/pts/" in screen and "in-42-" in screen and "EXITED=5" in screen
    # A host whose key the operator does not know is never logged in to.
    stranger = home.root.parent / "stranger"
    (stranger / ".ssh").mkdir(parents=True, mode=0o700)
    shutil.copy(operator_ssh / ".ssh" / "id_ed25519", stranger / ".ssh" / "id_ed25519")
    (stranger / ".ssh" / "known_hosts").write_text("")
    proc = _shell(home, "rshell", stranger, "echo in-$((6*7))\n")
    assert proc.returncode == 255 and "in-42" not in proc.stdout
    assert "Host key verification failed" in proc.stderr
    # A restore there swaps the state and starts the gateway again.
    notes = Path(str(_layout(home, "hv").state_dir("rshell"))) / "notes.md"
    notes.write_text("before\n")
    assert cli("snapshot", "create", "rshell").code == 0
    notes.write_text("after\n")
    r = cli("snapshot", "restore", "rshell", "latest", "--yes")
    assert r.code == 0, r.err
    assert "gateway restarted" in r.out and "did not restart" not in r.out, r.out
    assert notes.read_text() == "before\n"
    gw = json.loads(_docker(host_v, "inspect", container_name("rshell", "gateway")).stdout)[0]
    assert gw["State"]["Running"]
    r = cli("delete", "rshell", "--yes")
    assert r.code == 0, r.err


def test_move_clears_the_old_host_and_delete_clears_the_new_one_following_no_link(
    home: FleetHome,
    host_v: TestHost,
    host_w: TestHost,
    as_operator: Path,
    cli,
    gateway_images,
    tmp_path: Path,
) -> None:
    _fleet(home, {"hv": host_v, "hw": host_w})
    _init(home, "roamer", "hv")
    gateway_images.append("roamer")
    _start(home, "roamer")
    on_v = _layout(home, "hv")
    before = _left_on(host_v, "roamer")
    assert before["containers"] and before["networks"] and before["rules"], before
    state_v = Path(str(on_v.state_dir("roamer")))
    (state_v / "memory").mkdir(exist_ok=True)
    (state_v / "memory" / "notes.md").write_text("learnt on hv\n")
    # A call the host's proxies logged that no mirror has brought home yet.
    far_log = Path(str(on_v.traffic_log("roamer")))
    record = json.dumps({"v": 1, "id": "unmirrored", "bot": "roamer"}) + "\n"
    with far_log.open("a") as f:
        f.write(record)
    r = cli("move", "roamer", "--host", "hw")
    assert r.code == 0, r.err
    assert "moved from hv to hw" in r.out and "still holds" not in r.out, r.out
    assert home.bot("roamer").host == "hw"
    # The old host holds nothing of the bot any more.
    assert _left_on(host_v, "roamer") == {"containers": [], "networks": [], "rules": []}
    assert [p for p in _paths(on_v, "roamer") if p.exists() or p.is_symlink()] == []
    # Its audit came home first; the move's snapshot is kept.
    assert record in home.traffic_log("roamer").read_text()
    assert [s.label for s in snapshots.list_snapshots(home, "roamer")] == ["move"]
    on_w = _layout(home, "hw")
    state_w = Path(str(on_w.state_dir("roamer")))
    assert (state_w / "memory" / "notes.md").read_text() == "learnt on hv\n"

    # Started on the new host, the agent plants links out of the root there.
    _start(home, "roamer")
    assert _left_on(host_w, "roamer")["containers"]
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("not the bot's\n")
    (state_w / "to-root").symlink_to("/")
    (state_w / "to-outside").symlink_to(outside)
    (state_w / "deep").mkdir()
    (state_w / "deep" / "up").symlink_to("../../../../..")
    proposals_w = Path(str(on_w.proposals_dir("roamer")))
    (proposals_w / "to-outside").symlink_to(outside)
    r = cli("delete", "roamer", "--yes")
    assert r.code == 0, r.err
    assert _left_on(host_w, "roamer") == {"containers": [], "networks": [], "rules": []}
    assert [p for p in _paths(on_w, "roamer") if p.exists() or p.is_symlink()] == []
    assert (outside / "keep.txt").read_text() == "not the bot's\n"
    assert Path(str(on_w.root)).is_dir() and Path("/etc/passwd").is_file()
    # The fleet home as a local delete leaves it.
    assert "roamer" not in home.bots()
    assert not home.bot_repo("roamer", mount=False).exists()
    assert home.snapshots_dir("roamer").is_dir() and home.audit_dir("roamer").is_dir()


def test_a_cleanup_that_fails_is_one_note_and_the_move_stands(
    home: FleetHome, host_v: TestHost, host_w: TestHost, as_operator: Path, cli, tmp_path: Path
) -> None:
    _fleet(home, {"hv": host_v, "hw": host_w})
    _init(home, "stuck", "hv")
    # A directory of the root that is a link out of it is not walked through.
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "stuck").mkdir(parents=True)
    (elsewhere / "stuck" / "keep.txt").write_text("not the bot's\n")
    proposals = Path(str(_layout(home, "hv").proposals_dir("stuck"))).parent
    proposals.parent.mkdir(parents=True)
    proposals.symlink_to(elsewhere)
    mount = Path(str(_layout(home, "hv").bot_repo("stuck"))) / "mnt"
    mount.mkdir(parents=True)
    secrets = Path(str(_layout(home, "hv").gateway_env("stuck")))
    secrets.parent.mkdir(parents=True)
    secrets.write_text("CF_PROXY_TOKEN=what an earlier start placed\n")
    subprocess.run(["mount", "-t", "tmpfs", "none", str(mount)], check=True)
    try:
        r = cli("move", "stuck", "--host", "hw")
    finally:
        subprocess.run(["umount", str(mount)], check=True)
    assert r.code == 0, r.err
    assert home.bot("stuck").host == "hw"
    notes = [ln for ln in r.out.splitlines() if "still holds" in ln]
    assert len(notes) == 1 and "host hv" in notes[0] and "stuck/mnt" in notes[0], r.out
    assert "proposals is a link" in notes[0]
    assert (elsewhere / "stuck" / "keep.txt").read_text() == "not the bot's\n"
    assert "Traceback" not in r.out + r.err
    # The secrets went, whatever could not.
    assert not secrets.parent.exists()


def test_delete_of_a_bot_whose_host_is_down_is_one_line_and_keeps_it(
    home: FleetHome, host_w: TestHost, as_operator: Path, cli
) -> None:
    _fleet(home, {"hw": host_w})
    _init(home, "downbot", "hw")
    host_w.cut()
    try:
        r = cli("delete", "downbot", "--yes")
    finally:
        host_w.restore()
    assert r.code == 1 and "unreachable" in r.err, r.err
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err
    assert "downbot" in home.bots()
    r = cli("delete", "downbot", "--yes")
    assert r.code == 0, r.err
    assert "downbot" not in home.bots()


PLAIN_USER = "cfh21plain"


@pytest.fixture
def docker_user(host_v: TestHost) -> Iterator[str]:
    """A login that is not root but in the `docker` group (this machine's:
    the test hosts share its users), which reaches the host's engine socket."""
    subprocess.run(["userdel", PLAIN_USER], capture_output=True)  # a killed run's
    subprocess.run(
        ["useradd", "-M", "-p", "*", "-G", "docker", "-s", "/bin/sh", PLAIN_USER],
        check=True, capture_output=True,
    )  # fmt: skip
    # sshd reads the authorized key as the user, who also needs the way to
    # the engine's socket (srw-rw---- root:docker): this module's host only.
    keys = host_v.root / "authorized_keys"
    host_v.root.chmod(0o711)
    keys.chmod(0o644)
    try:
        yield PLAIN_USER
    finally:
        keys.chmod(0o600)
        host_v.root.chmod(0o700)
        subprocess.run(["userdel", PLAIN_USER], capture_output=True)


def test_a_login_that_is_not_root_is_named_at_hosts_and_at_start(
    home: FleetHome, host_v: TestHost, as_operator: Path, cli, docker_user: str
) -> None:
    user = docker_user
    _fleet(home, {"hv": host_v}, user=user)
    _init(home, "plain", "hv")
    r = cli("hosts")
    assert r.code == 0, r.err
    said = [ln for ln in r.out.splitlines() if "is not root" in ln]
    assert len(said) == 1 and f"user {user} is not root" in said[0], r.out
    assert "ssh://root@" in said[0]
    r = cli("hosts", "--json")
    (report,) = [h for h in json.loads(r.out) if h["name"] == "hv"]
    assert report["reachable"] and "is not root" in report["error"]
    r = cli("start", "plain")
    assert r.code == 1 and f"user {user} is not root" in r.err, r.err
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err
