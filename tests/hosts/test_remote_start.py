"""A bot started on another Docker host (a network-namespace host with its
own engine and sshd, tests/hosts/testhost.py), as contained as a local one.

One stack is started for the whole module (a start sends four images over
the link): the demo agent there calls the fake provider on that host through
the host's LLM proxy, whose traffic.jsonl is written under the host's root;
every container mounts only the host's paths; the secrets there are 0600 in
0700 and the bot's identity is not there; the gateway is on an internal
network with no route out, no DNS for outside names, and no way to the
host's own services (its sshd), while a container beside it on a normal
network reaches them. The proposals the agent writes there come home as
plain files (a link it planted comes as a link, never followed), and a
kill marker on the host holds a start.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pytest

from cftui import lifecycle
from cftui.botinit import init_bot
from cftui.demo import PLACEHOLDER_KEY, _set_env_lines
from cftui.errors import BotLocked
from cftui.fleet import BotConfig, FleetHome
from cftui.hosts.layout import HostLayout
from cftui.runtime import Runtimes
from cftui.runtime.docker.spec import container_name, int_network
from cftui.runtime.images import services
from tests.hosts.conftest import operator_fleet
from tests.hosts.testhost import SSH_PORT, TestHost
from tests.runtime_docker.helpers import free_port, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]

BOT = "farbot"
FAKE = "cfrs-fake"  # a bare name: the host's LLM proxy is attached to its network
FAKE_NET = "cfrs-net"
HOST_PORT = 18999  # a service of the host's own, in its namespace


def _send(image: str, host: TestHost) -> None:
    subprocess.run(
        f"docker save {image} | DOCKER_HOST={host.docker_host} docker load",
        shell=True, check=True, capture_output=True, timeout=300,
    )  # fmt: skip


def _exec_py(host: TestHost, service: str, code: str) -> subprocess.CompletedProcess[str]:
    return host.docker("exec", container_name(BOT, service), "python3", "-c", code, check=False)


@dataclass
class Remote:
    home: FleetHome
    host: TestHost
    layout: HostLayout
    bot: BotConfig
    fake_ip: str


def _run(home: FleetHome, step) -> object:
    async def go() -> object:
        runtimes = Runtimes(home)
        try:
            return await step(runtimes)
        finally:
            await runtimes.aclose()

    return asyncio.run(go())


@pytest.fixture(scope="module")
def remote(
    remote_host: TestHost, operator_ssh: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Remote]:
    """The demo agent's stack started on the remote host, for every test here."""
    import docker

    mp = pytest.MonkeyPatch()
    home = operator_fleet(
        mp, operator_ssh, remote_host, tmp_path_factory.mktemp("remote-start") / "fleet"
    )
    root = remote_host.root / "cf"
    # The fake provider runs on the host, on a normal network of its own.
    image = services.ensure_image(docker.from_env(), "fake-llm")
    _send(image, remote_host)
    remote_host.docker("network", "create", FAKE_NET)
    remote_host.docker("run", "-d", "--name", FAKE, "--network", FAKE_NET, image)
    fake_ip = json.loads(remote_host.docker("inspect", FAKE).stdout)[0]["NetworkSettings"][
        "Networks"
    ][FAKE_NET]["IPAddress"]
    upstream = f"http://{FAKE}:8080"
    with resources.as_file(resources.files("cftui") / "templates" / "demo-agent") as src:
        init_bot(home, BOT, code=str(src), gateway="generic", host="h2",
                 upstreams={"anthropic": upstream, "openai": upstream})  # fmt: skip
    _set_env_lines(
        home.providers_env(BOT),
        {"ANTHROPIC_API_KEY": PLACEHOLDER_KEY, "OPENAI_API_KEY": PLACEHOLDER_KEY},
    )
    _set_env_lines(
        home.gateway_env(BOT),
        {"DEMO_INTERVAL_S": "1", "DEMO_PROPOSE_EVERY": "2", "DEMO_PROBE_TIMEOUT_S": "2",
         "CF_DEMO_PROBE_URL": f"http://{fake_ip}:8080/health"},
    )  # fmt: skip
    # A link in the approved tree that points out of it.
    (home.code_dir(BOT) / "workspace" / "outside").symlink_to("/etc")
    bot = home.update_bot(BOT, gateway_port=free_port())
    try:
        _run(home, lambda rt: lifecycle.start(home, bot, rt))
        yield Remote(home, remote_host, HostLayout(root), bot, fake_ip)
    finally:
        mp.undo()
        # The host's containers go with it; the gateway image built here is this test's.
        subprocess.run(["docker", "image", "rm", "-f", "--no-prune", f"clawfactory/gateway-{BOT}:latest"],
                       capture_output=True)  # fmt: skip


