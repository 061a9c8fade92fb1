"""The escape suite: the red team's attempts that held, kept as tests (issue 15).

Each test plays the agent from inside a real gateway (the demo agent's
image, `docker exec` as the gateway's user) of a stack the project's own
runtime brought up, and tries a way out: straight to a server of the test's
own, through DNS, through the egress proxy with every spelling of an
address and every Host/SNI/CONNECT trick, into another bot's stack, into
the proxy's keys, past its capabilities, pids and memory limits, into the
audit log, and past the kill switch. The network attempts are batched into
one exec per bot (`batch`), so the whole suite costs one stack start.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import time

import psutil
import pytest

from cftui import killswitch, locks
from tests.runtime_docker.helpers import wait_for

from .conftest import MEMORY_MB, EscapeStack
from .tricks import get, ip_spellings
from .tricks import post as _post

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(600)]

PROXY = ("egress", 8888)
LLM = ("llm-proxy", 9090)
ZERO_CAPS = "0000000000000000"


def plan_for(s: EscapeStack, me, other, token: str) -> dict:
    """Every network attempt of one gateway, as one plan for gateway_probe.py."""
    w = s.world
    L, X = s.listener_ip, s.listener_ext_ip
    raw: dict[str, list] = {}
    tunnel: dict[str, list] = {}
    for name, host in ip_spellings(X).items():
        raw[f"ip_{name}"] = [*PROXY, get(f"http://{host}:8080/ip-{name}", f"{host}:8080")]
    raw |= {
        "origin_form_host": [*PROXY, get("/origin", f"{X}:8080")],
        "absolute_allowed_name_host_ip": [
            *PROXY,
            get("http://allowed.example/front", f"{X}:8080"),
        ],
        "absolute_ip_host_allowed_name": [
            *PROXY,
            get(f"http://{X}:8080/back", "allowed.example"),
        ],
        "userinfo_allowed_name": [
            *PROXY,
            get(f"http://allowed.example@{X}:8080/userinfo", "allowed.example"),
        ],
        "listed_port_in_userinfo": [
            *PROXY,
            get(f"http://{X}:8443@{X}:8080/userinfo2", f"{X}:8443"),
        ],
        "metadata_service": [*PROXY, get("http://169.254.169.254/latest/meta-data/", "x")],
        "egress_itself": [*PROXY, get("http://127.0.0.1:8888/", "127.0.0.1:8888")],
        "other_bot_proxy_by_ip": [
            *PROXY,
            get(f"http://{s.ip(other, 'llm-proxy', 'ext')}:9090/health", "llm-proxy"),
        ],
        "other_bot_proxy_by_name": [
            *PROXY,
            get(f"http://cf-{other.name}-llm-proxy:9090/health", "llm-proxy"),
        ],
        # The listed port, as a control: the same listener answers there.
        "listed_port_control": [*PROXY, get(f"http://{X}:8443/listed", f"{X}:8443")],
    }
    inner = "GET /inner HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
    tunnel |= {
        "connect_unlisted_port": [f"{X}:8080", inner, None],
        "connect_decimal": [f"{int(ipaddress.IPv4Address(X))}:8080", inner, None],
        "connect_v4_mapped": [f"[::ffff:{X}]:8080", inner, None],
        "connect_other_bot_proxy": [f"{s.ip(other, 'llm-proxy', 'ext')}:9090", inner, None],
        "connect_other_bot_gateway": [f"{s.ip(other, 'gateway')}:18789", inner, None],
        "host_header_inside_tunnel": [f"{X}:8443", inner, None],
        "sni_inside_tunnel": [f"{X}:8443", inner, "evil.example"],
    }
    auth = f"x-api-key: {token}\r\nanthropic-version: 2023-06-01\r\n"
    forged = {
        "model": 'claude"}\n{"v":1,"id":"forged-by-agent","bot":"' + other.name + '"}',
        "max_tokens": 5,
        "messages": [{"role": "user", "content": 'hi\n{"id":"forged-2"}\r\n'}],
    }
    body = json.dumps(forged)
    llm = {
        "health": "GET /health HTTP/1.1\r\nHost: llm-proxy\r\nConnection: close\r\n\r\n",
        "no_token": _post("/anthropic/v1/messages", "{}", ""),
        "wrong_token": _post("/anthropic/v1/messages", "{}", "x-api-key: sk-ant-wrong\r\n"),
        "wrong_bearer": _post("/openai/v1/chat/completions", "{}", "authorization: Bearer x\r\n"),
        "wrong_query_key": _post("/anthropic/v1/messages?key=x", "{}", ""),
        "unknown_provider": _post("/nope/v1/messages", "{}", auth),
        "traversal": _post("/anthropic/../../health", "{}", ""),
        "encoded_traversal": _post("/anthropic/%2e%2e/%2e%2e/health", "{}", ""),
        "garbage_request_line": "GARBAGE\r\n\r\n",
        "huge_header": _post("/anthropic/v1/messages", "{}", f"x-big: {'a' * 70000}\r\n"),
        "forged_record": _post("/anthropic/v1/messages", body, auth),
    }
    for name, data in llm.items():
        raw[f"llm_{name}"] = [*LLM, data]
    tcp = {
        "listener_test_network": [L, 8080],
        "listener_outside_network": [X, 8080],
        "fake_provider": [w.fake_ip, 8080],
        "own_llm_proxy_control": [*LLM],
    }
    for service, port in (("llm-proxy", 9090), ("egress", 8888), ("gateway", 18789)):
        tcp[f"other_{service}_int_ip"] = [s.ip(other, service), port]
        tcp[f"other_{service}_by_name"] = [f"cf-{other.name}-{service}", port]
    for service, port in (("llm-proxy", 9090), ("egress", 8888), ("front", 8080)):
        tcp[f"other_{service}_ext_ip"] = [s.ip(other, service, "ext"), port]
    return {
        "tcp": tcp,
        "udp_dns": {
            "listener_test_network": [L, "example.test"],
            "listener_outside": [X, "x.test"],
        },
        "resolve": [
            w.fake_name,
            s.listener.name,
            f"cf-{other.name}-llm-proxy",
            f"cf-{other.name}-gateway",
            "host.docker.internal",
            "gateway.docker.internal",
            "llm-proxy",
            "egress",
        ],
        "proxy": list(PROXY),
        "raw": raw,
        "tunnel": tunnel,
        "self": True,
        "absent_paths": [
            "/audit",
            "/secrets",
            "/snapshots",
            "/var/run/docker.sock",
            "/run/docker.sock",
            str(w.home.root),
        ],
    }


def _token(s: EscapeStack, bot) -> str:
    env = s.world.home.gateway_env(bot.name).read_text()
    return env.split("CF_PROXY_TOKEN=")[1].split()[0]


@pytest.fixture(scope="module")
def batch(escape: EscapeStack) -> dict:
    """Both gateways' network attempts (one exec each), then what the listener saw."""
    seen_before = len(escape.contacts())
    reports = {
        "a": escape.probe(escape.a, plan_for(escape, escape.a, escape.b, _token(escape, escape.a))),
        "b": escape.probe(escape.b, plan_for(escape, escape.b, escape.a, _token(escape, escape.b))),
    }
    time.sleep(0.5)  # the listener logs a contact once its first bytes came
    reports["contacts"] = escape.contacts()[seen_before:]
    return reports


