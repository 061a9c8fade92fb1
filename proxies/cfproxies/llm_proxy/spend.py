"""The money a bot's calls cost, per UTC day and calendar month, and its
money budgets (`--daily-usd-budget`, `--monthly-usd-budget`).

How concurrent calls are bounded. When a call is admitted it reserves its
estimate: its output limit (`max_tokens` & co., 4096 when none) at the
model's output rate plus its prompt estimated from the request size at the
input rate (`cfproxies.record.estimate_split`). A call is admitted only while
the day's (and the month's) settled spend plus every reservation still open
is below the budget; at its end the reservation is replaced by the call's
real cost. So, whatever the concurrency, the spend of a day ends at most
`budget + r`, where `r` is the reservation of the last call admitted (the
largest reservation bounds it), as long as no call costs more than it
reserved; a call that does (a prompt much denser than 4 bytes a token) adds
its excess. Admission and reservation are one step on the event loop, with
no await between them.

What a call is charged: its `cost_usd`; a call with no usage back
(`no_usage`: a stream cut off, an OpenAI stream without usage) its
reservation, so hiding usage does not make calls free; a model with no price
nothing (counted as `unpriced`); a call the proxy died during its
reservation, when the next proxy starts.

A restart rebuilds the spend from `spend.json`'s checkpoint and the lines of
`traffic.jsonl` after it (see `cfproxies.spendstate`), or from the whole log
when the checkpoint is missing or does not match it. The checkpoint is
written by the record writer thread at most once a second, at once when a
threshold is crossed, and when the proxy stops.
"""

from __future__ import annotations

import hashlib
import math
import os
import stat
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cfproxies.llm_proxy.budget import Refusal
from cfproxies.llm_proxy.pricing import NO_USAGE, NOT_SENT, OVERRIDE, PRICED, Pricer, Rates, Usage
from cfproxies.record import (
    END_PREFIX,
    ID_LEN,
    START,
    START_PREFIX,
    line_phase,
    parse_record_line,
)
from cfproxies.record import token_count as _tokens
from cfproxies.spendstate import (
    SPEND_NAME,
    TAIL_BYTES,
    THRESHOLDS,
    DaySpend,
    SpendState,
    crossed,
    day_of,
    next_month_start,
    read_state,
    usd,
    usd_text,
    write_state,
)
from cfproxies.today import next_midnight

CHECKPOINT_EVERY_S = 1.0
_TS_AT = len('","ts":"')  # after the id, in a line the proxy wrote


def _line_month(line: bytes) -> bytes | None:
    """`YYYY-MM` of a line as the proxy writes it, without parsing it."""
    for prefix in (START_PREFIX, END_PREFIX):
        if line.startswith(prefix):
            at = len(prefix) + ID_LEN + _TS_AT
            if line[at - _TS_AT : at] == b'","ts":"':
                return line[at : at + 7]
    return None


