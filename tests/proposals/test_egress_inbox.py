"""Egress requests as proposals: the ledger the egress proxy writes, read as
hostile input; dismissals and allows; `cftui proposals --allow/--dismiss`.

The ledgers are written by hand in the shared format (tests/proposals/
egress_ledger.py); the Docker test of the real proxy writing one is
tests/runtime_docker/test_egress_inbox_stack.py."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta

import pytest

from cftui import locks
from cftui.audit.events import read_events
from cftui.errors import BotLocked, UsageError
from cftui.fleet import FleetHome
from cftui.proposals import egress_inbox
from cftui.proposals.egress_requests import MAX_ENTRIES, MAX_LEDGER_BYTES, read_ledger

from .egress_ledger import T0, entry, stamp, write_ledger, write_ledger_bytes


def now() -> datetime:
    return datetime.now(UTC)


# --- the reader ------------------------------------------------------------------


def test_reader_returns_typed_requests_of_both_kinds(home: FleetHome, bot: str) -> None:
    write_ledger(
        home,
        bot,
        [
            entry("api.example.com", count=2),
            entry(
                "api.github.com",
                method="POST",
                path="/repos/acme/x",
                rule="api.github.com GET /repos/acme/",
                connect=False,
            ),
        ],
        dropped=3,
    )
    ledger = read_ledger(home, bot)
    assert ledger.note is None and ledger.dropped == 3
    plain, narrow = ledger.requests
    assert (plain.key, plain.port, plain.count, plain.connect) == (
        "api.example.com:443",
        443,
        2,
        True,
    )
    assert plain.first_at == T0 and plain.last_at == T0 + timedelta(minutes=1)
    assert plain.attempt == "CONNECT" and plain.rule is None
    assert narrow.key == "api.github.com:443 POST /repos/acme/x"
    assert narrow.attempt == "POST /repos/acme/x"
    assert narrow.suggest == "api.github.com POST /repos/acme/x"
    assert narrow.to_json()["rule"] == "api.github.com GET /repos/acme/"


def test_no_ledger_is_no_request(home: FleetHome, bot: str) -> None:
    ledger = read_ledger(home, bot)
    assert ledger.requests == () and ledger.note is None


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (dict(port="443"), "port is not an integer"),
        (dict(port=70000), "port 70000 is out of range"),
        (dict(count=True), "count is not an integer"),
        (dict(count=0), "count 0 is out of range"),
        (dict(host=5), "host is not a string"),
        (dict(host="h" * 10_000), "host is longer than 255"),
        (dict(path="/" + "p" * 600), "path is longer than 512"),
        (dict(suggest=5), "suggest is not a string"),
        (dict(connect="yes"), "connect is not true or false"),
        (dict(first="yesterday"), "first is not an RFC 3339 time"),
        (dict(last="2026-12-02T05:00:00"), "last has no time zone"),
        (dict(last="2020-01-01T00:00:00Z"), "last is before first"),
        (dict(method=["GET"]), "method is not a string"),
    ],
)
def test_reader_skips_a_bad_entry_with_a_count_and_one_line(
    home: FleetHome, bot: str, bad: dict, reason: str
) -> None:
    write_ledger(home, bot, [entry("good.example"), {**entry("bad.example"), **bad}])
    ledger = read_ledger(home, bot)
    assert [r.host for r in ledger.requests] == ["good.example"]
    assert ledger.skipped == 1
    assert ledger.note is not None and reason in ledger.note and "\n" not in ledger.note
    assert len(ledger.note) < 200  # the huge field is never quoted back


def test_reader_skips_non_objects_and_a_key_listed_twice(home: FleetHome, bot: str) -> None:
    write_ledger(home, bot, [entry("a.example"), "x", None, 7, entry("a.example", count=9)])
    ledger = read_ledger(home, bot)
    assert [r.count for r in ledger.requests] == [1] and ledger.skipped == 4


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff\xfe{not json", "not valid UTF-8 JSON"),
        (b'{"v": 1, "bot": "prop", "requests": [{"host": "\xc3\x28"}]}', "not valid UTF-8 JSON"),
        (b"[]", "not a JSON object"),
        (b'{"v": 2, "bot": "prop", "requests": []}', "not version 1"),
        (b'{"v": 1, "bot": "other", "requests": []}', "written for another bot"),
        (b'{"v": 1, "bot": "prop", "requests": {}}', "requests is not a list"),
    ],
)
def test_reader_refuses_a_bad_file_in_one_line(
    home: FleetHome, bot: str, data: bytes, reason: str
) -> None:
    write_ledger_bytes(home, bot, data)
    ledger = read_ledger(home, bot)
    assert ledger.requests == ()
    assert ledger.note is not None and reason in ledger.note and "\n" not in ledger.note


def test_reader_refuses_a_symlink_in_its_place_without_following_it(
    home: FleetHome, bot: str, tmp_path
) -> None:
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(json.dumps({"v": 1, "bot": bot, "requests": [entry()]}))
    home.audit_dir(bot).mkdir(parents=True, exist_ok=True)
    os.symlink(elsewhere, home.egress_requests(bot))
    ledger = read_ledger(home, bot)
    assert ledger.requests == ()
    assert ledger.note is not None and "symbolic link" in ledger.note


def test_reader_refuses_a_fifo_without_waiting_on_it(home: FleetHome, bot: str) -> None:
    home.audit_dir(bot).mkdir(parents=True, exist_ok=True)
    os.mkfifo(home.egress_requests(bot))
    ledger = read_ledger(home, bot)
    assert ledger.requests == () and "fifo" in str(ledger.note)


def test_reader_refuses_a_file_over_its_bound_unread(home: FleetHome, bot: str) -> None:
    home.audit_dir(bot).mkdir(parents=True, exist_ok=True)
    with open(home.egress_requests(bot), "wb") as f:
        f.truncate(MAX_LEDGER_BYTES + 1)  # sparse: nothing to read, were it read
    ledger = read_ledger(home, bot)
    assert ledger.requests == () and "larger than" in str(ledger.note)


def test_reader_looks_at_no_more_entries_than_a_ledger_holds(home: FleetHome, bot: str) -> None:
    many = [entry(f"h{i}.example") for i in range(MAX_ENTRIES)]
    body = json.dumps({"v": 1, "bot": bot, "requests": many})
    # and a million more after them
    data = body[:-2].encode() + b"," + b",".join([b"{}"] * 1_000_000) + b"]}"
    write_ledger_bytes(home, bot, data)
    ledger = read_ledger(home, bot)
    assert len(ledger.requests) == MAX_ENTRIES
    assert ledger.skipped == 1_000_000
    assert f"more than the {MAX_ENTRIES} entries" in str(ledger.note)


# --- dismiss ------------------------------------------------------------------


def test_dismiss_hides_until_refused_again_after_the_window(home: FleetHome, bot: str) -> None:
    write_ledger(home, bot, [entry("a.example", last=now()), entry("b.example", last=now())])
    _, settled = egress_inbox.dismiss(home, bot, "a.example:443", window=timedelta(hours=1))
    inbox = egress_inbox.read_inbox(home, bot)
    assert [r.host for r in inbox.pending] == ["b.example"] and inbox.hidden == 1
    # refused again within the window: still hidden
    within = settled.at + timedelta(minutes=30)
    write_ledger(home, bot, [entry("a.example", count=5, first=T0, last=within)])
    assert egress_inbox.read_inbox(home, bot).pending == ()
    # refused again after it: back, with its count
    after = settled.at + timedelta(hours=1, seconds=1)
    write_ledger(home, bot, [entry("a.example", count=6, first=T0, last=after)])
    (back,) = egress_inbox.read_inbox(home, bot).pending
    assert back.count == 6
    (event,) = [e for e in read_events(home, bot) if e["action"] == "egress-dismiss"]
    assert event["key"] == "a.example:443" and event["window_s"] == 3600


def test_dismissals_are_the_operators_private_file_beside_no_tree_of_the_agent(
    home: FleetHome, bot: str
) -> None:
    write_ledger(home, bot, [entry()])
    egress_inbox.dismiss(home, bot, "api.example.com:443")
    path = home.egress_dismissals(bot)
    assert path == home.root / "proposals" / bot / "egress-dismissed.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    saved = json.loads(path.read_text())["settled"]["api.example.com:443"]
    assert saved["action"] == "dismissed" and saved["window_s"] == 86400


def test_a_corrupt_dismissals_file_shows_everything_and_says_so(home: FleetHome, bot: str) -> None:
    write_ledger(home, bot, [entry()])
    egress_inbox.dismiss(home, bot, "api.example.com:443")
    home.egress_dismissals(bot).write_bytes(b"\x00garbage")
    inbox = egress_inbox.read_inbox(home, bot)
    assert inbox.count == 1 and any("dismissals ignored" in n for n in inbox.notes)
    egress_inbox.dismiss(home, bot, "api.example.com:443")  # written afresh
    assert egress_inbox.read_inbox(home, bot).count == 0


def test_dismiss_of_an_unknown_key_is_a_usage_error(home: FleetHome, bot: str) -> None:
    write_ledger(home, bot, [entry()])
    with pytest.raises(UsageError, match="no egress request 'nope:1'"):
        egress_inbox.dismiss(home, bot, "nope:1")


# --- allow ---------------------------------------------------------------------


def test_allow_adds_the_suggestion_as_cftui_egress_does_and_records_it(
    home: FleetHome, bot: str
) -> None:
    write_ledger(home, bot, [entry("api.example.com", count=2, last=now())])
    result = egress_inbox.allow(home, bot, "api.example.com:443")
    assert result.pattern == "api.example.com:443" and not result.already
    assert result.applied.confirmed is None  # no proxy runs here
    assert "api.example.com:443" in home.bot(bot).egress_allow
    control = json.loads(home.egress_control(bot).read_text())
    assert "api.example.com:443" in control["allow"]
    actions = [e["action"] for e in read_events(home, bot)]
    assert actions[-2:] == ["egress", "egress-allow"]
    event = list(read_events(home, bot))[-1]
    assert event["key"] == "api.example.com:443" and event["count"] == 2
    assert event["allow"] == "api.example.com:443"
    assert egress_inbox.read_inbox(home, bot).count == 0
    # the proxy refuses it again later (the operator took it off the list): back
    write_ledger(home, bot, [entry("api.example.com", count=3, last=now() + timedelta(seconds=5))])
    assert egress_inbox.read_inbox(home, bot).count == 1


def test_allow_is_refused_while_the_bot_is_locked(home: FleetHome, bot: str) -> None:
    write_ledger(home, bot, [entry()])
    locks.lock_bots(home, [bot])
    with pytest.raises(BotLocked, match="unlock"):
        egress_inbox.allow(home, bot, "api.example.com:443")
    assert home.bot(bot).egress_allow == ()
    assert not [e for e in read_events(home, bot) if e["action"].startswith("egress")]
    egress_inbox.dismiss(home, bot, "api.example.com:443")  # hides only: allowed


def test_allow_of_a_suggestion_that_is_no_pattern_changes_nothing(
    home: FleetHome, bot: str
) -> None:
    write_ledger(home, bot, [entry("bad.example", suggest="not a pattern\x1b[31m")])
    with pytest.raises(UsageError):
        egress_inbox.allow(home, bot, "bad.example:443")
    assert home.bot(bot).egress_allow == ()
    assert egress_inbox.read_inbox(home, bot).count == 1


# --- the CLI ------------------------------------------------------------------


def test_cli_lists_egress_requests_in_json_beside_the_code(cli, home: FleetHome, bot: str) -> None:
    write_ledger(
        home,
        bot,
        [
            entry("a.example", count=2, last=now()),
            entry("b.example", method="GET", path="/x", rule="b.example GET /ok/", last=now()),
        ],
    )
    res = cli("proposals", bot, "--json")
    assert res.code == 0, res.err
    data = json.loads(res.out)
    assert data["changes"] == []
    keys = {r["key"]: r for r in data["egress"]}
    assert set(keys) == {"a.example:443", "b.example:443 GET /x"}
    assert set(keys["a.example:443"]) == {
        "key", "host", "port", "connect", "count", "first", "last",
        "method", "path", "rule", "suggest",
    }  # fmt: skip
    assert keys["a.example:443"]["count"] == 2
    assert keys["b.example:443 GET /x"]["rule"] == "b.example GET /ok/"
    assert data["egress_hidden"] == 0 and data["egress_notes"] == []


def test_cli_text_section_prints_the_agents_hostnames_inert(cli, home: FleetHome, bot: str) -> None:
    evil = "evil\x1b]0;pwned\x07.example"
    write_ledger(home, bot, [entry(evil, suggest="evil.example:443", last=now())])
    res = cli("proposals", bot)
    assert res.code == 0, res.err
    assert "egress requests: 1" in res.out and "\x1b" not in res.out and "\x07" not in res.out
    assert "evil\\x1b]0;pwned\\x07.example:443" in res.out
    assert "--allow adds: evil.example:443" in res.out


def test_cli_allow_then_dismiss(cli, home: FleetHome, bot: str) -> None:
    write_ledger(home, bot, [entry("a.example", last=now()), entry("b.example", last=now())])
    res = cli("proposals", bot, "--allow", "a.example:443")
    assert res.code == 0, res.err
    assert "a.example:443 added to the egress allowlist (the egress proxy is not" in res.out
    res = cli("proposals", bot, "--dismiss", "b.example:443", "--window-hours", "2")
    assert res.code == 0, res.err
    assert "b.example:443 dismissed" in res.out
    res = cli("proposals", bot, "--json")
    data = json.loads(res.out)
    assert data["egress"] == [] and data["egress_hidden"] == 2
    assert "egress requests: none (2 dismissed or allowed)" in cli("proposals", bot).out


def test_cli_allow_while_locked_fails_in_one_line(cli, home: FleetHome, bot: str) -> None:
    write_ledger(home, bot, [entry()])
    locks.lock_bots(home, [bot])
    res = cli("proposals", bot, "--allow", "api.example.com:443")
    assert res.code == 1 and "locked by the kill switch" in res.err
    assert res.err.count("\n") == 1 and "Traceback" not in res.err


def test_cli_unknown_key_is_exit_2(cli, home: FleetHome, bot: str) -> None:
    res = cli("proposals", bot, "--dismiss", "nope:1")
    assert res.code == 2 and "no egress request" in res.err


def test_cli_help_documents_keys_and_the_window(cli) -> None:
    res = cli("proposals", "--help")
    assert "--allow KEY" in res.out and "--dismiss KEY" in res.out
    assert "refused again after the window" in res.out.replace("\n", " ")


def test_stamps_are_what_the_proxy_writes() -> None:
    assert stamp(T0) == "2026-12-02T05:00:00.123Z"


def test_an_entry_no_pattern_can_admit_is_listed_but_only_dismissed(
    cli, home: FleetHome, bot: str
) -> None:
    write_ledger(home, bot, [{**entry("bad_name!", last=now()), "suggest": None, "port": None}])
    (request,) = egress_inbox.read_inbox(home, bot).pending
    assert request.suggest is None and request.target == "bad_name!"
    with pytest.raises(UsageError, match="no allowlist entry can admit"):
        egress_inbox.allow(home, bot, "bad_name!:443")
    assert "no allowlist entry can admit it" in cli("proposals", bot).out
    egress_inbox.dismiss(home, bot, "bad_name!:443")
    assert egress_inbox.read_inbox(home, bot).count == 0


def test_an_ipv6_host_is_shown_in_brackets(home: FleetHome, bot: str) -> None:
    write_ledger(home, bot, [entry("2001:db8::1", key="[2001:db8::1]:443", last=now())])
    (request,) = egress_inbox.read_inbox(home, bot).pending
    assert request.target == "[2001:db8::1]:443"


@pytest.mark.parametrize("hours", ["-1", "nan", "1e300"])
def test_cli_refuses_a_window_that_is_no_duration(cli, home: FleetHome, bot: str, hours) -> None:
    write_ledger(home, bot, [entry()])
    res = cli("proposals", bot, "--dismiss", "api.example.com:443", "--window-hours", hours)
    assert res.code == 2 and "--window-hours must be between" in res.err
    assert egress_inbox.read_inbox(home, bot).count == 1


def test_cli_allow_and_dismiss_answer_in_json(cli, home: FleetHome, bot: str) -> None:
    write_ledger(home, bot, [entry("a.example", last=now()), entry("b.example", last=now())])
    res = cli("proposals", bot, "--allow", "a.example:443", "--json")
    assert json.loads(res.out) == {
        "bot": bot, "key": "a.example:443", "allow": "a.example:443",
        "already": False, "applied": None,
    }  # fmt: skip
    res = cli("proposals", bot, "--dismiss", "b.example:443", "--json")
    assert json.loads(res.out)["dismissed"]["window_s"] == 86400
