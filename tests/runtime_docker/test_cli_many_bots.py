"""`cftui stop A B` and `stop --all` against the real engine (issue #23):
one line a bot, each stop recorded."""

from __future__ import annotations

import secrets

from cftui.audit.events import read_events
from cftui.fleet import FleetHome


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
