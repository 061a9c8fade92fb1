"""`cftui start A B`, `start --all`, `stop A B` and `stop --all` against
the real engine (issue #23): one line a bot, each one recorded, each stack
up or down after it."""

from __future__ import annotations

import json
import secrets

import pytest

from cftui.audit.events import read_events
from cftui.fleet import FleetHome
from cftui.runtime.docker.names import container_name
from cftui.runtime.status import SERVICES

from .helpers import World


def test_stop_several_bots_and_all(home: FleetHome, cli, docker_client) -> None:
    # Container names are global (cf-BOT-SERVICE): names no other test uses.
    names = [f"cfmany{secrets.token_hex(3)}{n}" for n in ("a", "b")]
    for name in names:
        assert cli("init", name).code == 0
    try:
        r = cli("stop", *names)
        assert r.code == 0, r
        assert r.out.strip().splitlines() == [f"{n}: stop done" for n in names]
        r = cli("stop", "--all")
        assert r.code == 0, r
        assert r.out.strip().splitlines() == [f"{n}: stop done" for n in names]
        stops = [e["bot"] for e in read_events(home) if e["action"] == "stop"]
        assert stops == names + names
    finally:
        for name in names:
            cli("delete", "--yes", name)


def test_the_verbs_kill_and_unlock_say_it_in_json(home: FleetHome, cli, docker_client) -> None:
    """`--json` (issue #23): one document a command, each bot's outcome in
    it, the exit status as without it."""
    names = [f"cfjson{secrets.token_hex(3)}{n}" for n in ("a", "b")]
    for name in names:
        assert cli("init", name).code == 0
    try:
        r = cli("stop", "--json", *names)
        assert r.code == 0, r
        assert json.loads(r.out) == [
            {"bot": n, "action": "stop", "ok": True, "error": None, "notes": []} for n in names
        ]
        r = cli("kill", "--json", *names)
        assert r.code == 0, r
        killed = json.loads(r.out)
        assert killed["ok"] is True and [b["bot"] for b in killed["bots"]] == names
        for report in killed["bots"]:
            assert report["errors"] == [] and report["ok"] is True
            assert set(report) == {
                "bot", "ok", "network_cut", "gateway_killed", "stopped", "already_gone",
                "cancelled", "errors", "seconds",
            }  # fmt: skip
        # Locked: a start of each fails, said in the document, exit 1 (one bot too).
        for bots in (names, names[:1]):
            r = cli("start", "--json", *bots)
            assert r.code == 1, r
            outcomes = json.loads(r.out)
            assert [o["bot"] for o in outcomes] == bots
            assert all(not o["ok"] and "cftui unlock" in o["error"] for o in outcomes)
        r = cli("unlock", "--json", "--all")
        assert r.code == 0 and json.loads(r.out) == {"unlocked": sorted(names)}
        r = cli("unlock", "--json", *names)
        assert r.code == 0 and json.loads(r.out) == {"unlocked": []}
        r = cli("delete", "--yes", "--json", names[0])
        assert r.code == 0, r
        kept = json.loads(r.out)
        assert kept["bot"] == names[0] and str(home.audit_dir(names[0])) in kept["kept"]
    finally:
        cli("unlock", "--all")
        for name in names:
            cli("delete", "--yes", name)


def _states(world: World, names: list[str]) -> dict[str, set[str]]:
    """Each bot's containers' Docker states."""
    return {
        n: {world.client.containers.get(container_name(n, s)).status for s in SERVICES}
        for n in names
    }


@pytest.mark.docker
@pytest.mark.timeout(900)
def test_start_and_stop_several_real_stacks_and_all(
    world: World, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two real stacks (the world's fake provider): `start A B` brings both
    up, `stop --all` both down, `start --all` both up again (the containers
    kept), `stop A B` both down; the fleet home holds only these two."""
    monkeypatch.setenv("CLAWFACTORY_HOME", str(world.home.root))
    names = [world.add_bot(f"ms{world.suffix}{n}").name for n in ("a", "b")]
    steps = [
        (("start", *names), "start", {"running"}),
        (("stop", "--all"), "stop", {"exited"}),
        (("start", "--all"), "start", {"running"}),
        (("stop", *names), "stop", {"exited"}),
    ]
    for argv, verb, docker_states in steps:
        r = cli(*argv)
        assert r.code == 0, (argv, r)
        assert r.out.strip().splitlines() == [f"{n}: {verb} done" for n in names], (argv, r)
        assert _states(world, names) == {n: docker_states for n in names}, argv
    recorded = [
        (e["action"], e["bot"]) for e in read_events(world.home) if e["action"] in ("start", "stop")
    ]
    assert recorded == [(verb, n) for _, verb, _ in steps for n in names]
