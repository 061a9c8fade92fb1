"""`cftui costs`: per bot, model, provider or day, since a date, as a
table and as JSON; unpriced calls counted apart (never $0); bad input is
one line with exit 2; agent-chosen names reach the terminal inert."""

from __future__ import annotations

import json

import pytest

from cftui.fleet import FleetHome
from tests.audit.test_traffic_cost import proxy_lines


@pytest.fixture
def fleet(home: FleetHome, cli) -> FleetHome:
    for bot in ("alpha", "beta", "gamma"):
        assert cli("init", bot).code == 0
    alpha = proxy_lines("2026-11-22T10:00:00.000Z", "gpt-4o", 0.5)
    alpha += proxy_lines("2026-11-23T10:00:00.000Z", "gpt-4o", 0.25)
    alpha += proxy_lines("2026-11-24T10:00:00.000Z", "claude-sonnet-4-5", 1.0)
    alpha += proxy_lines("2026-11-24T11:00:00.000Z", "selfhosted-7b", None)
    alpha += [b'{"v":1,"ts":"2026-11-24T11:00:0']  # a torn tail
    home.traffic_log("alpha").write_bytes(b"".join(alpha))
    beta = proxy_lines("2026-11-24T12:00:00.000Z", "gpt-4o", 0.125)
    beta += proxy_lines("2026-11-24T12:01:00.000Z", "evil\x1b]0;pwned\x07", None)
    home.traffic_log("beta").write_bytes(b"".join(beta))
    return home  # gamma: no traffic yet


def test_costs_per_bot_shows_unpriced_apart(fleet: FleetHome, cli) -> None:
    result = cli("costs")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].split() == ["BOT", "CALLS", "COST", "UNPRICED", "TOKENS"]
    rows = {line.split()[0]: line.split() for line in lines[1:4]}
    assert rows["alpha"][1:4] == ["4", "$1.75", "1"]
    assert rows["beta"][1:4] == ["2", "$0.125", "1"]
    assert rows["total"][1:4] == ["6", "$1.88", "2"]
    assert "2 call(s) unpriced" in result.out


def test_costs_json_by_model_since_a_date(fleet: FleetHome, cli) -> None:
    result = cli("costs", "--by", "model", "--since", "2026-11-23", "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["by"] == "model" and report["since"] == "2026-11-23"
    groups = {g["key"]: g for g in report["groups"]}
    assert groups["gpt-4o"]["cost_usd"] == pytest.approx(0.375)
    assert groups["gpt-4o"]["calls"] == 2
    assert groups["claude-sonnet-4-5"]["cost_usd"] == 1.0
    unknown = groups["selfhosted-7b"]
    assert unknown["cost_usd"] is None and unknown["unpriced_calls"] == 1
    assert report["total"]["priced_calls"] == 3 and report["total"]["unpriced_calls"] == 2
    assert report["groups"][0]["key"] == "claude-sonnet-4-5"  # the most costly first


def test_costs_of_one_bot_by_day(fleet: FleetHome, cli) -> None:
    result = cli("costs", "alpha", "--by", "day", "--json")
    days = [(g["key"], g["cost_usd"]) for g in json.loads(result.out)["groups"]]
    assert days == [("2026-11-22", 0.5), ("2026-11-23", 0.25), ("2026-11-24", 1.0)]
    assert cli("costs", "gamma").out == "no calls\n"


def test_agent_chosen_model_names_reach_the_terminal_inert(fleet: FleetHome, cli) -> None:
    result = cli("costs", "beta", "--by", "model")
    assert result.code == 0
    assert "\x1b" not in result.out and "\x07" not in result.out
    assert "evil" in result.out
    as_json = cli("costs", "beta", "--by", "model", "--json").out
    assert "\x1b" not in as_json and json.loads(as_json)["groups"][1]["key"].startswith("evil\x1b")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--since", "yesterday"], "bad --since 'yesterday'"),
        (["--since", "2026-13-01"], "bad --since"),
        (["--since", "20261101"], "bad --since"),
        (["ghost"], "no bot named 'ghost'"),
        (["Bad Name"], "bot name"),
        (["--by", "colour"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_exit_2(fleet: FleetHome, cli, args: list[str], needle: str) -> None:
    result = cli("costs", *args)
    assert result.code == 2
    assert needle in result.err and result.err.count("\n") == 1
    assert result.out == ""


def test_a_hostile_log_is_read_without_a_crash(fleet: FleetHome, cli) -> None:
    """Bytes that are no UTF-8, a line a thousand times larger than usual,
    a record whose fields are all of the wrong type, junk: one line each
    at most, the priced call still counted."""
    junk = [
        b"\xff\xfe not json at all\n",
        b'{"v":1,"ts":"2026-11-24T01:00:00.000Z","model":"\xc3\x28","cost_usd":0.5}\n',
        b'{"v":1,"ts":5,"model":["x"],"provider":{},"status":"x","cost_usd":"1e9"}\n',
        b'{"v":1,"ts":"2026-11-24T02:00:00.000Z","model":"big","request":"'
        + b"A" * 2_000_000
        + b'","cost_usd":0.25}\n',
        b"[1,2,3]\n",
    ]
    path = fleet.traffic_log("gamma")
    path.write_bytes(b"".join(junk))
    for by in ("bot", "model", "provider", "day"):
        result = cli("costs", "gamma", "--by", by, "--json")
        assert result.code == 0, result.err
        total = json.loads(result.out)["total"]
        assert total["priced_calls"] == 2 and total["cost_usd"] == 0.75
        assert total["unpriced_calls"] == 1  # the record with a string for a price
