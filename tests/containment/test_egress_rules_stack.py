"""Rules by method and path in a real Docker stack: the runtime hands each
rule to the egress container as one argument, the agent's requests are
checked by it, and each refusal lands in the host's request ledger with the
entry that would allow it; the test's own server sees only what passed."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from cftui import lifecycle
from cftui.fleet import BotConfig
from cftui.runtime import Runtimes
from tests.containment.conftest import _start_listener
from tests.runtime_docker.conftest import world  # noqa: F401  (the module's Docker world)
from tests.runtime_docker.helpers import World, wait_for

pytestmark = pytest.mark.docker

# Run in the gateway as its own user: plain HTTP through the egress proxy.
CLIENT = """
import json, sys, urllib.request, urllib.error
opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": "http://egress:8888"}))
out = []
for method, url in json.loads(sys.argv[1]):
    req = urllib.request.Request(url, method=method, data=b"x" if method == "POST" else None)
    try:
        with opener.open(req, timeout=10) as r:
            out.append([r.status, r.read().decode(errors="replace")])
    except urllib.error.HTTPError as e:
        out.append([e.code, e.read().decode(errors="replace")])
print(json.dumps(out))
"""


@dataclass
class RuleStack:
    world: World
    bot: BotConfig
    listener: Any
    url: str  # the listener's port 8080, by its container name
    rule: str

    def requests(self, *calls: tuple[str, str]) -> list[list]:
        gw = self.world.client.containers.get(f"cf-{self.bot.name}-gateway")
        code, out = gw.exec_run(["python3", "-c", CLIENT, json.dumps(calls)], demux=True)
        stdout, stderr = (b.decode(errors="replace") if b else "" for b in out)
        assert code == 0, stderr[-2000:]
        return json.loads(stdout.strip().splitlines()[-1])

    def contacts(self) -> list[dict]:
        lines = self.listener.logs().decode().splitlines()
        return [c for c in map(json.loads, lines) if c["kind"] == "tcp"]


@pytest.fixture(scope="module")
def stack(world: World) -> Iterator[RuleStack]:  # noqa: F811
    listener = _start_listener(world)
    try:
        name = f"er{world.suffix}"
        host = listener.name
        rule = f"{host}:8080 GET /ok/"
        world.add_bot(name)
        # The name resolves to the listener's address on the bot's outside
        # network, private: its range is listed, narrowed the same way.
        allow = [rule, *(f"{net}:8080 GET /ok/" for net in ("172.16.0.0/12", "192.168.0.0/16"))]
        bot = world.home.update_bot(name, egress_allow=allow)

        async def start() -> None:
            runtimes = Runtimes(world.home)
            try:
                await lifecycle.start(world.home, bot, runtimes)
            finally:
                await runtimes.aclose()

        asyncio.run(start())
        world.client.networks.get(f"cf-{name}-ext").connect(listener)
        yield RuleStack(world, bot, listener, f"http://{host}:8080", rule)
    finally:
        with contextlib.suppress(Exception):
            listener.remove(force=True)


def test_a_rule_given_at_start_admits_its_method_and_path_and_refuses_the_rest(stack):
    ok, post, other = stack.requests(
        ("GET", f"{stack.url}/ok/x"), ("POST", f"{stack.url}/ok/x"), ("GET", f"{stack.url}/other")
    )
    assert ok == [200, "listener-ok"]
    assert post[0] == 403 and other[0] == 403
    refused = json.loads(post[1])
    assert (refused["reason"], refused["rule"], refused["method"]) == ("rule", stack.rule, "POST")
    assert json.loads(other[1])["rule"] == stack.rule
    # The server saw the GET only.
    seen = [bytes.fromhex(c["data"]).split(b"\r\n", 1)[0] for c in stack.contacts()]
    assert seen == [b"GET /ok/x HTTP/1.1"]


def test_the_refused_request_is_in_the_hosts_ledger_with_the_rule_that_would_allow_it(stack):
    home = stack.world.home
    key = f"{stack.listener.name}:8080 POST /ok/"

    def entry() -> dict | None:
        try:
            doc = json.loads(home.egress_requests(stack.bot.name).read_text())
        except (OSError, ValueError):
            return None
        return next((e for e in doc["requests"] if e["key"] == key), None)

    e = wait_for(entry, 15, "the ledger entry of the refused POST")
    assert (e["method"], e["path"], e["rule"], e["connect"]) == ("POST", "/ok/x", stack.rule, False)
    assert e["suggest"] == key
    mode = home.egress_requests(stack.bot.name).stat().st_mode & 0o777
    assert mode == 0o600
