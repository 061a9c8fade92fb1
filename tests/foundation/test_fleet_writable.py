"""`writable` in fleet.toml (issue 17): the paths of a bot's read-only
approved tree its gateway may write at run time. Anything that could reach
out of `code/` or into its git is one line naming the bot and the key."""

from __future__ import annotations

import pytest

from cftui.errors import FleetError
from cftui.fleet import BotConfig, FleetHome, parse_writable


def test_the_default_is_the_workspaces_memory_and_save_dirs() -> None:
    bot = BotConfig(name="bot1")
    assert bot.writable_paths == ("workspace/memory", "workspace/bot1_save")


def test_paths_are_normalised_and_kept_in_order() -> None:
    assert parse_writable(["workspace/./memory/", "data", "data"]) == ("workspace/memory", "data")
    assert parse_writable([]) == ()


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ('["/etc"]', "must be a relative path inside code/"),
        ('["workspace/../../x"]', "no '..'"),
        ('[".."]', "no '..'"),
        ('["."]', "no '..'"),
        ('[""]', "must be a relative path"),
        ('[".git/hooks"]', "never writable"),
        ('"workspace"', "must be a list of paths"),
        ("[1]", "must be a list of paths"),
    ],
)
def test_bad_writable_values_are_one_line_naming_the_bot(
    home: FleetHome, value: str, says: str
) -> None:
    home.add_bot(BotConfig(name="bot1"))
    text = home.fleet_toml.read_text().replace(
        "[bots.bot1]\n", f"[bots.bot1]\nwritable = {value}\n"
    )
    home.fleet_toml.write_text(text)
    with pytest.raises(FleetError) as err:
        home.bot("bot1")
    message = str(err.value)
    assert message.startswith("fleet.toml: [bots.bot1]: writable")
    assert says in message and "\n" not in message
    assert home.fleet_toml.read_text() == text


def test_writable_round_trips_and_the_default_is_not_written(home: FleetHome) -> None:
    home.add_bot(BotConfig(name="bot1"))
    assert "writable" not in home.fleet_toml.read_text()
    home.update_bot("bot1", writable=("workspace/memory", "cache"))
    assert home.bot("bot1").writable_paths == ("workspace/memory", "cache")
    assert 'writable = ["workspace/memory", "cache"]' in home.fleet_toml.read_text()