class Ledger:
    """The spend of one bot and its money budgets; one per proxy."""

    def __init__(
        self,
        bot: str,
        daily_usd: float | None,
        monthly_usd: float | None,
        pricer: Pricer,
        audit_dir: Path,
        clock: Callable[[], float] = time.time,
        checkpoint_every_s: float = CHECKPOINT_EVERY_S,
    ) -> None:
        self.bot = bot
        self.daily = daily_usd or None
        self.monthly = monthly_usd or None
        self.pricer = pricer
        self.clock = clock
        self.log_path = audit_dir / "traffic.jsonl"
        self.state_path = audit_dir / SPEND_NAME
        self.lock = threading.Lock()  # settle runs in the writer thread too
        self._write_lock = threading.Lock()
        self.days: dict[str, DaySpend] = {}
        self.open: dict[str, tuple[str, float]] = {}  # call id -> (day, reservation)
        self.reserved = 0.0
        self.rebuilt = ""  # how the spend was found at start (health, tests)
        self._roll(clock())
        self._last_checkpoint = 0.0
        self._alarms = (math.inf, math.inf)  # the day's, the month's next threshold in USD
        self._set_alarms()
        self.checkpoint_errors = 0
        self.checkpoint_every_s = checkpoint_every_s

    # --- the calendar ---------------------------------------------------
    def _roll(self, now: float) -> None:
        self.today = day_of(now)
        self.month = self.today[:7]
        self._day_ends = next_midnight(now)
        self._month_ends = next_month_start(now)
        self.days = {d: s for d, s in self.days.items() if d[:7] >= self.month}
        self.today_usd = self.days[self.today].usd if self.today in self.days else 0.0
        self.month_usd = sum(s.usd for d, s in self.days.items() if d[:7] == self.month)

    def _maybe_roll(self, now: float) -> None:
        if now >= self._day_ends:
            self._roll(now)
            self._set_alarms()

    def _set_alarms(self) -> None:
        """The spend at which the next threshold of each budget is crossed,
        so that a settle compares two numbers rather than recount them."""
        found = crossed(self.today_usd, self.daily, self.month_usd, self.monthly)
        alarms = []
        for period, budget in (("day", self.daily), ("month", self.monthly)):
            left = [t for t in THRESHOLDS if t not in found.get(period, [])]
            alarms.append(budget * left[0] / 100.0 if budget and left else math.inf)
        self._alarms = (alarms[0], alarms[1])

    # --- calls ----------------------------------------------------------
    def estimate(
        self, provider: str, model: str | None, rates: Rates | Any, prompt: int, output: int
    ) -> float:
        """What a call may cost at most, as far as its request says (`prompt`
        and `output` tokens from `estimate_split`; `rates` the model's from
        the pricer): 0 when its model has no price."""
        if isinstance(rates, Rates):
            return rates.cost(prompt, output, 0, 0)
        if rates is None:
            return 0.0
        cost, _ = self.pricer.cost(provider, model, Usage(prompt, output, 0, 0))
        return cost or 0.0

    def admit(self, call_id: str, estimate: float) -> Refusal | None:
        """None, and `estimate` reserved for the call, if the budgets allow a
        new call; else the budget that is spent and when it resets."""
        now = self.clock()
        with self.lock:
            if now >= self._day_ends:
                self._maybe_roll(now)
            if self.daily is not None and self.today_usd + self.reserved >= self.daily:
                return Refusal(
                    "daily_usd_budget",
                    self._day_ends,
                    f"daily budget of {usd_text(self.daily)} spent ({usd_text(self.today_usd)} "
                    f"today, {usd_text(self.reserved)} in calls in flight)",
                )
            if self.monthly is not None and self.month_usd + self.reserved >= self.monthly:
                return Refusal(
                    "monthly_usd_budget",
                    self._month_ends,
                    f"monthly budget of {usd_text(self.monthly)} spent ({usd_text(self.month_usd)} "
                    f"this month, {usd_text(self.reserved)} in calls in flight)",
                )
            self.open[call_id] = (self.today, estimate)
            self.reserved += estimate
        return None

    def settle(self, call_id: str, charge: float, unpriced: bool, estimated: bool) -> bool:
        """A call ended: its reservation becomes what it is charged. True
        when a threshold was crossed (the checkpoint should go out now)."""
        now = self.clock()
        with self.lock:
            if now >= self._day_ends:
                self._maybe_roll(now)
            day, held = self.open.pop(call_id, (self.today, 0.0))
            self.reserved = self.reserved - held if self.open else 0.0
            spend = self.days.get(day) if day == self.today else None
            if spend is not None:  # nearly always: a call of today, which has calls
                spend.usd += charge
                spend.calls += 1
                spend.unpriced += unpriced
                spend.estimated += estimated
                self.today_usd += charge
                self.month_usd += charge
            else:
                self._charge(day, charge, unpriced=unpriced, estimated=estimated)
            day_alarm, month_alarm = self._alarms
            if self.today_usd >= day_alarm or self.month_usd >= month_alarm:
                self._set_alarms()
                return True
            return False

    def _charge(self, day: str, amount: float, *, unpriced: bool, estimated: bool) -> None:
        spend = self.days.get(day)
        if spend is None:
            if day[:7] < self.month:
                return  # a call of a past month: not this month's budget
            spend = self.days[day] = DaySpend()
        spend.usd += amount
        spend.calls += 1
        spend.unpriced += unpriced
        spend.estimated += estimated
        if day == self.today:
            self.today_usd += amount
        if day[:7] == self.month:
            self.month_usd += amount

    def charge_of(self, rec: dict[str, Any]) -> tuple[float, bool, bool]:
        """(usd, unpriced, estimated) a finished record is charged."""
        status = rec.get("cost_status")
        if status == NO_USAGE:
            return usd(rec.get("cost_est_usd")) or 0.0, False, True
        cost = usd(rec.get("cost_usd"))
        if cost is not None:
            return cost, False, False
        if "cost_usd" not in rec and status is None:  # written before costs were
            provider, model = rec.get("provider"), rec.get("model")
            if isinstance(provider, str) and (model is None or isinstance(model, str)):
                u = Usage(
                    _tokens(rec.get("tokens_in")),
                    _tokens(rec.get("tokens_out")),
                    _tokens(rec.get("cache_read")),
                    _tokens(rec.get("cache_write")),
                )
                priced, _ = self.pricer.cost(provider, model, u)
                if priced is not None:
                    return priced, False, False
        return 0.0, status not in (NOT_SENT, PRICED, OVERRIDE), False

    # --- restart --------------------------------------------------------
    def rebuild(self) -> None:
        """The spend so far, from the checkpoint and the log after it, or
        from the whole log (see the module's doc); never raises."""
        state = read_state(self.state_path, self.bot)
        offset = self._matching_offset(state)
        if state is not None and offset is not None:
            self.days = dict(state.days)
            self.open = dict(state.open)
            self.rebuilt = f"checkpoint at byte {offset}"
        else:
            offset = 0
            self.days, self.open = {}, {}
            self.rebuilt = "whole log" if state is None else "whole log (checkpoint stale)"
        self._roll(self.clock())
        f = _open_log(self.log_path)
        if f is not None:
            with f:
                f.seek(offset)
                for line in f:
                    self._replay(line)
        # What is still open had no end: the proxy died during those calls.
        for day, held in self.open.values():
            self._charge(day, held, unpriced=False, estimated=True)
        self.open = {}
        self.reserved = 0.0
        self._roll(self.clock())
        self._set_alarms()
        self.checkpoint(force=True)

    def _replay(self, line: bytes) -> None:
        month = _line_month(line)
        if month is not None and month.decode("ascii", "replace") < self.month:
            return  # a past month's line: skipped unparsed
        half = line_phase(line)
        rec = parse_record_line(line)
        if rec is None or rec.get("bot") != self.bot:
            return  # torn, or not a record of this bot
        ts = rec.get("ts")
        if not isinstance(ts, str) or len(ts) < 10:
            return
        if half is not None and half[0] == START:
            self.open[half[1].decode()] = (ts[:10], usd(rec.get("cost_est_usd")) or 0.0)
            return
        if half is not None and self.open.pop(half[1].decode(), None) is None:
            return  # settled before the checkpoint, or never sent (free)
        amount, unpriced, estimated = self.charge_of(rec)
        self._charge(ts[:10], amount, unpriced=unpriced, estimated=estimated)

    def _matching_offset(self, state: SpendState | None) -> int | None:
        """The checkpoint's offset if it still describes the log, else None."""
        if state is None:
            return None
        log = state.log
        offset, want = log.get("offset"), log.get("tail_sha256")
        if type(offset) is not int or offset < 0 or not isinstance(want, str):
            return None
        try:
            info = os.stat(self.log_path)
            if (info.st_dev, info.st_ino) != (log.get("dev"), log.get("ino")):
                return None
            if info.st_size < offset:
                return None
            f = _open_log(self.log_path)
            if f is None:
                return None
            with f:
                return offset if _tail_hash(f, offset) == want else None
        except OSError:
            return None if offset else 0

    # --- the checkpoint -------------------------------------------------
    def _state_locked(self) -> SpendState:
        return SpendState(
            bot=self.bot,
            daily_usd_budget=self.daily,
            monthly_usd_budget=self.monthly,
            today=self.today,
            today_usd=self.today_usd,
            month_usd=self.month_usd,
            reserved_usd=self.reserved,
            days={
                d: DaySpend(s.usd, s.calls, s.unpriced, s.estimated) for d, s in self.days.items()
            },
            open=dict(self.open),
        )

    def snapshot(self) -> dict[str, Any]:
        """What /health says of the spend."""
        with self.lock:
            self._maybe_roll(self.clock())
            return {
                "daily_usd_budget": self.daily,
                "monthly_usd_budget": self.monthly,
                "today_usd": round(self.today_usd, 6),
                "month_usd": round(self.month_usd, 6),
                "reserved_usd": round(self.reserved, 6),
                "inflight_reserved": len(self.open),
                "rebuilt_from": self.rebuilt,
            }

    def claim_checkpoint(self, urgent: bool) -> bool:
        """True (and the slot taken) when a checkpoint should be written now:
        at once when a threshold was crossed, else at most every
        `checkpoint_every_s` (a second by default)."""
        now = time.monotonic()
        if urgent or now - self._last_checkpoint >= self.checkpoint_every_s:
            self._last_checkpoint = now
            return True
        return False

    def checkpoint(self, force: bool = False) -> None:
        """Write spend.json: the log's size is read first, then the ledger,
        so every line before the offset is in the state (a call is settled
        before its end line is written). Never raises (reported on stderr)."""
        if not force and not self.claim_checkpoint(False):
            return
        with self._write_lock:
            self._last_checkpoint = time.monotonic()
            try:
                log: dict[str, Any]
                f = _open_log(self.log_path)
                if f is None:
                    log, tail = {"dev": 0, "ino": 0, "offset": 0}, _empty_hash()
                else:
                    with f:
                        info = os.fstat(f.fileno())
                        tail = _tail_hash(f, info.st_size)
                    log = {"dev": info.st_dev, "ino": info.st_ino, "offset": info.st_size}
                log["tail_sha256"] = tail
                now = self.clock()
                with self.lock:
                    self._maybe_roll(now)
                    state = self._state_locked()
                state.log = log
                state.updated = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
                write_state(self.state_path, state)
            except OSError as exc:
                self.checkpoint_errors += 1
                print(
                    f"cf-llm-proxy: {self.state_path}: {exc.strerror or exc}",
                    file=sys.stderr,
                    flush=True,
                )


def _open_log(path: Path) -> Any:
    """traffic.jsonl for reading, if it is a regular file (not, say, a link
    to a device that reads forever); None otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return None
    except OSError:
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")


def _tail_hash(f: Any, offset: int) -> str:
    start = max(offset - TAIL_BYTES, 0)
    f.seek(start)
    return hashlib.sha256(f.read(offset - start)).hexdigest()


def _empty_hash() -> str:
    return hashlib.sha256(b"").hexdigest()
