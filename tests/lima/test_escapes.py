"""The escape suite (issue 15) on the Lima runtime, against the stand-in VM.

Two bots run in the shared VM, started by the project's runtime; their
gateway is tests/lima/probe_agent.py, which runs the Docker suite's probe
(tests/containment/gateway_probe.py) as its own child when the test asks:
the attempts run with the gateway's uid, in its unit's sandbox, cgroup and
seccomp filter, as an agent's tools would. Every target is the VM's
loopback or a container of the test's own: a listener inside the VM
(tests/containment/listener.py, on loopback ports of the test's choosing,
one of them on the first bot's allowlist) and one in a container on a
network the test made and joined to the VM. The network attempts of each
bot are one probe run (`batch`); the kill switch comes last.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import shlex
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cftui import killswitch, lifecycle, locks
from cftui.fleet import BotConfig, FleetHome
from cftui.runtime import Runtimes
from cftui.runtime.lima.plan import SRV, Ports, ports_for, unit_name, unix_user
from tests.containment.tricks import get, ip_spellings

from .conftest import LimaStack, make_lima_home, start_fake_llm

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(900)]

HERE = Path(__file__).parent
CONTAINMENT = HERE.parent / "containment"
UNLISTED, LISTED = 18670, 18671  # the in-VM listener's ports; LISTED is on ea's allowlist
MEMORY_MB, PIDS = 256, 128
LOOP = "127.0.0.1"
POST = (
    "import sys, urllib.request\n"
    "opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))\n"
    "req = urllib.request.Request(f'http://127.0.0.1:{sys.argv[1]}{sys.argv[2]}',"
    " data=sys.stdin.buffer.read(), method='POST')\n"
    "print(opener.open(req, timeout=290).read().decode())\n"
)


@dataclass
class Escape:
    stack: LimaStack  # the first bot's view; vm_sh is the VM's root shell
    a: BotConfig
    b: BotConfig
    outside: Any  # the listener container beside the VM
    outside_ip: str
    vm_ip: str  # the VM's own address on its network

    @property
    def home(self) -> FleetHome:
        return self.stack.home

    def vm_sh(self, script: str, **kw: Any):
        return self.stack.vm_sh(script, **kw)

    def ask(self, bot: BotConfig, path: str, body: str) -> dict:
        """POST to the bot's probe agent, from the VM's root (outside any sandbox)."""
        port = ports_for(bot).gateway
        res = self.vm_sh(f"python3 -c {shlex.quote(POST)} {port} {path}", input=body, timeout=300)
        return json.loads(res.stdout)

    def probe(self, bot: BotConfig, plan: dict) -> dict:
        got = self.ask(bot, "/probe", json.dumps(plan))
        assert got["code"] == 0, f"probe failed in {bot.name}: {got['stderr']}"
        return json.loads(got["stdout"].strip().splitlines()[-1])

    def main_pid(self, bot: BotConfig, service: str) -> int:
        out = self.vm_sh(f"systemctl show -p MainPID --value {unit_name(service, bot.name)}")
        return int(out.stdout.strip())

    def contacts(self) -> list[dict]:
        """Every contact either listener logged so far, tagged by where."""
        inside = self.vm_sh("journalctl -u cf-test-listener -o cat --no-pager").stdout
        seen = [dict(json.loads(x), at="vm") for x in inside.splitlines() if x.startswith("{")]
        outside = self.outside.logs().decode().splitlines()
        seen += [dict(json.loads(x), at="outside") for x in outside if x.startswith("{")]
        return [c for c in seen if c["kind"] != "ready"]


def _probe_agent_code(home: FleetHome, bot: str) -> None:
    code = home.code_dir(bot)
    for src in (HERE / "probe_agent.py", CONTAINMENT / "gateway_probe.py"):
        (code / src.name).write_text(src.read_text())
    (code / ".clawfactory").mkdir(exist_ok=True)
    (code / ".clawfactory" / "lima-command").write_text("python3 /code/probe_agent.py\n")


def _start_listeners(stack: LimaStack, docker_client, tag: str) -> tuple[Any, Any, str]:
    listener = (CONTAINMENT / "listener.py").read_text()
    stack.vm_sh("cat > /root/cf-test-listener.py", input=listener)
    stack.vm_sh(
        "systemctl is-active -q cf-test-listener || systemd-run --unit=cf-test-listener "
        f"python3 /root/cf-test-listener.py {UNLISTED} {LISTED}"
    )
    net = docker_client.networks.create(f"cf-limaesc-{tag}")
    outside = docker_client.containers.run(
        stack.env["CF_STANDIN_IMAGE"],
        ["python3", "-c", listener, str(UNLISTED), str(LISTED)],
        detach=True,
        name=f"cf-limaesc-{tag}",
        network=net.name,
        labels={"io.clawfactory.test": "lima"},
    )
    outside.reload()
    return net, outside, outside.attrs["NetworkSettings"]["Networks"][net.name]["IPAddress"]


def _vm_container(docker_client, vm: str) -> Any:
    return next(
        c
        for c in docker_client.containers.list(filters={"label": "io.clawfactory.standin=1"})
        if c.name.endswith("-" + vm)
    )


@pytest.fixture(scope="module")
def escape(lima_env, shared_vm, docker_client, tmp_path_factory) -> Iterator[Escape]:
    root = tmp_path_factory.mktemp("escfleet") / "home"
    home = make_lima_home(root, "ea", shared_vm)
    make_lima_home(root, "eb", shared_vm)
    for name, allow in (("ea", [f"{LOOP}:{LISTED}"]), ("eb", [])):
        _probe_agent_code(home, name)
        home.update_bot(
            name,
            egress_allow=allow,
            limits={"memory_mb": MEMORY_MB, "cpus": 1.0, "pids": PIDS},
        )
    a, b = home.bot("ea"), home.bot("eb")
    stack = LimaStack(home, a, shared_vm, lima_env)
    tag = uuid.uuid4().hex[:6]
    net = outside = vm_container = None
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLAWFACTORY_HOME", str(root))
        try:

            async def up() -> None:
                runtimes = Runtimes(home)
                try:
                    await runtimes.get("lima").ensure_vm(a)
                    await asyncio.to_thread(start_fake_llm, stack)
                    for bot in (a, b):  # one at a time: they share the VM's setup
                        await lifecycle.start(home, bot, runtimes)
                finally:
                    await runtimes.aclose()

            asyncio.run(up())
            net, outside, outside_ip = _start_listeners(stack, docker_client, tag)
            vm_container = _vm_container(docker_client, shared_vm)
            net.connect(vm_container)
            vm_ip = stack.vm_sh("hostname -I").stdout.split()[0]
            yield Escape(stack, a, b, outside, outside_ip, vm_ip)
        finally:
            stack.vm_sh(
                "systemctl stop cf-test-listener 'cf-*@ea.service' 'cf-*@eb.service'; "
                "rm -f /etc/clawfactory/killed/ea /etc/clawfactory/killed/eb",
                check=False,
            )
            if outside is not None:
                outside.remove(force=True)
            if net is not None:
                if vm_container is not None:
                    net.disconnect(vm_container, force=True)
                net.remove()


def _token(home: FleetHome, bot: BotConfig) -> str:
    env = home.gateway_env(bot.name).read_text()
    return env.split("CF_PROXY_TOKEN=")[1].split()[0]


def _network_plan(e: Escape, me: BotConfig, other: BotConfig) -> dict:
    """Every network attempt of one gateway: direct, DNS, and through its egress proxy."""
    pm, po = ports_for(me), ports_for(other)
    X = e.outside_ip
    egress = [LOOP, pm.egress]
    raw: dict[str, list] = {}
    for where, ip in (("loop", LOOP), ("outside", X)):
        for name, host in ip_spellings(ip).items():
            url = f"http://{host}:{UNLISTED}/ip-{where}-{name}"
            raw[f"ip_{where}_{name}"] = [*egress, get(url, f"{host}:{UNLISTED}")]
    listed, unlisted = f"{LOOP}:{LISTED}", f"{LOOP}:{UNLISTED}"
    raw |= {
        "origin_form_host": [*egress, get("/origin", unlisted)],
        "absolute_unlisted_host_listed": [*egress, get(f"http://{unlisted}/back", listed)],
        "userinfo_listed": [*egress, get(f"http://{listed}@{unlisted}/ui", listed)],
        "listed_port_in_userinfo": [*egress, get(f"http://{LOOP}:{LISTED}@{unlisted}/u2", listed)],
        "localhost_name": [*egress, get(f"http://localhost:{UNLISTED}/n", f"localhost:{UNLISTED}")],
        "egress_itself": [*egress, get(f"http://{LOOP}:{pm.egress}/", f"{LOOP}:{pm.egress}")],
        "own_llm_proxy_via_egress": [*egress, get(f"http://{LOOP}:{pm.llm}/health", "x")],
        "sshd_via_egress": [*egress, get(f"http://{LOOP}:22/", "x")],
        "fake_provider_via_egress": [*egress, get(f"http://{LOOP}:18600/", "x")],
        "outside_via_egress": [*egress, get(f"http://{X}:{UNLISTED}/o", f"{X}:{UNLISTED}")],
    }
    for svc, port in _other_ports(po).items():
        raw[f"other_{svc}_via_egress"] = [*egress, get(f"http://{LOOP}:{port}/", "x")]
    # The listed target in the URL, the unlisted one in Host: refused too.
    raw["absolute_listed_host_unlisted"] = [*egress, get(f"http://{listed}/front", unlisted)]
    raw["listed_port_control"] = [*egress, get(f"http://{listed}/listed", listed)]
    inner = "GET /inner HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
    tunnel = {
        "connect_unlisted_port": [unlisted, inner, None],
        "connect_decimal": [f"{int(ipaddress.IPv4Address(LOOP))}:{UNLISTED}", inner, None],
        "connect_v4_mapped": [f"[::ffff:{LOOP}]:{UNLISTED}", inner, None],
        "connect_localhost": [f"localhost:{UNLISTED}", inner, None],
        "connect_sshd": [f"{LOOP}:22", inner, None],
        "connect_outside": [f"{X}:{UNLISTED}", inner, None],
        "host_header_inside_tunnel": [listed, inner, None],
        "sni_inside_tunnel": [listed, inner, "evil.example"],
    }
    for svc, port in _other_ports(po).items():
        tunnel[f"connect_other_{svc}"] = [f"{LOOP}:{port}", inner, None]
    tcp = {
        "listener_loopback": [LOOP, UNLISTED],
        "listener_loopback_listed_port": [LOOP, LISTED],
        "listener_127_0_0_2": ["127.0.0.2", UNLISTED],
        "listener_v4_mapped": [f"::ffff:{LOOP}", UNLISTED],
        "listener_vm_address": [e.vm_ip, UNLISTED],
        "listener_outside": [X, UNLISTED],
        "fake_provider": [LOOP, 18600],
        "sshd": [LOOP, 22],
        "sshd_v6": ["::1", 22],
        "own_llm_proxy_control": [LOOP, pm.llm],
        "own_egress_control": [LOOP, pm.egress],
    }
    for svc, port in _other_ports(po).items():
        tcp[f"other_{svc}"] = [LOOP, port]
    return {
        "tcp": tcp,
        "udp_dns": {
            "listener_loopback": [LOOP, "example.test"],
            "listener_vm_address": [e.vm_ip, "vm.test"],
            "listener_outside": [X, "x.test"],
        },
        "proxy": egress,
        "raw": raw,
        "tunnel": tunnel,
    }


def _other_ports(po: Ports) -> dict[str, int]:
    return {"front": po.front, "gateway": po.gateway, "llm_proxy": po.llm, "egress": po.egress}


def _files_plan(e: Escape, me: BotConfig, other: BotConfig) -> dict:
    """The audit, the VM's settings and the other bot's files, by every path
    the gateway could name: directly, and through other processes' /proc roots."""
    llm_pid, other_gw = e.main_pid(me, "llm-proxy"), e.main_pid(other, "gateway")
    own_log = f"{SRV}/audit/{me.name}/llm/traffic.jsonl"
    writes = [
        own_log,
        f"{SRV}/audit/{me.name}/llm/forged.jsonl",
        f"{SRV}/audit/{me.name}/egress/traffic.enc.jsonl",
        f"{SRV}/audit/{me.name}/egress/egress.control.json",
        f"{SRV}/audit/{other.name}/llm/traffic.jsonl",
        f"{SRV}/ca/{me.name}/ca.pem",
        f"{SRV}/bots/{other.name}/state/planted",
        f"/etc/clawfactory/bots/{me.name}/bot.env",
        f"/etc/clawfactory/killed/{me.name}.planted",
        f"/etc/systemd/system/{unit_name('gateway', me.name)}.d/20-planted.conf",
        f"/proc/{llm_pid}/root{own_log}",
        f"/proc/1/root{own_log}",
        f"/proc/{other_gw}/root/state/planted",
        f"/proc/{other_gw}/cwd/planted",
    ]
    return {
        "self": True,
        "absent_paths": [],
        # Hidden by InaccessiblePaths= (an empty mode-0 directory over each)
        # or by their owners' modes.
        "reads": [
            f"{SRV}/audit/{me.name}",
            f"{SRV}/audit/{me.name}/llm/traffic.jsonl",
            f"{SRV}/secrets/{me.name}",
            f"{SRV}/secrets/{me.name}/providers.env",
            f"{SRV}/snapshots",
            f"{SRV}/bots/{other.name}/state",
            "/etc/clawfactory/bots",
            "/var/lib/clawfactory/egress",
            f"/proc/{llm_pid}/root{SRV}/secrets/{me.name}/providers.env",
            f"/proc/{llm_pid}/environ",
            f"/proc/{other_gw}/environ",
            f"/proc/{other_gw}/root/state",
        ],
        "writes": writes,
        "proc_mem": [llm_pid, e.main_pid(me, "egress"), other_gw, 1],
    }


