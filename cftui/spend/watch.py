"""The operator's side of the money budgets: the LLM proxy's spend state
(`audit/<bot>/spend.json`, which the proxy owns: it cannot write
`audit/events.jsonl`) turned into events, and a bot whose budget is spent
stopped when its `on_exhausted` says "stop".

`check_budgets` is the one entry point; the TUI's refresh worker,
`cftui --run` and the controller (`cftui serve`) all call it, as often as
they like: each crossing of 80 % and of 100 % of a bot's daily or monthly
budget is recorded exactly once per period (`spend_threshold` in
`audit/events.jsonl`), whoever calls first, because the crossings already
told are kept in `audit/spend-notified.json` under an exclusive lock. The
stop goes through `cftui.lifecycle.stop` (a `stop` event with its reason),
never the kill switch: nothing is locked, `cftui start` brings the bot back
(and the proxy refuses its calls until the budget resets).

The budgets are fleet.toml's (what the operator set now); the spend is the
proxy's. A spend.json of an earlier day or month means nothing was spent in
this one yet.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from cfproxies.spendstate import SPEND_NAME, crossed, day_of, read_state, usd_text

from cftui import lifecycle
from cftui.audit.events import record_event
from cftui.errors import CftuiError
from cftui.fleet import BotConfig, FleetHome
from cftui.runtime import Runtimes
from cftui.securefs import atomic_write_private, make_private_dirs

NOTIFIED_NAME = "spend-notified.json"
MAX_NOTIFIED_BYTES = 1024 * 1024


@dataclass(frozen=True)
class SpendNotice:
    """One crossing just recorded: which bot, budget and threshold, and
    whether (and how) the bot was stopped for it."""

    bot: str
    period: str  # "day" or "month"
    key: str  # the day (YYYY-MM-DD) or month (YYYY-MM) it belongs to
    percent: int  # 80 or 100
    spent_usd: float
    budget_usd: float
    stopped: bool = False
    stop_error: str | None = None
    event: dict[str, Any] = field(default_factory=dict, compare=False)

    def summary(self) -> str:
        """One line for the operator."""
        budget = "daily" if self.period == "day" else "monthly"
        line = (
            f"{self.bot}: {self.percent}% of its {budget} budget spent "
            f"({usd_text(self.spent_usd)} of {usd_text(self.budget_usd)})"
        )
        if self.stopped:
            line += "; stopped (on_exhausted = stop)"
        elif self.stop_error:
            line += f"; could not stop it: {self.stop_error}"
        return line


def _spend_of(home: FleetHome, bot: BotConfig, today: str) -> tuple[float, float] | None:
    """(today's, this month's) USD of a bot by its proxy, or None if unknown."""
    state = read_state(home.audit_dir(bot.name) / SPEND_NAME, bot.name)
    if state is None:
        return None
    day_usd = state.today_usd if state.today == today else 0.0
    month_usd = state.month_usd if state.today[:7] == today[:7] else 0.0
    return day_usd, month_usd


def _read_notified(fd: int) -> dict[str, dict[str, list[int]]]:
    os.lseek(fd, 0, os.SEEK_SET)
    data = os.read(fd, MAX_NOTIFIED_BYTES)
    try:
        raw = json.loads(data) if data else {}
    except ValueError:
        return {}  # torn by a crash: at worst a threshold is told twice
    out: dict[str, dict[str, list[int]]] = {}
    if isinstance(raw, dict):
        for bot, periods in raw.items():
            if isinstance(periods, dict):
                out[bot] = {
                    k: [t for t in v if type(t) is int]
                    for k, v in periods.items()
                    if isinstance(v, list)
                }
    return out


def _new_crossings(home: FleetHome, bots: Sequence[BotConfig], now: float) -> list[SpendNotice]:
    """Record each crossing not yet told, under the lock; the notices."""
    today = day_of(now)
    spends = {}
    for bot in bots:
        if bot.daily_usd_budget or bot.monthly_usd_budget:
            spend = _spend_of(home, bot, today)
            if spend is not None:
                spends[bot.name] = (bot, spend)
    if not spends:
        return []
    audit = home.events_log.parent
    make_private_dirs(audit)
    path = audit / NOTIFIED_NAME
    lock_fd = os.open(
        audit / f".{NOTIFIED_NAME}.lock",
        os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW,
        0o600,
    )
    notices: list[SpendNotice] = []
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                notified = _read_notified(fd)
            finally:
                os.close(fd)
        except FileNotFoundError:
            notified = {}
        changed = False
        for name, (bot, (day_usd, month_usd)) in spends.items():
            daily = bot.daily_usd_budget or None
            monthly = bot.monthly_usd_budget or None
            keys = {"day": today, "month": today[:7]}
            told = notified.setdefault(name, {})
            for stale in [k for k in told if k not in (f"day:{today}", f"month:{today[:7]}")]:
                del told[stale]
                changed = True
            for period, reached in crossed(day_usd, daily, month_usd, monthly).items():
                key = f"{period}:{keys[period]}"
                for percent in reached:
                    if percent in told.get(key, []):
                        continue
                    budget = daily if period == "day" else monthly
                    assert budget is not None
                    spent = day_usd if period == "day" else month_usd
                    event = record_event(
                        home,
                        "spend_threshold",
                        name,
                        period=period,
                        period_key=keys[period],
                        percent=percent,
                        spent_usd=round(spent, 6),
                        budget_usd=budget,
                        on_exhausted=bot.on_exhausted,
                    )
                    told.setdefault(key, []).append(percent)
                    changed = True
                    notices.append(
                        SpendNotice(name, period, keys[period], percent, spent, budget, event=event)
                    )
        if changed:
            atomic_write_private(path, json.dumps(notified, sort_keys=True))
    finally:
        os.close(lock_fd)
    return notices


async def check_budgets(
    home: FleetHome,
    runtimes: Runtimes,
    bots: Sequence[BotConfig] | None = None,
    now: float | None = None,
) -> list[SpendNotice]:
    """Record every budget threshold the bots' spend crossed since anyone
    last looked (once per period), and stop each bot that spent a budget
    and whose `on_exhausted` is "stop"; the crossings, for the caller to
    show. `bots` defaults to the whole fleet. File work runs in a thread;
    never raises for what a spend.json holds."""
    chosen = list(bots) if bots is not None else list(home.bots().values())
    at = time.time() if now is None else now
    notices = await asyncio.to_thread(_new_crossings, home, chosen, at)
    by_name = {b.name: b for b in chosen}
    out: list[SpendNotice] = []
    stopped: set[str] = set()
    for notice in notices:
        bot = by_name[notice.bot]
        if notice.percent >= 100 and bot.on_exhausted == "stop" and bot.name not in stopped:
            stopped.add(bot.name)
            budget = "daily" if notice.period == "day" else "monthly"
            try:
                await lifecycle.stop(
                    home,
                    bot,
                    runtimes,
                    reason=f"{budget} budget of {usd_text(notice.budget_usd)} spent",
                )
            except CftuiError as exc:
                notice = replace(notice, stop_error=str(exc))
            else:
                notice = replace(notice, stopped=True)
        out.append(notice)
    return out
