"""The operator's side of the money budgets (issue 19): the proxy's
spend.json turned into `spend_threshold` events at 80 % and 100 % of each
budget, exactly once per day or month whoever asks and however often; a
spend.json that is torn, hostile or of another day tells nothing."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest
from cfproxies.spendstate import DaySpend, SpendState, write_state

from cftui.audit.events import read_events
from cftui.fleet import BotConfig, FleetHome
from cftui.runtime import Runtimes
from cftui.spend import check_budgets

NOW = datetime(2026, 5, 14, 12, 0, tzinfo=UTC).timestamp()


def _spend(home: FleetHome, bot: str, today_usd: float, month_usd: float, day="2026-05-14"):
    home.audit_dir(bot).mkdir(parents=True, exist_ok=True)
    state = SpendState(
        bot=bot,
        today=day,
        today_usd=today_usd,
        month_usd=month_usd,
        days={day: DaySpend(today_usd, 3)},
    )
    write_state(home.audit_dir(bot) / "spend.json", state)


def _check(home: FleetHome, now: float = NOW):
    async def go():
        runtimes = Runtimes(home)
        try:
            return await check_budgets(home, runtimes, now=now)
        finally:
            await runtimes.aclose()

    return asyncio.run(go())


def _thresholds(home: FleetHome) -> list[tuple]:
    return [
        (e["bot"], e["period"], e["period_key"], e["percent"])
        for e in read_events(home)
        if e["action"] == "spend_threshold"
    ]


@pytest.fixture
def fleet(home: FleetHome) -> FleetHome:
    home.add_bot(BotConfig(name="bot1", daily_usd_budget=10.0, monthly_usd_budget=100.0))
    home.add_bot(BotConfig(name="bot2", gateway_port=18900))  # no budget
    return home


def test_80_and_100_percent_are_each_told_once_per_period(fleet: FleetHome) -> None:
    _spend(fleet, "bot1", 7.9, 7.9)
    assert _check(fleet) == []
    _spend(fleet, "bot1", 8.0, 8.0)
    (notice,) = _check(fleet)
    assert (notice.period, notice.percent, notice.key) == ("day", 80, "2026-05-14")
    assert "80% of its daily budget spent ($8.00 of $10.00)" in notice.summary()
    assert _check(fleet) == [] and _check(fleet) == []  # told once, however often asked
    _spend(fleet, "bot1", 10.5, 85.0)
    told = {(n.period, n.percent) for n in _check(fleet)}
    assert told == {("day", 100), ("month", 80)}
    assert _thresholds(fleet) == [
        ("bot1", "day", "2026-05-14", 80),
        ("bot1", "day", "2026-05-14", 100),
        ("bot1", "month", "2026-05", 80),
    ]
    (event,) = [e for e in read_events(fleet) if e.get("percent") == 100]
    assert event["spent_usd"] == 10.5 and event["budget_usd"] == 10.0
    assert event["on_exhausted"] == "refuse"
    assert not [e for e in read_events(fleet) if e["action"] == "stop"]  # refuse: no stop


def test_a_new_day_tells_its_thresholds_again_and_an_old_spend_counts_nothing(
    fleet: FleetHome,
) -> None:
    _spend(fleet, "bot1", 9.0, 9.0)
    assert [n.percent for n in _check(fleet)] == [80]
    tomorrow = NOW + 86400
    assert _check(fleet, tomorrow) == []  # yesterday's spend.json: nothing spent today yet
    _spend(fleet, "bot1", 8.5, 17.5, day="2026-05-15")
    assert [(n.key, n.percent) for n in _check(fleet, tomorrow)] == [("2026-05-15", 80)]


def test_concurrent_callers_tell_each_crossing_once(fleet: FleetHome) -> None:
    _spend(fleet, "bot1", 10.0, 100.0)

    async def many():
        runtimes = Runtimes(fleet)
        try:
            return await asyncio.gather(
                *(check_budgets(fleet, runtimes, now=NOW) for _ in range(8))
            )
        finally:
            await runtimes.aclose()

    results = asyncio.run(many())
    assert sum(len(r) for r in results) == 4  # day 80, 100; month 80, 100
    assert len(_thresholds(fleet)) == 4


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b'{"v":1,"bot":"bot1","days":',
        b'{"v":1,"bot":"other","days":{},"log":{},"open":{},"today_usd":99}',
        b'{"v":1,"bot":"bot1","days":{},"log":{},"open":{},"today":"2026-05-14","today_usd":"lots"}',
        b"[" * 50_000,
        b"\xff\xfe",
    ],
)
def test_a_torn_or_hostile_spend_file_tells_nothing(fleet: FleetHome, content: bytes) -> None:
    fleet.audit_dir("bot1").mkdir(parents=True, exist_ok=True)
    (fleet.audit_dir("bot1") / "spend.json").write_bytes(content)
    assert _check(fleet) == []


def test_a_link_in_place_of_the_spend_file_is_not_followed(fleet: FleetHome, tmp_path) -> None:
    elsewhere = tmp_path / "elsewhere.json"
    _spend(fleet, "bot1", 50.0, 50.0)
    (fleet.audit_dir("bot1") / "spend.json").rename(elsewhere)
    (fleet.audit_dir("bot1") / "spend.json").symlink_to(elsewhere)
    assert _check(fleet) == []


def test_the_notified_state_is_private(fleet: FleetHome) -> None:
    _spend(fleet, "bot1", 10.0, 10.0)
    _check(fleet)
    path = fleet.events_log.parent / "spend-notified.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert json.loads(path.read_text()) == {"bot1": {"day:2026-05-14": [80, 100]}}


def test_cftui_run_prints_each_crossing_once(fleet: FleetHome) -> None:
    """`cftui --run` checks the budgets while it runs (cli/headless.py)."""
    from cftui.cli import headless

    today = datetime.now(UTC).strftime("%Y-%m-%d")
    _spend(fleet, "bot1", 8.5, 8.5, day=today)
    lines: list[str] = []

    async def go() -> None:
        runtimes = Runtimes(fleet)
        watch = headless._Watch(fleet, [fleet.bot("bot1")], runtimes, lines.append)
        task = asyncio.create_task(watch._spend())
        try:
            for _ in range(200):
                if lines:
                    break
                await asyncio.sleep(0.01)
        finally:
            task.cancel()
            await runtimes.aclose()

    asyncio.run(go())
    (line,) = lines
    assert "[bot1] spend: bot1: 80% of its daily budget spent ($8.50 of $10.00)" in line