@pytest.fixture(scope="module")
def batch(escape: Escape) -> dict:
    """Both gateways' network attempts (one probe each), then what the listeners saw."""
    seen_before = len(escape.contacts())
    reports = {
        "a": escape.probe(escape.a, _network_plan(escape, escape.a, escape.b)),
        "b": escape.probe(escape.b, _network_plan(escape, escape.b, escape.a)),
    }
    time.sleep(0.5)  # a listener logs a contact once its first bytes came
    reports["contacts"] = escape.contacts()[seen_before:]
    return reports


def test_the_probe_runs_as_the_gateway_in_its_unit(escape) -> None:
    """The premise of every other test here: the probe is the gateway's own
    child, with its uid and in its unit's cgroup."""
    me = escape.probe(escape.a, {"self": True, "absent_paths": []})["self"]
    gw = escape.vm_sh(f"id -u {unix_user('gateway', 'ea')}").stdout.strip()
    assert me["uid"] == me["euid"] == int(gw)
    assert me["no_new_privs"] == "1"
    assert me["caps"]["CapBnd"] == "0000000000000000"
    got = escape.ask(escape.a, "/spawn", "import time; time.sleep(30)")
    cgroup = escape.vm_sh(f"cat /proc/{got['pid']}/cgroup").stdout
    assert f"{unit_name('gateway', 'ea')}" in cgroup, cgroup
    escape.vm_sh(f"kill {got['pid']}")


