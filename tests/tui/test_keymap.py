"""The user's keymap file (issue #23): `$XDG_CONFIG_HOME/cftui/keymap.toml`
maps binding ids to keys; read at start, each mistake one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from cftui.errors import UsageError
from cftui.fleet import FleetHome
from cftui.tui.fleet_screen import FleetScreen
from cftui.tui.fleet_table import FleetTable
from cftui.tui.keymap import binding_ids, keymap_path, load_user_keymap, parse_keymap
from tests.tui.tui_helpers import wait_until

KNOWN = binding_ids()


def test_every_binding_id_is_known() -> None:
    assert {"bot.start", "app.kill_all", "traffic.filter", "egress_requests.allow"} <= KNOWN


def test_both_toml_forms_name_an_id() -> None:
    text = '"bot.start" = "S"\n[traffic]\nfilter = "f, slash"\n'
    assert parse_keymap(text, KNOWN, "k.toml") == {"bot.start": "S", "traffic.filter": "f,slash"}


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("bot.start = ", "not valid TOML"),
        ('"bot.launch" = "S"', "unknown binding id 'bot.launch'"),
        ('"bot.strat" = "S"', "(did you mean 'bot.start'?)"),
        ('"bot.start" = 5', "keys must be a string"),
        ('"bot.start" = ["S"]', "keys must be a string"),
        ('"bot.start" = "ctrl s"', "'ctrl s' is not a key name"),
        ('"bot.start" = ""', "is not a key name"),
        ('"bot.start" = "S,,x"', "is not a key name"),
    ],
)
def test_a_mistake_is_one_line_naming_the_file(text: str, said: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_keymap(text, KNOWN, "/x/keymap.toml")
    message = str(caught.value)
    assert said in message and message.startswith("/x/keymap.toml: ") and "\n" not in message


def test_the_file_is_found_under_xdg_config_home(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert keymap_path() == tmp_path / "cftui" / "keymap.toml"
    assert load_user_keymap() == {}  # no file: the defaults
    keymap_path().parent.mkdir()
    keymap_path().write_text('"app.help" = "h"\n')
    assert load_user_keymap() == {"app.help": "h"}
    keymap_path().write_bytes(b"\xff\xfe")
    with pytest.raises(UsageError, match="not UTF-8"):
        load_user_keymap()


def test_a_bad_file_stops_the_app_with_one_line(
    home: FleetHome, cli, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    keymap_path().parent.mkdir()
    keymap_path().write_text('"bot.nope" = "S"\n')
    assert cli("init", "bot1").code == 0
    result = cli()
    assert result.code == 2
    assert "unknown binding id 'bot.nope'" in result.err and result.err.count("\n") == 1


async def test_the_app_uses_the_keymap(make, runtime) -> None:
    app = make(keymap={"bot.start": "u"})
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, FleetScreen) and app.statuses)
        table = app.screen.query_one(FleetTable)
        await wait_until(pilot, lambda: table.row_count == 2)
        await pilot.press("j")  # beta, stopped
        await pilot.press("S")  # no longer start
        await pilot.pause()
        assert "beta" not in app.operations
        assert app.screen.active_bindings["u"].binding.action == "bot('start')"
        await pilot.press("u")
        await wait_until(pilot, lambda: runtime.states.get("beta", {}).get("gateway") == "running")


async def test_help_shows_the_keys_the_keymap_set(make) -> None:
    from cftui.tui.help_screen import HelpScreen

    app = make(keymap={"app.theme": "f9"})
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, FleetScreen))
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        theme = [b for _s, bs in app.screen.groups for b in bs if b.id == "app.theme"]
        assert [b.key for b in theme] == ["f9"]