def _unlisted_contacts(escape: EscapeStack, contacts: list[dict]) -> list[dict]:
    return [c for c in contacts if c["kind"] == "dns" or c["port"] != 8443]


def test_no_direct_way_out_reaches_the_tests_own_server(escape, batch) -> None:
    for bot in ("a", "b"):
        tcp = batch[bot]["tcp"]
        for name in ("listener_test_network", "listener_outside_network", "fake_provider"):
            assert not tcp[name]["reached"], (bot, name, tcp[name])
        assert tcp["own_llm_proxy_control"]["reached"], tcp["own_llm_proxy_control"]
        for name, got in batch[bot]["udp_dns"].items():
            assert not got["answered"], (bot, name, got)
    assert _unlisted_contacts(escape, batch["contacts"]) == []
    # Controls: the same server answers from where it should (the LLM proxy
    # shares the test's network), TCP and DNS alike.
    control = escape.probe(
        escape.a,
        {
            "tcp": {"l": [escape.listener_ip, 8080]},
            "udp_dns": {"l": [escape.listener_ip, "c.test"]},
        },
        service="llm-proxy",
    )
    assert control["tcp"]["l"]["reached"] and control["udp_dns"]["l"]["answered"], control


def test_dns_knows_only_the_stacks_own_names(escape, batch) -> None:
    for bot in ("a", "b"):
        resolved = batch[bot]["resolve"]
        for name in ("llm-proxy", "egress"):
            assert resolved[name]["resolved"], (bot, name, resolved[name])
        outside = {n: r for n, r in resolved.items() if n not in ("llm-proxy", "egress")}
        assert not [n for n, r in outside.items() if r["resolved"]], (bot, outside)