def test_no_direct_way_out_reaches_a_server_of_the_tests_own(escape, batch) -> None:
    for bot in ("a", "b"):
        tcp = batch[bot]["tcp"]
        reached = [n for n, r in tcp.items() if r["reached"] and not n.endswith("_control")]
        assert not reached, (bot, {n: tcp[n] for n in reached})
        assert tcp["own_llm_proxy_control"]["reached"], tcp["own_llm_proxy_control"]
        assert tcp["own_egress_control"]["reached"], tcp["own_egress_control"]
        answered = {n: r for n, r in batch[bot]["udp_dns"].items() if r["answered"]}
        assert not answered, (bot, answered)
    seen = batch["contacts"]
    assert not [c for c in seen if c["kind"] == "dns" or c["port"] != LISTED], seen
    # Controls: root in the VM reaches both listeners, TCP and DNS alike, so
    # the gateway's failures were its containment's.
    for ip in (LOOP, escape.outside_ip):
        escape.vm_sh(
            f"python3 -c \"import socket; socket.create_connection(('{ip}', {UNLISTED}), 3)\""
        )


def test_the_egress_refuses_every_spelling_of_an_unlisted_address(batch) -> None:
    raw = batch["a"]["raw"]
    spellings = {n: r for n, r in raw.items() if n.startswith("ip_")}
    assert len(spellings) == 30
    bad = {n: (r["status"], r["reply"][:200]) for n, r in spellings.items()}
    assert all(r["status"] in (400, 403, 502) for r in spellings.values()), bad
    assert not [c for c in batch["contacts"] if c["kind"] == "tcp" and c["port"] == UNLISTED]


