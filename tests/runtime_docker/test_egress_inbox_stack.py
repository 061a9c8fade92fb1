"""Egress requests as proposals on the real engine, with the real egress proxy:
a request from the gateway to a host it may not reach shows in
`cftui proposals --json` (count 1, then 2); `--allow` lets the next one
through without a restart; `--dismiss` hides another; a request outside a
method/path rule is a proposal of the narrow rule that admits it, and
allowing that proposal admits it.

The host is the world's fake provider, joined to the bot's outside network
(where the egress proxy could reach it), named by its address; the requests
are made from inside the gateway, through the proxy its environment names.
One stack is shared by the module; the tests run in file order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from cftui.fleet import BotConfig

from .helpers import World, cftui, start_bot, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]

# The agent's side: one plain-HTTP request through the egress proxy.
REQUEST = """
import json, os, sys, urllib.error, urllib.request
proxy = os.environ.get("HTTP_PROXY") or os.environ.get("http_proxy") or "http://egress:8888"
opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy}))
method = sys.argv[2] if len(sys.argv) > 2 else "GET"
req = urllib.request.Request(sys.argv[1], method=method, data=b"{}" if method == "POST" else None)
try:
    with opener.open(req, timeout=10) as r:
        print(json.dumps({"status": r.status, "body": r.read(4000).decode("latin-1")}))
except urllib.error.HTTPError as e:
    print(json.dumps({"status": e.code, "body": e.read(4000).decode("latin-1")}))
"""


@dataclass
class Stack:
    world: World
    bot: BotConfig
    target_ip: str  # the fake provider, on the bot's outside network

    def request(self, url: str, method: str = "GET") -> dict:
        gateway = self.world.client.containers.get(f"cf-{self.bot.name}-gateway")
        code, out = gateway.exec_run(["python3", "-c", REQUEST, url, method], demux=True)
        stdout, stderr = (b.decode(errors="replace") if b else "" for b in out)
        assert code == 0, stderr[-2000:]
        return json.loads(stdout.strip().splitlines()[-1])

    def inbox(self) -> dict:
        res = cftui(self.world, "proposals", self.bot.name, "--json")
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout)

    def entry(self, key: str, count: int) -> dict | None:
        found = [e for e in self.inbox()["egress"] if e["key"] == key]
        return found[0] if found and found[0]["count"] == count else None


@pytest.fixture(scope="module")
def stack(world: World) -> Iterator[Stack]:
    bot = world.add_bot(f"i{world.suffix}")
    asyncio.run(start_bot(world, bot))
    fake = world.client.containers.get(world.fake_name)
    ext = world.client.networks.get(f"cf-{bot.name}-ext")
    ext.connect(fake)
    try:
        fake.reload()
        ip = fake.attrs["NetworkSettings"]["Networks"][ext.name]["IPAddress"]
        yield Stack(world, world.home.bot(bot.name), ip)
    finally:
        with contextlib.suppress(Exception):
            ext.disconnect(fake, force=True)


def test_a_refused_host_is_an_egress_proposal_counted_each_time(stack: Stack) -> None:
    url = f"http://{stack.target_ip}:8080/health"
    key = f"{stack.target_ip}:8080"
    first = stack.request(url)
    assert first["status"] == 403, first
    seen = wait_for(lambda: stack.entry(key, 1), 20, "the refusal in cftui proposals")
    assert seen["host"] == stack.target_ip and seen["port"] == 8080
    assert seen["suggest"] == key and seen["rule"] is None
    assert stack.request(url)["status"] == 403
    again = wait_for(lambda: stack.entry(key, 2), 20, "the second refusal counted")
    assert again["first"] == seen["first"] and again["last"] >= seen["last"]


def test_allow_lets_the_next_request_through_without_a_restart(stack: Stack) -> None:
    world, bot = stack.world, stack.bot
    key = f"{stack.target_ip}:8080"
    gateway = world.client.containers.get(f"cf-{bot.name}-gateway")
    egress = world.client.containers.get(f"cf-{bot.name}-egress")
    started = (gateway.attrs["State"]["StartedAt"], egress.attrs["State"]["StartedAt"])
    res = cftui(world, "proposals", bot.name, "--allow", key)
    assert res.returncode == 0, res.stderr
    assert "added to the egress allowlist (applied by the running egress proxy)" in res.stdout
    through = stack.request(f"http://{stack.target_ip}:8080/health")
    assert through["status"] == 200, through
    assert key not in [e["key"] for e in stack.inbox()["egress"]]
    gateway.reload()
    egress.reload()
    assert (gateway.attrs["State"]["StartedAt"], egress.attrs["State"]["StartedAt"]) == started
    events = [json.loads(line) for line in world.home.events_log.read_text().splitlines()]
    assert any(e["action"] == "egress-allow" and e["key"] == key for e in events)


def test_dismiss_hides_a_refused_host(stack: Stack) -> None:
    world, bot = stack.world, stack.bot
    key = f"{stack.target_ip}:9"  # nothing listens there: the proxy refuses before trying
    assert stack.request(f"http://{key}/x")["status"] == 403
    wait_for(lambda: stack.entry(key, 1), 20, "the refusal of port 9")
    hidden_before = stack.inbox()["egress_hidden"]
    res = cftui(world, "proposals", bot.name, "--dismiss", key)
    assert res.returncode == 0, res.stderr
    after = stack.inbox()
    assert key not in [e["key"] for e in after["egress"]]
    assert after["egress_hidden"] == hidden_before + 1


def test_a_request_outside_a_rule_proposes_the_narrow_rule_and_allowing_it_admits_it(
    stack: Stack,
) -> None:
    world, bot, ip = stack.world, stack.bot, stack.target_ip
    rule = f"{ip}:8080 GET /health"
    res = cftui(world, "egress", bot.name, "--set", rule)
    assert res.returncode == 0, res.stderr
    url = f"http://{ip}:8080/health"
    assert stack.request(url)["status"] == 200  # inside the rule
    refused = stack.request(url, "POST")
    assert refused["status"] == 403, refused
    assert json.loads(refused["body"])["rule"] == rule

    def narrow() -> dict | None:
        found = [e for e in stack.inbox()["egress"] if e["rule"] == rule]
        return found[0] if found else None

    proposal = wait_for(narrow, 20, "the proposal of a narrow rule")
    assert proposal["method"] == "POST" and proposal["path"] == "/health"
    assert proposal["key"].startswith(f"{ip}:8080 POST ")
    assert proposal["suggest"].startswith(f"{ip}:8080 POST /")
    res = cftui(world, "proposals", bot.name, "--allow", proposal["key"])
    assert res.returncode == 0, res.stderr
    assert world.home.bot(bot.name).egress_allow == (rule, proposal["suggest"])
    assert stack.request(url, "POST")["status"] != 403  # the fake's answer, not the proxy's