def test_egress_refuses_every_spelling_of_an_unlisted_address(escape, batch) -> None:
    raw = batch["a"]["raw"]
    spellings = {n: r for n, r in raw.items() if n.startswith("ip_")}
    assert len(spellings) == 15
    through = {n: r["status"] for n, r in spellings.items() if r["status"] == 200}
    assert not through, through
    assert all(r["status"] in (400, 403, 502) for r in spellings.values()), {
        n: (r["status"], r["reply"][:200]) for n, r in spellings.items()
    }
    assert not [c for c in batch["contacts"] if c["kind"] == "tcp" and c["port"] == 8080]


def test_egress_refuses_host_connect_and_sni_tricks(escape, batch) -> None:
    raw, tunnel = batch["a"]["raw"], batch["a"]["tunnel"]
    tricks = (
        "origin_form_host",
        "absolute_allowed_name_host_ip",
        "absolute_ip_host_allowed_name",
        "userinfo_allowed_name",
        "listed_port_in_userinfo",
        "metadata_service",
        "egress_itself",
        "other_bot_proxy_by_ip",
        "other_bot_proxy_by_name",
    )
    for name in tricks:
        assert raw[name]["status"] not in (200, None), (name, raw[name])
        assert "listener-ok" not in raw[name]["reply"], name
    for name in (
        "connect_unlisted_port",
        "connect_decimal",
        "connect_v4_mapped",
        "connect_other_bot_proxy",
        "connect_other_bot_gateway",
    ):
        assert tunnel[name]["connect"] == 403, (name, tunnel[name])
    # Tunnels to the listed port open, and what is said inside them is checked.
    for name in ("host_header_inside_tunnel", "sni_inside_tunnel"):
        got = tunnel[name]
        assert got["connect"] == 200, (name, got)
        assert "listener-ok" not in got.get("inner", ""), (name, got)
    contacts = batch["contacts"]
    assert not [c for c in contacts if b"evil.example" in bytes.fromhex(c.get("data", ""))]
    # The control: the listed port of the same server answers through the proxy.
    assert "listener-ok" in raw["listed_port_control"]["reply"], raw["listed_port_control"]


def test_listing_the_address_opens_it_so_the_refusals_were_the_proxys(escape, batch) -> None:
    from cftui.egress_control import edit_allowlist

    X = escape.listener_ext_ip
    result = edit_allowlist(escape.world.home, escape.a.name, add=[f"{X}:8080"])
    assert result.confirmed
    try:
        got = escape.probe(
            escape.a, {"raw": {"now": [*PROXY, get(f"http://{X}:8080/now", f"{X}:8080")]}}
        )
        assert "listener-ok" in got["raw"]["now"]["reply"], got
    finally:
        edit_allowlist(escape.world.home, escape.a.name, remove=[f"{X}:8080"])


def test_another_bots_stack_is_out_of_reach(batch) -> None:
    for bot in ("a", "b"):
        tcp = batch[bot]["tcp"]
        others = {n: r for n, r in tcp.items() if n.startswith("other_")}
        assert len(others) == 9
        assert not [n for n, r in others.items() if r["reached"]], (bot, others)


def test_no_reply_of_the_proxies_shows_a_provider_key(escape, batch) -> None:
    keys = list(escape.keys.values())
    for bot in ("a", "b"):
        raw, tunnel = batch[bot]["raw"], batch[bot]["tunnel"]
        llm = {n: r for n, r in raw.items() if n.startswith("llm_")}
        assert llm["llm_health"]["status"] == 200
        for name in ("no_token", "wrong_token", "wrong_bearer", "wrong_query_key"):
            assert llm[f"llm_{name}"]["status"] == 401, (name, llm[f"llm_{name}"])
        assert llm["llm_forged_record"]["status"] == 200, llm["llm_forged_record"]
        replies = [r["reply"] for r in raw.values()] + [json.dumps(t) for t in tunnel.values()]
        for key in keys:
            leaked = [n for n, r in {**raw, **tunnel}.items() if key in json.dumps(r)]
            assert not leaked, (bot, leaked)
            assert all(key not in r for r in replies)


