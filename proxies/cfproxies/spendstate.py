"""`audit/<bot>/spend.json`: the LLM proxy's money ledger of a bot, which the
proxy owns and cftui reads (CONTRACTS §10).

It is two things at once:
- what cftui shows and acts on: today's and this month's spend, the
  budgets, the money reserved by calls in flight, and which thresholds are
  crossed (`cftui.spend` turns those into events and, with
  `on_exhausted = "stop"`, a stopped bot);
- the proxy's checkpoint, so that a restart does not read a month of
  `traffic.jsonl`: the spend per UTC day up to a byte `offset` of the log,
  with the log's identity (device, inode) and a hash of the 4 KiB before
  that offset. A restart whose checkpoint still matches the log reads only
  the lines after the offset; one that does not (the file missing, torn,
  edited, the log replaced or truncated) rebuilds the days from the whole log.

Written with a temporary file and a rename (never half a file), 0600; read
without following a link and bounded in size. A field of the wrong type is
a checkpoint that does not match: rebuilt, never an exception.
"""

from __future__ import annotations

import json
import math
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SPEND_NAME = "spend.json"
VERSION = 1
MAX_BYTES = 4 * 1024 * 1024  # ~60 days and a few thousand calls in flight
TAIL_BYTES = 4096  # hashed before the checkpoint's offset
THRESHOLDS = (80, 100)  # percent of a budget that cftui reports


def day_of(epoch: float) -> str:
    """The UTC day of `epoch`, as `YYYY-MM-DD` (a record's `ts[:10]`)."""
    return time.strftime("%Y-%m-%d", time.gmtime(epoch))


def next_month_start(epoch: float) -> float:
    """When the calendar month (UTC) of `epoch` ends, in epoch seconds."""
    t = time.gmtime(epoch)
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    return float(_timegm(year, month, 1))


def _timegm(year: int, month: int, day: int) -> int:
    import calendar

    return calendar.timegm((year, month, day, 0, 0, 0, 0, 0, 0))


@dataclass
class DaySpend:
    """One UTC day's spend: money, calls, calls with no price (`unpriced`:
    unknown model, counted as 0), and calls charged an estimate (`estimated`:
    no usage came back, or the proxy died during them)."""

    usd: float = 0.0
    calls: int = 0
    unpriced: int = 0
    estimated: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "usd": round(self.usd, 9),
            "calls": self.calls,
            "unpriced": self.unpriced,
            "estimated": self.estimated,
        }


@dataclass
class SpendState:
    """spend.json, parsed. `days` is the checkpoint's (see the module doc)."""

    bot: str
    updated: str = ""
    daily_usd_budget: float | None = None
    monthly_usd_budget: float | None = None
    today: str = ""
    today_usd: float = 0.0
    month_usd: float = 0.0
    reserved_usd: float = 0.0
    days: dict[str, DaySpend] = field(default_factory=dict)
    log: dict[str, Any] = field(default_factory=dict)  # dev, ino, offset, tail_sha256
    open: dict[str, tuple[str, float]] = field(default_factory=dict)  # call id -> (day, usd)

    def as_json(self) -> dict[str, Any]:
        return {
            "v": VERSION,
            "bot": self.bot,
            "updated": self.updated,
            "daily_usd_budget": self.daily_usd_budget,
            "monthly_usd_budget": self.monthly_usd_budget,
            "today": self.today,
            "today_usd": round(self.today_usd, 9),
            "month": self.today[:7],
            "month_usd": round(self.month_usd, 9),
            "reserved_usd": round(self.reserved_usd, 9),
            "crossed": crossed(
                self.today_usd, self.daily_usd_budget, self.month_usd, self.monthly_usd_budget
            ),
            "days": {d: s.as_json() for d, s in sorted(self.days.items())},
            "log": self.log,
            "open": {k: [d, round(u, 9)] for k, (d, u) in self.open.items()},
        }


def crossed(
    today_usd: float, daily: float | None, month_usd: float, monthly: float | None
) -> dict[str, list[int]]:
    """The thresholds (percent) today's and this month's spend has reached,
    for the budgets set."""
    out: dict[str, list[int]] = {}
    for period, spent, budget in (("day", today_usd, daily), ("month", month_usd, monthly)):
        if budget:
            out[period] = [t for t in THRESHOLDS if spent >= budget * t / 100.0]
    return out


def usd_text(amount: float) -> str:
    """Dollars as an operator reads them: cents, or the digits a tiny budget needs."""
    if amount >= 0.1:
        return f"${amount:,.2f}"
    return "$" + (f"{amount:.6f}".rstrip("0").rstrip(".") or "0")


def usd(value: Any) -> float | None:
    """A money amount from JSON: finite and not negative, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) and value >= 0 else None


def _count(value: Any) -> int:
    return value if type(value) is int and value >= 0 else 0


def parse_state(raw: Any, bot: str) -> SpendState | None:
    """A SpendState from spend.json's JSON; None if it is not one for `bot`."""
    if not isinstance(raw, dict) or raw.get("v") != VERSION or raw.get("bot") != bot:
        return None
    days_raw = raw.get("days")
    log = raw.get("log")
    open_raw = raw.get("open")
    if (
        not isinstance(days_raw, dict)
        or not isinstance(log, dict)
        or not isinstance(open_raw, dict)
    ):
        return None
    days: dict[str, DaySpend] = {}
    for day, d in days_raw.items():
        if not isinstance(d, dict) or len(day) != 10 or (amount := usd(d.get("usd"))) is None:
            return None
        days[day] = DaySpend(
            amount, _count(d.get("calls")), _count(d.get("unpriced")), _count(d.get("estimated"))
        )
    opened: dict[str, tuple[str, float]] = {}
    for ident, pair in open_raw.items():
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
            return None
        amount = usd(pair[1])
        if amount is None:
            return None
        opened[ident] = (pair[0], amount)
    state = SpendState(
        bot=bot,
        updated=str(raw.get("updated", "")),
        daily_usd_budget=usd(raw.get("daily_usd_budget")),
        monthly_usd_budget=usd(raw.get("monthly_usd_budget")),
        today=str(raw.get("today", "")),
        today_usd=usd(raw.get("today_usd")) or 0.0,
        month_usd=usd(raw.get("month_usd")) or 0.0,
        reserved_usd=usd(raw.get("reserved_usd")) or 0.0,
        days=days,
        log=log,
        open=opened,
    )
    return state


def read_state(path: Path, bot: str) -> SpendState | None:
    """spend.json, or None when missing, not a regular file, too large or
    not valid (never follows a link; never raises for what is in it)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_BYTES:
            return None
        data = os.read(fd, MAX_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return parse_state(raw, bot)


def write_state(path: Path, state: SpendState) -> None:
    """Replace spend.json atomically (0600); OSError is the caller's to report."""
    data = json.dumps(state.as_json(), separators=(",", ":")).encode()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    os.replace(tmp, path)
