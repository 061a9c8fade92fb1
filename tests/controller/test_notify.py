"""Lifecycle webhooks out: a receiver on loopback gets one signed JSON event
for each kind, whoever caused it (the controller or a `cftui` in another
terminal: both write `audit/events.jsonl`); a receiver that is down delays
nothing and no other receiver; no secret rides along."""

from __future__ import annotations

import asyncio
import socket

from aiohttp import web
from cfproxies.envfile import read_env_file

from cftui import killswitch, lifecycle
from cftui.audit.events import record_event
from cftui.controller.notify import EventFollower, event_for
from cftui.fleet import FleetHome
from tests.controller.conftest import Receiver, verify_signature
from tests.fakes.memory_runtime import MemoryRuntime, MemoryRuntimes

KINDS = ("kill", "unlock", "start", "stop", "crash", "budget", "snapshot_failed", "promote")


def _secrets(home: FleetHome) -> dict[str, str]:
    return read_env_file(home.root / "secrets" / "controller.env")


def _dead_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return f"http://127.0.0.1:{port}/hook"


async def _cause_every_kind(home: FleetHome, runtime: MemoryRuntime) -> None:
    runtimes = MemoryRuntimes(home, runtime)
    bot = home.bot("alpha")
    await lifecycle.stop(home, bot, runtimes)
    await lifecycle.start(home, bot, runtimes)
    await killswitch.kill(home, [bot], runtimes)
    killswitch.unlock(home, ["alpha"])
    # what the watchdog, the budget check, the scheduler and a promotion record
    record_event(home, "crash", "alpha", state="gateway stopped (exit 1)", attempt=0)
    record_event(home, "budget", "alpha", percent=80, period="day", spent_usd=4.0)
    record_event(home, "snapshot", "alpha", op="scheduled", ok=False, error="disk full")
    record_event(home, "promote", "alpha", commit="a" * 40, source="origin/main", count=1)


async def test_a_receiver_gets_a_signed_event_of_each_kind(
    fleet: FleetHome, runtime: MemoryRuntime, start_controller, receiver: Receiver
) -> None:
    await start_controller(notify=(receiver.url,))
    await _cause_every_kind(fleet, runtime)
    for kind in KINDS:
        event = await receiver.wait_for(kind)
        assert event["bot"] == "alpha" or "alpha" in event.get("bots", []), event
    secret = _secrets(fleet)["CF_NOTIFY_SECRET"].encode()
    for headers, body, _t in receiver.got:
        assert verify_signature(secret, headers, body)
        assert headers["Content-Type"] == "application/json"
    events = receiver.events()
    assert [e["event"] for e in events if e["event"] in ("stop", "start")][:2] == ["stop", "start"]
    kill = next(e for e in events if e["event"] == "kill")
    assert kill["bots"] == ["alpha"] and kill["ok"] is True and kill["reports"]
    assert next(e for e in events if e["event"] == "budget")["percent"] == 80


async def test_no_secret_is_ever_in_a_body(
    fleet: FleetHome, runtime: MemoryRuntime, start_controller, receiver: Receiver
) -> None:
    await start_controller(notify=(receiver.url,))
    proxy_token = read_env_file(fleet.gateway_env("alpha"))
    # an event carrying what must never go out (as a careless caller might write it)
    record_event(fleet, "kill", bots=["alpha"], token="s3cret-token", prompt="hello", ok=True)
    await _cause_every_kind(fleet, runtime)
    await receiver.wait_for("promote")
    values = [*_secrets(fleet).values(), *proxy_token.values(), "s3cret-token", "hello"]
    for _h, body, _t in receiver.got:
        for value in values:
            if len(value) >= 5:
                assert value.encode() not in body


async def test_a_receiver_that_is_down_delays_nothing(
    fleet: FleetHome, runtime: MemoryRuntime, start_controller, receiver: Receiver
) -> None:
    c = await start_controller(notify=(_dead_url(), receiver.url), notify_backoff_s=0.05)
    token = _secrets(fleet)["CF_CONTROLLER_TOKEN"]
    status, body = await c.post("/kill", b'{"all": true}', {"Authorization": f"Bearer {token}"})
    assert status == 200 and body["ok"]
    answered_with_no_failure_yet = not any("not delivered" in x or "failed" in x for x in c.lines)
    assert answered_with_no_failure_yet  # the kill did not wait for the dead receiver
    await receiver.wait_for("kill")  # the live receiver is not held up either
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not any("kill failed" in x for x in c.lines) and loop.time() < deadline:
        await asyncio.sleep(0.05)
    assert any("kill failed" in x for x in c.lines), c.lines  # retried, then given up, said once


async def test_a_failing_receiver_is_retried_with_a_fresh_signature(
    fleet: FleetHome, start_controller
) -> None:
    calls: list[dict[str, str]] = []

    async def flaky(request: web.Request) -> web.Response:
        calls.append(dict(request.headers))
        return web.Response(status=503 if len(calls) < 3 else 200)

    app = web.Application()
    app.router.add_post("/", flaky)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        await start_controller(notify=(f"http://{host}:{port}/",), notify_backoff_s=0.05)
        killswitch.unlock(fleet, [])  # nothing: no event
        record_event(fleet, "stop", "alpha")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while len(calls) < 3 and loop.time() < deadline:
            await asyncio.sleep(0.02)
        assert len(calls) == 3
        assert all(h["X-ClawFactory-Signature"].startswith("sha256=") for h in calls)
    finally:
        await runner.cleanup()


def test_the_follower_waits_for_a_whole_line_and_skips_garbage(fleet: FleetHome) -> None:
    record_event(fleet, "start", "alpha")  # before: not sent
    follower = EventFollower(fleet)
    with open(fleet.events_log, "ab") as f:
        f.write(b'not json\n{"action": "stop", "bot": "alpha"')
    assert follower.read_new() == []
    with open(fleet.events_log, "ab") as f:
        f.write(b', "ts": "t"}\n')
    assert follower.read_new() == [{"action": "stop", "bot": "alpha", "ts": "t"}]


def test_only_lifecycle_events_go_out() -> None:
    assert event_for({"action": "capture", "bot": "a"}) is None
    assert event_for({"action": "snapshot", "op": "create", "bot": "a"}) is None
    assert event_for({"action": "snapshot", "ok": False, "bot": "a"})["event"] == "snapshot_failed"
    assert event_for({"action": "restart", "bot": "a"})["event"] == "start"
    assert event_for({"action": "promote", "ok": False, "bot": "a"})["event"] == "promote_failed"


def test_credentials_in_a_quoted_url_are_masked() -> None:
    rec = {"action": "promote", "ok": False, "bot": "a",
           "error": "fetch https://bob:ghp_abcdef123456@github.com/acme/bot.git failed"}  # fmt: skip
    event = event_for(rec)
    assert event is not None and "ghp_abcdef123456" not in event["error"]
    assert "https://***@github.com/acme/bot.git" in event["error"]