def test_the_gateway_runs_with_no_capability_and_no_new_privileges(batch) -> None:
    for bot in ("a", "b"):
        me = batch[bot]["self"]
        assert me["uid"] != 0 and me["euid"] != 0 and me["gid"] != 0, me
        assert me["caps"] == dict.fromkeys(
            ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"), ZERO_CAPS
        )
        assert me["no_new_privs"] == "1"
        assert me["seccomp"] == "2"  # the engine's default filter
        done = {n: a for n, a in me["attempts"].items() if a["done"]}
        assert not done, (bot, done)
        assert {a.get("errno") for a in me["attempts"].values()} <= {"EPERM", "EACCES", "EROFS"}


def test_audit_secrets_and_snapshots_are_not_mounted(escape, batch) -> None:
    home = str(escape.world.home.root)
    for bot in ("a", "b"):
        me = batch[bot]["self"]
        assert not [p for p, present in me["paths"].items() if present], me["paths"]
        points = {m["point"] for m in me["mounts"]}
        assert not points & {"/audit", "/secrets", "/snapshots"}
        for m in me["mounts"]:
            root = m["root"]
            for area in ("audit", "secrets", "snapshots"):
                assert not root.startswith(f"{home}/{area}"), m
            assert "docker.sock" not in root


def test_the_audit_log_cannot_be_forged_through_the_proxy(escape, batch) -> None:
    """The agent's own call carries JSON with newlines in every field it
    controls; the log keeps it inside one record of its own bot."""
    for bot, other in ((escape.a, escape.b), (escape.b, escape.a)):
        path = escape.world.home.traffic_log(bot.name)
        records = [json.loads(line) for line in path.read_text().splitlines()]
        assert all(isinstance(r, dict) for r in records)
        assert {r["bot"] for r in records} == {bot.name}
        ids = {r["id"] for r in records}
        assert not ids & {"forged-by-agent", "forged-2"}
        assert any("forged-by-agent" in json.dumps(r) for r in records), "the call was logged"
        assert all(r["bot"] != other.name for r in records)


def test_the_pids_limit_holds(escape) -> None:
    got = escape.probe(escape.b, {"pids": escape.b.limits.pids})["pids"]
    assert got["pids_max"] == str(escape.b.limits.pids)
    assert got["error"], got  # the kernel refused a thread
    assert escape.b.limits.pids // 2 < got["threads"] < escape.b.limits.pids, got
    assert escape.container(escape.b, "gateway").status == "running"


def test_the_memory_limit_holds(escape) -> None:
    got = escape.probe(escape.b, {"memory_mb": MEMORY_MB})["memory"]
    assert got["returncode"] == -9, got  # killed by the kernel's OOM killer
    assert "allocated all" not in got["stdout"]
    gateway = escape.container(escape.b, "gateway")
    gateway.reload()
    assert gateway.status == "running"


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


def test_the_kill_survives_sigterm_ignoring_processes_and_leaves_nothing(escape) -> None:
    client = escape.world.client
    for bot in (escape.a, escape.b):
        escape.container(bot, "gateway").exec_run(["python3", "-c", IGNORE_TERM], detach=True)
    host_pids: dict[str, set[int]] = {}
    for bot in (escape.a, escape.b):

        def stubborn(bot=bot) -> set[int] | None:
            top = client.api.top(f"cf-{bot.name}-gateway", ps_args="-eo pid,args")
            found = {int(row[0]) for row in top["Processes"] if "SIG_IGN" in row[-1]}
            return found if len(found) >= 2 else None

        host_pids[bot.name] = wait_for(stubborn, 15, "the SIGTERM-ignoring processes")
        assert all(_alive(pid) for pid in host_pids[bot.name])  # seen from here, so the check bites
    result = asyncio.run(killswitch.kill(escape.world.home, [escape.a, escape.b]))
    assert result.ok, [r.summary() for r in result.reports]
    for bot in (escape.a, escape.b):
        for service in ("front", "gateway", "llm-proxy", "egress"):
            attrs = client.api.inspect_container(f"cf-{bot.name}-{service}")
            assert attrs["State"]["Running"] is False, (bot.name, service)
        for pid in host_pids[bot.name]:
            assert not _alive(pid), (bot.name, pid)
        assert locks.is_locked(escape.world.home, bot.name)
    time.sleep(2)  # nothing brings them back: no restart policy, no restart
    for bot in (escape.a, escape.b):
        attrs = client.api.inspect_container(f"cf-{bot.name}-gateway")
        assert attrs["State"]["Running"] is False
        assert attrs["HostConfig"]["RestartPolicy"]["Name"] == "no"


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