def test_the_egress_refuses_host_connect_and_sni_tricks(batch) -> None:
    for bot in ("a", "b"):
        raw, tunnel = batch[bot]["raw"], batch[bot]["tunnel"]
        tricks = [n for n in raw if not n.startswith("ip_") and n not in _LISTED_OK]
        assert len(tricks) == 15
        for name in tricks:
            assert raw[name]["status"] not in (200, None), (bot, name, raw[name])
            assert "listener-ok" not in raw[name]["reply"], (bot, name)
        for name, got in tunnel.items():
            if name in ("host_header_inside_tunnel", "sni_inside_tunnel"):
                continue
            assert got["connect"] == 403, (bot, name, got)
    tunnel = batch["a"]["tunnel"]
    # Tunnels to the listed port open, and what is said inside them is checked.
    for name in ("host_header_inside_tunnel", "sni_inside_tunnel"):
        assert tunnel[name]["connect"] == 200, (name, tunnel[name])
        assert "listener-ok" not in tunnel[name].get("inner", ""), (name, tunnel[name])
    seen = batch["contacts"]
    assert not [c for c in seen if b"evil.example" in bytes.fromhex(c.get("data", ""))]
    # The control: the listed port answers through the proxy.
    raw = batch["a"]["raw"]
    for name in _LISTED_OK:
        assert "listener-ok" in raw[name]["reply"], (name, raw[name])
    assert [c["port"] for c in seen if c["kind"] == "tcp"] and all(
        c["port"] == LISTED and c["at"] == "vm" for c in seen if c["kind"] == "tcp"
    ), seen
    # The other bot, with an empty allowlist, gets nowhere at all.
    for name in _LISTED_OK:
        assert batch["b"]["raw"][name]["status"] == 403, batch["b"]["raw"][name]


