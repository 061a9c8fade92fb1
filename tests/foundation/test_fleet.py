"""fleet.toml: the operator's comments survive our edits; bad names never
become paths."""

from __future__ import annotations

import pytest

from cftui.errors import BadBotName
from cftui.fleet import BotConfig, FleetHome, validate_bot_name


def test_edits_keep_the_operators_comments(home: FleetHome) -> None:
    home.add_bot(BotConfig("bot1"))
    text = home.fleet_toml.read_text().replace(
        'runtime = "docker"', 'runtime = "docker"  # keep me: on the laptop'
    )
    home.fleet_toml.write_text("# my fleet\n" + text)
    home.update_bot("bot1", capture=True, egress_allow=("api.github.com",))
    after = home.fleet_toml.read_text()
    assert "# my fleet" in after and "# keep me: on the laptop" in after
    bot = home.bot("bot1")
    assert bot.capture is True and bot.egress_allow == ("api.github.com",)


@pytest.mark.parametrize("name", ["../x", "a/b", "A", "x" * 40, "é"])
def test_paths_refuse_bad_names(home: FleetHome, name: str) -> None:
    with pytest.raises(BadBotName):
        home.secrets_dir(name)
    with pytest.raises(BadBotName):
        validate_bot_name(name)


def test_bot_order_is_file_order(home: FleetHome) -> None:
    for n in ("zeta", "alpha", "mid"):
        home.add_bot(BotConfig(n, gateway_port=home.next_gateway_port()))
    assert list(home.bots()) == ["zeta", "alpha", "mid"]
