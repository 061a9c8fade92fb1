"""fleet.toml's money settings (issue 19): per-bot budgets in USD and what
happens once one is spent, fleet-wide prices per model; each bad value is one
line naming where it is; and what the LLM proxy is given from them, in the
Docker spec and the Lima units alike."""

from __future__ import annotations

import json

import pytest
from cfproxies.llm_proxy.config import ConfigError, load_config

from cftui.errors import FleetError
from cftui.fleet import BotConfig, FleetHome, LimaVM, ModelPrice
from cftui.runtime.docker import spec
from cftui.runtime.lima.plan import bot_env
from cftui.runtime.spend_flags import money_flags, prices_env


def _with_bot_lines(home: FleetHome, *lines: str, top: str = "") -> None:
    home.add_bot(BotConfig(name="bot1"))
    text = home.fleet_toml.read_text().replace(
        "[bots.bot1]\n", "[bots.bot1]\n" + "".join(f"{line}\n" for line in lines)
    )
    home.fleet_toml.write_text(top + text)


def test_budgets_default_to_none_and_refuse(home: FleetHome) -> None:
    home.add_bot(BotConfig(name="bot1"))
    bot = home.bot("bot1")
    assert (bot.daily_usd_budget, bot.monthly_usd_budget, bot.on_exhausted) == (0.0, 0.0, "refuse")
    assert "usd" not in home.fleet_toml.read_text()  # nothing written for the defaults
    assert money_flags(bot) == []


def test_budgets_are_read_and_survive_a_rewrite(home: FleetHome) -> None:
    _with_bot_lines(
        home, "daily_usd_budget = 5", "monthly_usd_budget = 100.5", 'on_exhausted = "stop"'
    )
    bot = home.update_bot("bot1", capture=True)
    assert (bot.daily_usd_budget, bot.monthly_usd_budget, bot.on_exhausted) == (5.0, 100.5, "stop")
    assert isinstance(bot.daily_usd_budget, float)
    assert money_flags(bot) == ["--daily-usd-budget=5.0", "--monthly-usd-budget=100.5"]
    again = FleetHome(home.root)
    again.add_bot(BotConfig(name="bot2", daily_usd_budget=2.5, on_exhausted="stop"))
    assert again.bot("bot2").daily_usd_budget == 2.5 and again.bot("bot2").on_exhausted == "stop"


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("daily_usd_budget = -1", "daily_usd_budget must be a finite number, 0 or more"),
        ('daily_usd_budget = "5"', "daily_usd_budget must be a number of US dollars"),
        ("monthly_usd_budget = true", "monthly_usd_budget must be a number"),
        ("monthly_usd_budget = inf", "finite"),
        ("monthly_usd_budget = nan", "finite"),
        ('on_exhausted = "kill"', "on_exhausted must be one of refuse, stop"),
    ],
)
def test_bad_budgets_are_one_line_naming_the_bot(home: FleetHome, line: str, says: str) -> None:
    _with_bot_lines(home, line)
    with pytest.raises(FleetError) as err:
        home.bot("bot1")
    assert str(err.value).startswith("fleet.toml: [bots.bot1]: ") and says in str(err.value)
    assert "\n" not in str(err.value)


PRICES = """[prices."my-llama"]
input_per_mtok = 0.5
output_per_mtok = 1
cache_read_per_mtok = 0.05

[prices."gpt-4o"]
input_per_mtok = 2
output_per_mtok = 8
cache_read_per_mtok = 1
cache_write_per_mtok = 0

"""


def test_prices_are_read_as_floats_and_passed_to_the_proxy(home: FleetHome) -> None:
    _with_bot_lines(home, top=PRICES)
    prices = home.prices()
    assert prices["my-llama"] == ModelPrice(0.5, 1.0, 0.05, None)
    assert prices["gpt-4o"] == ModelPrice(2.0, 8.0, 1.0, 0.0)
    env = prices_env(prices)
    table = json.loads(env["CF_PRICES"])
    assert table["my-llama"] == {
        "input_per_mtok": 0.5,
        "output_per_mtok": 1.0,
        "cache_read_per_mtok": 0.05,
    }
    assert " " not in env["CF_PRICES"]
    cfg = load_config(["--bot", "bot1", "--audit-dir", str(home.root)], env)
    assert cfg.prices["gpt-4o"]["cache_write_per_mtok"] == 0.0
    assert FleetHome(home.root / "none").prices() == {} and prices_env({}) == {}