_LISTED_OK = ("listed_port_control",)


def test_another_bots_stack_is_out_of_reach(batch) -> None:
    for bot in ("a", "b"):
        tcp, raw, tunnel = batch[bot]["tcp"], batch[bot]["raw"], batch[bot]["tunnel"]
        others = {n: r for n, r in tcp.items() if n.startswith("other_")}
        assert len(others) == 4 and not [n for n, r in others.items() if r["reached"]], others
        via = {n: r["status"] for n, r in raw.items() if n.startswith("other_")}
        assert len(via) == 4 and all(s not in (200, None) for s in via.values()), via
        conn = {n: r["connect"] for n, r in tunnel.items() if n.startswith("connect_other_")}
        assert len(conn) == 4 and set(conn.values()) == {403}, conn


def test_the_audit_the_vms_settings_and_the_other_bot_are_out_of_the_gateways_hands(
    escape,
) -> None:
    own_log = f"{SRV}/audit/ea/llm/traffic.jsonl"
    before = escape.vm_sh(f"stat -c '%s %Y' {own_log}", check=False).stdout
    for me, other in ((escape.a, escape.b), (escape.b, escape.a)):
        got = escape.probe(me, _files_plan(escape, me, other))
        read = {p: r for p, r in got["reads"].items() if r["read"]}
        assert not read, (me.name, read)
        opened = {p: r for p, r in got["writes"].items() if r["opened"]}
        assert not opened, (me.name, opened)
        errnos = {r["errno"] for r in got["writes"].values()}
        assert errnos <= {"ENOENT", "EACCES", "EROFS", "EPERM"}, got["writes"]
        mem = {p: r for p, r in got["proc_mem"].items() if r["opened"]}
        assert not mem, (me.name, mem)
        done = {n: r for n, r in got["self"]["attempts"].items() if r["done"]}
        assert not done, (me.name, done)
    assert escape.vm_sh(f"stat -c '%s %Y' {own_log}", check=False).stdout == before
    planted = escape.vm_sh(
        f"find {SRV} /etc/clawfactory /etc/systemd/system -name '*planted*'"
    ).stdout
    assert planted == ""


def test_the_pids_limit_holds(escape) -> None:
    got = escape.probe(escape.b, {"pids": PIDS})["pids"]
    assert got["pids_max"] == str(PIDS), got
    assert got["error"], got  # the kernel refused a thread
    assert PIDS // 2 < got["threads"] < PIDS, got
    state = escape.vm_sh(f"systemctl is-active {unit_name('gateway', 'eb')}", check=False)
    assert state.stdout.strip() == "active"


def test_the_memory_limit_holds(escape) -> None:
    pid = escape.main_pid(escape.b, "gateway")
    got = escape.probe(escape.b, {"memory_mb": MEMORY_MB})["memory"]
    assert got["returncode"] == -9, got  # killed by the kernel's OOM killer
    assert "allocated all" not in got["stdout"]
    # Only the hog died: the gateway neither stopped nor restarted.
    unit = unit_name("gateway", "eb")
    assert escape.vm_sh(f"systemctl is-active {unit}").stdout.strip() == "active"
    assert escape.main_pid(escape.b, "gateway") == pid


