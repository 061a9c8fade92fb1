"""A bot whose money budget is spent, with `on_exhausted = "stop"`, on the
real engine (issue 19): the demo agent's calls through the real LLM proxy
are priced (its models are real ones), the proxy refuses once the daily
budget is spent, its spend.json says so, and `cftui.spend.check_budgets`
records the 80 % and 100 % crossings once and stops the bot through the
lifecycle (a `stop` event with its reason; not the kill switch: no lock)."""

from __future__ import annotations

import asyncio
import json

import pytest

from cftui import locks
from cftui.audit.events import read_events
from cftui.runtime import Runtimes
from cftui.runtime.status import RUNNING, STARTING
from cftui.spend import check_budgets

from .helpers import World, start_bot, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]


def _spend_state(world: World, bot: str) -> dict | None:
    try:
        return json.loads((world.home.audit_dir(bot) / "spend.json").read_text())
    except (OSError, ValueError):
        return None


def _refused(world: World, bot: str) -> bool:
    try:
        lines = world.home.traffic_log(bot).read_text().splitlines()
    except OSError:
        return False
    return any('"budget_limit":"daily_usd_budget"' in line for line in lines)


async def test_a_spent_budget_with_on_exhausted_stop_stops_the_bot(world: World) -> None:
    name = f"s{world.suffix}"
    bot = world.add_bot(name)
    # A budget a call or two of the demo agent spends (claude-3-5-haiku, gpt-4o-mini).
    bot = world.home.update_bot(name, daily_usd_budget=0.00002, on_exhausted="stop")
    await start_bot(world, bot)
    state = await asyncio.to_thread(
        wait_for,
        lambda: (s := _spend_state(world, name)) and 100 in s["crossed"].get("day", []) and s,
        120,
        "the proxy's spend.json to cross the daily budget",
    )
    assert state["daily_usd_budget"] == 0.00002 and state["today_usd"] >= 0.00002
    await asyncio.to_thread(wait_for, lambda: _refused(world, name), 60, "a call refused (429)")
    records = [json.loads(x) for x in world.home.traffic_log(name).read_text().splitlines()]
    priced = [r for r in records if r.get("cost_status") == "priced"]
    assert priced and all(r["cost_usd"] > 0 for r in priced)

    runtimes = Runtimes(world.home)
    try:
        notices = await check_budgets(world.home, runtimes, [bot])
        assert {n.percent for n in notices} == {80, 100}
        assert [n.stopped for n in notices if n.percent == 100] == [True]
        assert await check_budgets(world.home, runtimes, [bot]) == []  # once
        status = (await runtimes.get("docker").status([bot]))[name]
        for service in ("gateway", "llm-proxy"):
            assert status.services[service].state not in (RUNNING, STARTING), status.services
    finally:
        await runtimes.aclose()
    stops = [e for e in read_events(world.home, name) if e["action"] == "stop"]
    assert stops and stops[-1]["reason"] == "daily budget of $0.00002 spent"
    told = [e["percent"] for e in read_events(world.home, name) if e["action"] == "spend_threshold"]
    assert told == [80, 100]
    assert not locks.is_locked(world.home, name)  # the lifecycle's stop, not the kill switch
