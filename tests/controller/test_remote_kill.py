"""`POST /kill`: with the token it runs the one kill switch and answers its
per-bot report; without it (or with a wrong one) 401 and nothing killed."""

from __future__ import annotations

import json

from cfproxies.envfile import read_env_file

from cftui import locks
from cftui.audit.events import read_events
from cftui.fleet import FleetHome
from cftui.runtime.status import KILLED
from tests.controller.conftest import BOTS
from tests.fakes.memory_runtime import MemoryRuntime


def _token(home: FleetHome) -> str:
    return read_env_file(home.root / "secrets" / "controller.env")["CF_CONTROLLER_TOKEN"]


async def test_the_token_kills_and_locks_the_whole_fleet(
    fleet: FleetHome, runtime: MemoryRuntime, start_controller
) -> None:
    c = await start_controller()
    auth = {"Authorization": f"Bearer {_token(fleet)}"}
    status, body = await c.post("/kill", b'{"all": true}', auth)
    assert status == 200 and body["ok"] is True
    assert set(body["bots"]) == set(BOTS)
    for bot in BOTS:
        report = body["bots"][bot]
        assert report["network_cut"] and report["gateway_killed"], report
        assert report["summary"].startswith(f"{bot}: network cut, gateway killed")
        assert runtime.states[bot]["gateway"] == KILLED
        assert locks.is_locked(fleet, bot)
    [event] = [e for e in read_events(fleet) if e["action"] == "kill"]
    assert event["bots"] == list(BOTS)
    assert any("remote kill" in line for line in c.lines)


async def test_a_named_bot_alone_is_killed(
    fleet: FleetHome, runtime: MemoryRuntime, start_controller
) -> None:
    c = await start_controller()
    auth = {"Authorization": f"Bearer {_token(fleet)}"}
    status, body = await c.post("/kill", b'{"bots": ["beta"]}', auth)
    assert status == 200 and list(body["bots"]) == ["beta"]
    assert locks.locked_bots(fleet) == ["beta"]
    assert runtime.states["alpha"]["gateway"] != KILLED


async def test_no_token_or_a_wrong_one_answers_401_and_kills_nothing(
    fleet: FleetHome, runtime: MemoryRuntime, start_controller
) -> None:
    c = await start_controller()
    token = _token(fleet)
    for headers in (
        {},
        {"Authorization": "Bearer "},
        {"Authorization": f"Bearer {token[:-1]}x"},
        {"Authorization": f"Basic {token}"},
        {"Authorization": f"Bearer {token}{token}"},
    ):
        status, body = await c.post("/kill", b'{"all": true}', headers)
        assert status == 401 and body == {"error": "unauthorized"}, headers
    assert locks.locked_bots(fleet) == []
    assert ("kill", "alpha") not in runtime.calls
    assert not [e for e in read_events(fleet) if e["action"] == "kill"]


async def test_bad_bodies_are_refused_in_one_line_and_kill_nothing(
    fleet: FleetHome, runtime: MemoryRuntime, start_controller
) -> None:
    c = await start_controller()
    auth = {"Authorization": f"Bearer {_token(fleet)}"}
    for body in (
        b"not json",
        b"[]",
        b'{"bots": []}',
        b'{"bots": "alpha"}',
        b'{"all": false}',
        b'{"all": true, "bots": ["alpha"]}',
        b'{"bots": ["../../etc"]}',
        b'{"bots": ["nosuchbot"]}',
        b'{"unlock": true}',
    ):
        status, answer = await c.post("/kill", body, auth)
        assert status == 400 and "\n" not in answer["error"], (body, answer)
    status, answer = await c.post("/kill", b'{"bots": ["' + b"a" * 20000 + b'"]}', auth)
    assert status == 413
    assert locks.locked_bots(fleet) == []


async def test_kill_listen_serves_kill_alone_and_listen_no_kill(
    fleet: FleetHome, runtime: MemoryRuntime, start_controller
) -> None:
    c = await start_controller(kill_listen="127.0.0.1:0")
    auth = {"Authorization": f"Bearer {_token(fleet)}"}
    status, _ = await c.post("/kill", b'{"all": true}', auth)
    assert status in (404, 405)  # not on the webhooks listener
    host, port = c.controller.bound[1]
    async with c.session.post(
        f"http://{host}:{port}/kill", data=b'{"all": true}', headers=auth
    ) as r:
        assert r.status == 200 and json.loads(await r.text())["ok"] is True
    async with c.session.post(f"http://{host}:{port}/webhooks/github/alpha", data=b"{}") as r:
        assert r.status in (404, 405)