def test_the_demo_agent_calls_the_fake_provider_through_the_hosts_llm_proxy(remote: Remote):
    path = Path(str(remote.layout.traffic_log(BOT)))

    def ok_call() -> dict | None:
        try:
            lines = path.read_text().splitlines()
        except FileNotFoundError:
            return None
        for line in lines:
            record = json.loads(line)
            if record["status"] == 200 and record["provider"] == "anthropic":
                return record
        return None

    record = wait_for(ok_call, 90, "an LLM call of the remote gateway in the host's traffic.jsonl")
    assert record["bot"] == BOT
    token = remote.home.gateway_env(BOT).read_text().split("CF_PROXY_TOKEN=")[1].split()[0]
    assert token not in path.read_text()
    # Written on the host, not on this machine (its mirror is not this test's).
    assert not remote.home.traffic_log(BOT).exists()
    # Nothing of the stack runs on this machine's engine.
    local = subprocess.run(["docker", "ps", "-aq", "--filter", f"name=cf-{BOT}-"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    assert local.stdout.strip() == ""
    status = _run(remote.home, lambda rt: rt.for_bot(remote.bot).status([remote.bot]))
    assert status[BOT].services["gateway"].state == "running"  # type: ignore[index]


def test_the_remote_bots_calls_reach_the_local_audit_mirror(remote: Remote):
    """The operator's machine reads a remote bot's calls where it reads a
    local bot's: the mirror follows `<root>/audit/<bot>/traffic.jsonl` over
    the link into the fleet home, and `cftui traffic` reads that copy."""
    local = remote.home.traffic_log(BOT)

    def mirrored_call() -> bool:
        try:
            return any(
                json.loads(line).get("status") == 200 for line in local.read_text().splitlines()
            )
        except FileNotFoundError:
            return False

    async def follow(runtimes: Runtimes) -> bool:
        await runtimes.for_bot(remote.bot).follow_audit(remote.bot)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if mirrored_call():
                return True
            await asyncio.sleep(0.2)
        return False

    assert _run(remote.home, follow), "no call of the remote bot reached the local mirror"
    assert local.stat().st_mode & 0o777 == 0o600
    shown = subprocess.run(
        [sys.executable, "-m", "cftui", "traffic", BOT, "--json", "--home", str(remote.home.root)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    records = [json.loads(line) for line in shown.stdout.splitlines()]
    assert any(r.get("bot") == BOT and r.get("status") == 200 for r in records)


def test_capture_reaches_the_remote_egress_live(remote: Remote):
    """`cftui capture on` of a remote bot: the control file written here
    goes to the host's egress proxy through the mirror, and the proxy's
    answer (its stats, mirrored back) confirms it, with no restart."""
    from cftui import egress_control

    async def toggle(runtimes: Runtimes) -> dict | None:
        await runtimes.for_bot(remote.bot).follow_audit(remote.bot)
        await asyncio.to_thread(egress_control.set_capture, remote.home, BOT, True, False)
        generation = json.loads(remote.home.egress_control(BOT).read_text())["generation"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            stats = egress_control.read_stats(remote.home, BOT)
            if stats and stats.get("control_generation") == generation:
                return stats
            await asyncio.sleep(0.2)
        return None

    try:
        stats = _run(remote.home, toggle)
        assert stats is not None, "the host's egress never applied the control file sent to it"
        assert stats["capture"] is True
        far = Path(str(remote.layout.audit_dir(BOT) / "egress.control.json"))
        assert far.stat().st_mode & 0o777 == 0o600
        assert json.loads(far.read_text())["capture"] is True
    finally:
        egress_control.set_capture(remote.home, BOT, False, wait=False)


def test_no_remote_container_mounts_anything_of_the_fleet_home(remote: Remote):
    root = str(remote.layout.root)
    seen = 0
    for service in ("gateway", "llm-proxy", "egress", "front"):
        attrs = json.loads(remote.host.docker("inspect", container_name(BOT, service)).stdout)[0]
        for mount in attrs["Mounts"]:
            if mount["Type"] != "bind":
                continue
            seen += 1
            assert not mount["Source"].startswith(str(remote.home.root)), (service, mount)
            assert mount["Source"].startswith(root + "/"), (service, mount)
    assert seen >= 7  # code, .git, writable paths, proposals, state, audit x2, providers.env
    gw = json.loads(remote.host.docker("inspect", container_name(BOT, "gateway")).stdout)[0]
    sources = {m["Destination"]: m["Source"] for m in gw["Mounts"]}
    assert sources["/code"] == str(remote.layout.code_dir(BOT))
    assert sources["/proposals"] == str(remote.layout.proposals_dir(BOT))
    assert sources["/state"] == str(remote.layout.state_dir(BOT))


def test_the_hosts_secrets_are_private_and_it_holds_no_identity(remote: Remote):
    lay = remote.layout
    for path in (lay.gateway_env(BOT), lay.providers_env(BOT)):
        p = Path(str(path))
        assert p.stat().st_mode & 0o777 == 0o600, p
        assert p.parent.stat().st_mode & 0o777 == 0o700
    assert Path(str(lay.audit_dir(BOT))).stat().st_mode & 0o777 == 0o700
    names = {p.name for p in Path(str(lay.root)).rglob("*") if not p.is_symlink()}
    assert "snapshot.key" not in names
    assert not any(n.endswith(".age") or "identity" in n for n in names), names
    # The approved tree's link is a link there too: never followed.
    out = Path(str(lay.code_dir(BOT))) / "workspace" / "outside"
    assert out.is_symlink() and os.readlink(out) == "/etc"


def test_the_remote_gateway_is_contained(remote: Remote):
    host = remote.host
    net = json.loads(host.docker("network", "inspect", int_network(BOT)).stdout)[0]
    assert net["Internal"] is True
    probe = (
        "import json, socket, sys\n"
        "out = {}\n"
        "def one(target):\n"
        "    host, port = target.rsplit(':', 1)\n"
        "    try:\n"
        "        socket.create_connection((host, int(port)), timeout=2).close()\n"
        "    except OSError:\n"
        "        return 'refused'\n"
        "    return 'connected'\n"
        "print(json.dumps({t: one(t) for t in sys.argv[1:]}))\n"
    )

    def reach(service: str, *targets: str) -> dict[str, str]:
        res = host.docker("exec", container_name(BOT, service), "python3", "-c", probe,
                      *targets, check=False)  # fmt: skip
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout)

    gateway_ip = net["IPAM"]["Config"][0]["Gateway"]
    # A service of the host's own on every address of it, beside its sshd.
    listener = subprocess.Popen(
        ["nsenter", f"--net=/var/run/netns/{host.netns}", "python3", "-c",
         "import socket, time\n"
         "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
         f"s.bind(('0.0.0.0', {HOST_PORT})); s.listen(16)\n"
         "while True:\n    s.accept()[0].close()\n"],
    )  # fmt: skip
    try:
        time.sleep(1)
        # The host's services, at its address and at the bridge's; no route
        # out: the operator's machine, the fake provider's network.
        targets = [f"{host.address}:{SSH_PORT}", f"{host.address}:{HOST_PORT}",
                   f"{gateway_ip}:{HOST_PORT}", f"{host.machine_address}:{SSH_PORT}",
                   f"{remote.fake_ip}:8080"]  # fmt: skip
        assert reach("gateway", *targets) == dict.fromkeys(targets, "refused")
        # The control: the LLM proxy, on a normal network too, does reach them.
        control = reach("llm-proxy", f"{host.address}:{SSH_PORT}",
                        f"{host.address}:{HOST_PORT}", f"{remote.fake_ip}:8080")  # fmt: skip
        assert set(control.values()) == {"connected"}, control
    finally:
        listener.kill()
        listener.wait()
    # No DNS for outside names.
    res = _exec_py(host, "gateway", "import socket; socket.getaddrinfo('example.com', 80)")
    assert res.returncode != 0 and "gaierror" in res.stderr
    # The host-isolation rule is the host's own, in its iptables.
    rules = subprocess.run(["ip", "netns", "exec", host.netns, "iptables", "-S", "INPUT"],
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert f"cftui-host-isolation:{BOT}" in rules
    here = subprocess.run(["iptables", "-S", "INPUT"], capture_output=True, text=True, check=True)
    assert f"cftui-host-isolation:{BOT}" not in here.stdout


def test_the_agents_proposals_come_home_links_as_links(remote: Remote):
    from cftui.proposals import mirror

    host_tree = Path(str(remote.layout.proposals_dir(BOT)))
    wait_for(lambda: list(host_tree.glob("workspace/skills/*/SKILL.md")), 90,
             "a skill the demo agent proposes on the host")  # fmt: skip
    secret = remote.host.root / "not-the-agents.txt"
    secret.write_text("host secret\n")
    # What a hostile agent leaves in its tree: links out, a fifo.
    res = remote.host.docker("exec", container_name(BOT, "gateway"), "sh", "-c",
                  f"ln -s {secret} /proposals/leak && ln -s /etc /proposals/etcdir && "
                  "mkfifo /proposals/pipe && echo mine > /proposals/NOTE.md",
                  check=False)  # fmt: skip
    assert res.returncode == 0, res.stderr
    mirror.bring_home(remote.home, BOT)
    here = remote.home.proposals_dir(BOT)
    assert list(here.glob("workspace/skills/*/SKILL.md"))
    assert (here / "NOTE.md").read_text() == "mine\n"
    assert (here / "leak").is_symlink() and os.readlink(here / "leak") == str(secret)
    assert (here / "etcdir").is_symlink()
    assert not (here / "pipe").exists()
    assert "host secret" not in "".join(
        p.read_text(errors="replace") for p in here.rglob("*") if p.is_file() and not p.is_symlink()
    )
    # A change cftui makes here goes back to the host's tree.
    (here / "NOTE.md").unlink()
    asyncio.run(mirror.send_back(remote.home, BOT))
    assert not (host_tree / "NOTE.md").exists()
    assert (host_tree / "leak").is_symlink()


def test_a_kill_marker_on_the_host_holds_a_start_until_unlock(remote: Remote):
    from cftui import killswitch

    marker = Path(str(remote.layout.kill_marker(BOT)))
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text('{"bot": "farbot"}')  # another console's kill, say
    started = time.monotonic()
    try:
        with pytest.raises(BotLocked) as exc:
            _run(remote.home, lambda rt: rt.for_bot(remote.bot).up(remote.bot))
        message = str(exc.value)
        assert "\n" not in message and "kill marker on host h2" in message
        assert f"cftui unlock {BOT}" in message
        assert time.monotonic() - started < 30  # refused before any image went out

        async def lift() -> killswitch.UnlockResult:
            runtimes = Runtimes(remote.home)
            try:
                return await killswitch.lift(remote.home, [BOT], runtimes)
            finally:
                await runtimes.aclose()

        result = asyncio.run(lift())
        assert result.held == {} and not marker.exists()  # the host's marker is lifted
    finally:
        marker.unlink(missing_ok=True)