IGNORE_TERM = (
    "import os, signal, time\n"
    "for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):\n"
    "    signal.signal(s, signal.SIG_IGN)\n"
    "if os.fork() == 0:\n"
    "    os.setsid()\n"  # an orphan in a session of its own, reparented to PID 1
    "    if os.fork() == 0:\n"
    "        time.sleep(3600)\n"
    "    os._exit(0)\n"
    "time.sleep(3600)\n"
)


def _stubborn(e: Escape, bot: BotConfig) -> set[int]:
    user = unix_user("gateway", bot.name)
    out = e.vm_sh(f"pgrep -u {user} -f SIG_IGN", check=False).stdout
    return {int(p) for p in out.split()}


def _stray(e: Escape, bot: BotConfig) -> None:
    """A process of the gateway's user outside its unit: what the runtime
    itself runs as that user (rsync of state/, runuser for OpenClaw's
    config) becomes, once the agent has traced it (same uid) and made it
    fork. Started here by root as the runtime starts those."""
    user = unix_user("gateway", bot.name)
    e.vm_sh(
        f"cd / && setsid runuser -u {user} -- python3 -c {shlex.quote(IGNORE_TERM)} "
        "</dev/null >/dev/null 2>&1 &"
    )


def test_the_gateway_cannot_trace_what_runs_as_its_user_outside_its_unit(escape) -> None:
    conf = escape.vm_sh("cat /etc/sysctl.d/90-clawfactory.conf").stdout
    assert conf.strip() == "-kernel.yama.ptrace_scope = 1"
    user = unix_user("gateway", "ea")
    escape.vm_sh(f"cd / && setsid runuser -u {user} -- sleep 60 </dev/null >/dev/null 2>&1 &")
    pid = int(escape.vm_sh(f"sleep 0.5; pgrep -u {user} -x sleep").stdout.split()[0])
    try:
        got = escape.probe(escape.a, {"proc_mem": [pid]})["proc_mem"][str(pid)]
    finally:
        escape.vm_sh(f"kill {pid}", check=False)
    yama = escape.vm_sh("cat /proc/sys/kernel/yama/ptrace_scope", check=False)
    if yama.returncode != 0:
        assert got["opened"], got  # the classic rule: same uid, so the kernel lets it
        pytest.xfail(
            "the stand-in shares this host's kernel, which has no Yama: the gateway's user "
            "can trace its other processes here (the kill switch still ends them, below)"
        )
    assert yama.stdout.strip() == "1"
    assert not got["opened"] and got["errno"] == "EPERM", got


def test_the_kill_survives_sigterm_ignoring_processes_and_leaves_nothing(escape) -> None:
    for bot in (escape.a, escape.b):
        escape.ask(bot, "/spawn", IGNORE_TERM)
        _stray(escape, bot)
    deadline = time.monotonic() + 15
    found: dict[str, set[int]] = {}
    while time.monotonic() < deadline:
        found = {bot.name: _stubborn(escape, bot) for bot in (escape.a, escape.b)}
        if all(len(p) >= 4 for p in found.values()):
            break
        time.sleep(0.2)
    assert all(len(p) >= 4 for p in found.values()), found
    outside = escape.vm_sh(
        f"grep -L {unit_name('gateway', 'ea')} "
        + " ".join(f"/proc/{p}/cgroup" for p in found["ea"])
    ).stdout
    assert outside.strip(), "no stray outside the unit: the test would prove nothing"

    async def kill() -> killswitch.KillResult:
        runtimes = Runtimes(escape.home)
        runtimes.get("lima").stop_vm_on_kill = False  # to see what the in-VM kill did
        try:
            return await killswitch.kill(escape.home, [escape.a, escape.b], runtimes)
        finally:
            await runtimes.aclose()

    result = asyncio.run(kill())
    assert result.ok, [r.summary() for r in result.reports]
    for bot in (escape.a, escape.b):
        user = unix_user("gateway", bot.name)
        left = escape.vm_sh(f"pgrep -u {user} -a", check=False).stdout.splitlines()
        assert not [p for p in left if "<defunct>" not in p], (bot.name, left)
        assert locks.is_locked(escape.home, bot.name)
    time.sleep(3)  # nothing brings them back: not Restart=, not a start in the VM
    for bot in (escape.a, escape.b):
        for service in ("front", "gateway", "llm-proxy", "egress"):
            unit = unit_name(service, bot.name)
            state = escape.vm_sh(f"systemctl is-active {unit}", check=False).stdout.strip()
            assert state in ("inactive", "failed"), (unit, state)
        again = escape.vm_sh(f"systemctl start {unit_name('gateway', bot.name)}", check=False)
        assert again.returncode != 0
