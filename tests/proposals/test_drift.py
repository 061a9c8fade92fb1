"""Config drift: a change the gateway made to its own openclaw.json is a
proposal; cftui's own writes approve only what they change."""

from __future__ import annotations

import json

import pytest

from cftui.audit.events import read_events
from cftui.errors import ProposalError
from cftui.fleet import FleetHome
from cftui.gateway import approved
from cftui.gateway import config as gc
from cftui.gateway import drift as config_drift
from cftui.proposals import scan

WIRED = {
    "models": {
        "providers": {
            "anthropic": {"baseUrl": "http://llm-proxy:9090/anthropic", "apiKey": "tok-secret"}
        }
    },
    "agents": {"defaults": {"model": {"primary": "a"}}},
}


def agent_writes(home: FleetHome, bot: str, data: dict) -> None:
    gc.config_path(home, bot).write_text(json.dumps(data))


@pytest.fixture
def wired(home: FleetHome, bot: str) -> str:
    gc.write_config(home, bot, WIRED, reason="runtime wiring", actor="cftui")
    return bot


def test_no_drift_after_cftuis_own_write(home: FleetHome, wired: str) -> None:
    assert config_drift.drift(home, wired).changed == []
    assert home.approved_config(wired).stat().st_mode & 0o777 == 0o600


def test_the_gateways_change_is_drift_and_a_proposal(home: FleetHome, wired: str) -> None:
    changed = json.loads(json.dumps(WIRED))
    changed["agents"]["defaults"]["model"]["primary"] = "evil/model"
    changed["tools"] = {"exec": {"enabled": True}}
    agent_writes(home, wired, changed)
    assert config_drift.drift(home, wired).changed == ["agents.defaults.model.primary", "tools"]
    found = scan.scan(home, wired)
    assert found.config_drift == ["agents.defaults.model.primary", "tools"] and found.count == 1
    text = config_drift.diff_text(home, wired)
    assert "evil/model" in text and "tok-secret" not in text


def test_a_cftui_write_does_not_approve_the_drift_in_passing(home: FleetHome, wired: str) -> None:
    changed = json.loads(json.dumps(WIRED))
    changed["tools"] = {"exec": {"enabled": True}}
    agent_writes(home, wired, changed)
    gc.set_keys(home, wired, ["gateway.port=18789"])  # the operator sets one key
    assert config_drift.drift(home, wired).changed == ["tools"]
    rewired = gc.read_config(home, wired)
    rewired["models"]["providers"]["anthropic"]["apiKey"] = "tok-2"
    gc.write_config(home, wired, rewired, reason="runtime wiring", actor="cftui")
    assert config_drift.drift(home, wired).changed == ["tools"]


def test_accept_makes_the_current_config_the_approved_one(home: FleetHome, wired: str) -> None:
    changed = {**WIRED, "tools": {"exec": {"enabled": False}}}
    agent_writes(home, wired, changed)
    assert config_drift.accept_drift(home, wired) == ["tools"]
    assert config_drift.drift(home, wired).changed == []
    assert approved.read_approved(home, wired) == changed
    with pytest.raises(ProposalError, match="not drifted"):
        config_drift.accept_drift(home, wired)


def test_revert_writes_the_approved_config_back(home: FleetHome, wired: str) -> None:
    agent_writes(home, wired, {**WIRED, "tools": {"exec": {"enabled": True}}})
    assert config_drift.revert(home, wired) == ["tools"]
    assert gc.read_config(home, wired) == WIRED
    assert config_drift.drift(home, wired).changed == []
    ops = [e["op"] for e in read_events(home, wired) if e["action"] == "config-drift"]
    assert ops == ["revert"]


def test_an_unparsable_config_is_drift_that_only_revert_fixes(home: FleetHome, wired: str) -> None:
    gc.config_path(home, wired).write_text("{not json")
    found = config_drift.drift(home, wired)
    assert found.drifted and not found.current_valid
    with pytest.raises(ProposalError, match="not a valid config"):
        config_drift.accept_drift(home, wired)
    config_drift.revert(home, wired)
    assert gc.read_config(home, wired) == WIRED


def test_accept_and_revert_are_refused_while_locked(home: FleetHome, wired: str) -> None:
    import asyncio

    from cftui import locks
    from cftui.errors import BotLocked

    agent_writes(home, wired, {**WIRED, "tools": {}})
    locks.lock_bots(home, [wired])
    for accept in (True, False):
        with pytest.raises(BotLocked):
            asyncio.run(config_drift.settle(home, wired, accept=accept))
    assert config_drift.drift(home, wired).changed == ["tools"]