@pytest.mark.parametrize(
    ("table", "says"),
    [
        ("input_per_mtok = -1\noutput_per_mtok = 1", "input_per_mtok must be a finite number"),
        ('input_per_mtok = "1"\noutput_per_mtok = 1', "input_per_mtok must be a number"),
        ("input_per_mtok = 1", "output_per_mtok is required"),
        ("input_per_mtok = 1\noutput_per_mtok = 1\nper_call = 1", "unknown key 'per_call'"),
    ],
)
def test_bad_prices_are_one_line_naming_the_model(home: FleetHome, table: str, says: str) -> None:
    _with_bot_lines(home, top=f'[prices."m1"]\n{table}\n\n')
    with pytest.raises(FleetError) as err:
        home.prices()
    assert str(err.value).startswith("fleet.toml: [prices.'m1']") and says in str(err.value)
    assert "\n" not in str(err.value)


def test_prices_must_be_tables(home: FleetHome) -> None:
    _with_bot_lines(home, top='prices = "cheap"\n')
    with pytest.raises(FleetError, match="prices must be tables"):
        home.prices()


def test_docker_spec_passes_budgets_as_flags_and_prices_in_the_environment(
    home: FleetHome,
) -> None:
    _with_bot_lines(home, top=PRICES)
    bot = BotConfig(name="bot1", daily_usd_budget=5.0, monthly_usd_budget=100.0)
    proxy = spec.llm_proxy_spec(home, bot, "img", "tok-123456", [])
    assert (
        "--daily-usd-budget=5.0" in proxy.command and "--monthly-usd-budget=100.0" in proxy.command
    )
    assert json.loads(proxy.environment["CF_PRICES"])["gpt-4o"]["output_per_mtok"] == 8.0


def test_lima_units_get_the_budgets_and_prices(home: FleetHome) -> None:
    _with_bot_lines(home, top=PRICES)
    bot = BotConfig(
        name="b1", runtime="lima", gateway="generic", lima=LimaVM(), daily_usd_budget=1.25
    )
    env = bot_env(bot, "age1x", home.prices())
    assert "CF_LLM_ARGS=--daily-usd-budget=1.25" in env
    line = next(x for x in env.splitlines() if x.startswith("CF_PRICES="))
    assert (
        json.loads(line.removeprefix("CF_PRICES=").strip("'"))["my-llama"]["input_per_mtok"] == 0.5
    )


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["--daily-usd-budget", "-1"], {}, "must be a finite number"),
        (["--monthly-usd-budget", "lots"], {}, "expected a number of US dollars"),
        ([], {"CF_PRICES": "{"}, "--prices: not JSON"),
        ([], {"CF_PRICES": '{"m": {"input_per_mtok": 1}}'}, "output_per_mtok is required"),
        ([], {"CF_PRICES": '{"m": {"input_per_mtok": 1, "output_per_mtok": -2}}'}, "0 or more"),
        ([], {"CF_PRICES": '{"m": {"input_per_mtok": 1, "output_per_mtok": 1, "x": 1}}'}, "'x'"),
    ],
)
def test_proxy_refuses_bad_money_flags_in_one_line(tmp_path, args, env, says) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(["--bot", "b", "--audit-dir", str(tmp_path), *args], env)
    assert says in str(err.value) and "\n" not in str(err.value)


def test_proxy_reads_budgets_from_flags_or_environment(tmp_path) -> None:
    base = ["--bot", "b", "--audit-dir", str(tmp_path)]
    cfg = load_config(base, {"CF_DAILY_USD_BUDGET": "2.5", "CF_MONTHLY_USD_BUDGET": "0"})
    assert (cfg.daily_usd_budget, cfg.monthly_usd_budget) == (2.5, None)
    cfg = load_config([*base, "--monthly-usd-budget", "40"], {"CF_MONTHLY_USD_BUDGET": "1"})
    assert cfg.monthly_usd_budget == 40.0
    assert cfg.spend_checkpoint_s == 1.0
    assert load_config(base, {"CF_SPEND_CHECKPOINT_S": "30"}).spend_checkpoint_s == 30.0
    with pytest.raises(ConfigError, match="must be positive"):
        load_config([*base, "--spend-checkpoint-s", "0"], {})
