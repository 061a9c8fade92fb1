"""What fleet.toml's money settings become on the LLM proxy's command line
and environment, in one place for the Docker and the Lima runtime alike
(as `--daily-token-budget` is)."""

from __future__ import annotations

import json

from cftui.fleet import BotConfig, ModelPrice

PRICES_ENV = "CF_PRICES"  # the operator's prices, JSON {model: {rate: usd}}


def money_flags(bot: BotConfig) -> list[str]:
    """`--daily-usd-budget=N` / `--monthly-usd-budget=N` for the budgets set."""
    flags = []
    if bot.daily_usd_budget:
        flags.append(f"--daily-usd-budget={bot.daily_usd_budget!r}")
    if bot.monthly_usd_budget:
        flags.append(f"--monthly-usd-budget={bot.monthly_usd_budget!r}")
    return flags


def prices_env(prices: dict[str, ModelPrice]) -> dict[str, str]:
    """`CF_PRICES` for the proxy when fleet.toml sets prices (compact JSON,
    no spaces, so a systemd EnvironmentFile takes it as one value)."""
    if not prices:
        return {}
    table = {model: price.as_dict() for model, price in sorted(prices.items())}
    return {PRICES_ENV: json.dumps(table, separators=(",", ":"), ensure_ascii=True)}
