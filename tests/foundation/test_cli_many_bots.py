"""Lifecycle verbs over several bots (issue #23): `start|stop|restart|rebuild
BOT... | --all`, one line a bot, exit 1 if any failed, every name checked
before anything is done."""

from __future__ import annotations

import pytest

from cftui import locks
from cftui.audit.events import read_events
from cftui.fleet import FleetHome


@pytest.mark.parametrize("verb", ["start", "stop", "restart", "rebuild"])
def test_a_verb_needs_bots_or_all_but_not_both(home: FleetHome, cli, verb: str) -> None:
    assert cli("init", "bot1").code == 0
    r = cli(verb)
    assert r.code == 2 and r.err.strip() == f"cftui: name the bots to {verb}, or use --all"
    r = cli(verb, "--all", "bot1")
    assert r.code == 2 and "not both" in r.err
    assert [e["action"] for e in read_events(home)] == ["init"]


@pytest.mark.parametrize("verb", ["start", "stop", "kill", "unlock"])
def test_an_unknown_name_among_several_does_nothing(home: FleetHome, cli, verb: str) -> None:
    assert cli("init", "bot1").code == 0
    r = cli(verb, "bot1", "nobot")
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1 and "nobot" in r.err
    assert r.out == ""
    assert [e["action"] for e in read_events(home)] == ["init"]
    assert locks.locked_bots(home) == []


def test_each_bot_gets_its_line_and_a_failure_does_not_stop_the_others(
    home: FleetHome, cli
) -> None:
    for name in ("bot1", "bot2"):
        assert cli("init", name).code == 0
    locks.lock_bots(home, ["bot1", "bot2"])  # the kill switch's lock, without an engine
    r = cli("start", "bot1", "bot2")
    assert r.code == 1
    lines = r.out.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("bot1: start failed: ") and "locked" in lines[0]
    assert lines[1].startswith("bot2: start failed: ") and "cftui unlock bot2" in lines[1]


def test_one_bot_keeps_the_one_line_error(home: FleetHome, cli) -> None:
    assert cli("init", "bot1").code == 0
    cli("kill", "bot1")
    r = cli("start", "bot1")
    assert r.code == 1 and r.out == ""
    assert r.err.startswith("cftui: bot1 is locked") and len(r.err.strip().splitlines()) == 1


def test_all_of_an_empty_fleet_is_nothing_to_do(home: FleetHome, cli) -> None:
    home.root.mkdir(parents=True)
    r = cli("stop", "--all")
    assert (r.code, r.out.strip()) == (0, "no bots to stop")
