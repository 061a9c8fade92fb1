"""The gateway's openclaw.json: JSON5 in, JSON out, validated before every
write, the previous kept as known-good, each change an event without values."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from cftui.audit.events import read_events
from cftui.errors import ConfigError, UsageError
from cftui.fleet import FleetHome
from cftui.gateway import config as gc


def config_events(home: FleetHome, bot: str) -> list[dict]:
    return [e for e in read_events(home, bot) if e["action"] == "config"]


def test_read_config_is_empty_when_absent(home: FleetHome, bot: str) -> None:
    os.unlink(gc.config_path(home, bot))
    assert gc.read_config(home, bot) == {}


def test_read_config_accepts_json5(home: FleetHome, bot: str) -> None:
    gc.config_path(home, bot).write_text(
        "// OpenClaw writes comments\n{gateway: {port: 18789,}, models: {mode: 'merge'},}\n"
    )
    assert gc.read_config(home, bot) == {"gateway": {"port": 18789}, "models": {"mode": "merge"}}


def test_write_config_writes_plain_json_at_0600_and_keeps_known_good(
    home: FleetHome, bot: str
) -> None:
    path = gc.config_path(home, bot)
    original = path.read_text()
    gc.write_config(home, bot, {"gateway": {"port": 1}}, reason="test")
    assert json.loads(path.read_text()) == {"gateway": {"port": 1}}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert gc.known_good_path(home, bot).read_text() == original


def test_write_config_records_changed_keys_not_values(home: FleetHome, bot: str) -> None:
    secret = "cfp_secret_token_value"
    gc.write_config(
        home,
        bot,
        {"gateway": {"port": 18789}, "models": {"providers": {"a": {"apiKey": secret}}}},
        reason="wiring",
        actor="runtime",
    )
    event = config_events(home, bot)[-1]
    assert event["reason"] == "wiring" and event["actor"] == "runtime"
    assert event["changed"] == ["models"]
    assert secret not in home.events_log.read_text()


def test_writing_the_same_config_changes_nothing(home: FleetHome, bot: str) -> None:
    data = gc.read_config(home, bot)
    gc.write_config(home, bot, data, reason="again")
    assert config_events(home, bot) == []
    assert not gc.known_good_path(home, bot).exists()


@pytest.mark.parametrize("bad", [[1, 2], "text", {"x": float("nan")}, {"x": {1, 2}}])
def test_write_config_refuses_what_json_cannot_hold(home: FleetHome, bot: str, bad) -> None:
    before = gc.config_path(home, bot).read_text()
    with pytest.raises(ConfigError):
        gc.write_config(home, bot, bad, reason="bad")
    assert gc.config_path(home, bot).read_text() == before
    assert config_events(home, bot) == []


def test_an_invalid_file_is_never_kept_as_known_good(home: FleetHome, bot: str) -> None:
    gc.config_path(home, bot).write_text("{broken")
    with pytest.raises(ConfigError, match="not valid JSON5"):
        gc.read_config(home, bot)
    gc.write_config(home, bot, {"ok": True}, reason="repair")
    assert not gc.known_good_path(home, bot).exists()


def test_set_keys_types_values_as_json(home: FleetHome, bot: str) -> None:
    changed = gc.set_keys(
        home,
        bot,
        ["gateway.port=18790", "gateway.bind=lan", "tools.web.enabled=false", 'env.X="1"'],
    )
    data = gc.read_config(home, bot)
    assert data["gateway"] == {"port": 18790, "bind": "lan"}
    assert data["tools"] == {"web": {"enabled": False}}
    assert data["env"] == {"X": "1"}
    assert "gateway.port" in changed


@pytest.mark.parametrize(
    ("assignment", "match"),
    [
        ("noequals", "KEY=VALUE"),
        ("a..b=1", "KEY=VALUE"),
        ("=1", "KEY=VALUE"),
        ("x={bad", "not valid JSON"),
        ("gateway.port.deeper=1", "not an object"),
    ],
)
def test_set_refuses_bad_input_and_changes_nothing(
    home: FleetHome, bot: str, assignment: str, match: str
) -> None:
    before = gc.config_path(home, bot).read_text()
    with pytest.raises(UsageError, match=match):
        gc.set_keys(home, bot, ["gateway.bind=lan", assignment])
    assert gc.config_path(home, bot).read_text() == before


def _editor(tmp_path: Path, body: str) -> str:
    script = tmp_path / "editor.py"
    script.write_text(
        "import sys, pathlib\np = pathlib.Path(sys.argv[1])\n" + body + "\n", encoding="utf-8"
    )
    return f"{sys.executable} {script}"


def test_edit_saves_a_valid_change(home: FleetHome, bot: str, tmp_path: Path) -> None:
    editor = _editor(tmp_path, "p.write_text(p.read_text().replace('18789', '18800'))")
    assert gc.edit(home, bot, editor) is True
    assert gc.read_config(home, bot)["gateway"]["port"] == 18800
    assert config_events(home, bot)[-1]["reason"] == "edit"


def test_edit_refuses_an_invalid_result_and_changes_nothing(
    home: FleetHome, bot: str, tmp_path: Path
) -> None:
    before = gc.config_path(home, bot).read_text()
    editor = _editor(tmp_path, "p.write_text('{not json')")
    with pytest.raises(ConfigError, match="left unchanged"):
        gc.edit(home, bot, editor)
    assert gc.config_path(home, bot).read_text() == before
    assert not [n for n in os.listdir(home.bot_repo(bot)) if n.startswith(".openclaw-edit")]


def test_edit_without_change_writes_nothing(home: FleetHome, bot: str, tmp_path: Path) -> None:
    assert gc.edit(home, bot, _editor(tmp_path, "pass")) is False
    assert config_events(home, bot) == []


def test_revert_brings_back_the_known_good(home: FleetHome, bot: str) -> None:
    original = gc.read_config(home, bot)
    gc.set_keys(home, bot, ["gateway.port=1"])
    gc.revert(home, bot)
    assert gc.read_config(home, bot) == original
    assert config_events(home, bot)[-1]["reason"] == "revert"


def test_revert_after_a_broken_hand_edit(home: FleetHome, bot: str) -> None:
    gc.set_keys(home, bot, ["gateway.port=1"])
    good = gc.known_good_path(home, bot).read_text()
    gc.config_path(home, bot).write_text("{oops")
    gc.revert(home, bot)
    assert gc.read_config(home, bot) == json.loads(good)


def test_revert_without_known_good_is_an_error(home: FleetHome, bot: str) -> None:
    with pytest.raises(ConfigError, match="no known-good"):
        gc.revert(home, bot)


def test_cli_config_shows_masked_and_sets(home: FleetHome, bot: str, cli) -> None:
    gc.set_keys(home, bot, ['models.providers.anthropic.apiKey="cfp_hidden"'])
    r = cli("config", bot)
    assert r.code == 0 and "cfp_hidden" not in r.out and "********" in r.out
    r = cli("config", bot, "--set", "gateway.port=18801")
    assert r.code == 0 and gc.read_config(home, bot)["gateway"]["port"] == 18801
    r = cli("config", bot, "--revert")
    assert r.code == 0 and gc.read_config(home, bot)["gateway"]["port"] == 18789


@pytest.mark.parametrize(
    "args",
    [("--set", "x={"), ("--set", "a=1", "--revert"), ("--revert",), ("--set", "nokey")],
)
def test_cli_config_bad_input_is_one_line(home: FleetHome, bot: str, cli, args) -> None:
    before = gc.config_path(home, bot).read_text()
    r = cli("config", bot, *args)
    assert r.code in (1, 2) and len(r.err.strip().splitlines()) == 1
    assert gc.config_path(home, bot).read_text() == before
