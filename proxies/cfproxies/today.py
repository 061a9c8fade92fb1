"""Today's tokens in a `traffic.jsonl`: the one rule that the LLM proxy's
daily budget (`llm_proxy.budget`) and the operator's reader
(`cftui.audit.traffic.daily`) both apply, so that the fleet view's tokens
today are what the budget charges.

- A day is a UTC day. A record is today's when its `ts` is at or after
  today's midnight (`day_start`): RFC 3339 times in UTC compare as strings.
- A call counts once. A finished call (an end line, or a line written
  before `phase` existed) counts its usage, `tokens_in + tokens_out`; a
  start line counts its `tokens_est` until its end line comes, so a proxy
  that died mid-call does not make the call free.

`TodayLines` applies the rule to lines fed in file order. The proxy feeds
it the whole log once at start (exact even where lines are out of time
order); the reader feeds it what was appended since its last count, after
summing the bulk of today with its own C-speed scan, whose agreement with
this rule `tests/audit/test_traffic_daily.py` checks."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from cfproxies.record import (
    END_PREFIX,
    ID_LEN,
    START,
    START_PREFIX,
    line_phase,
    parse_record_line,
    token_count,
)

_DAY = 86400
_TS_KEY = b',"ts":"'


def day_start(epoch: float | None = None) -> str:
    """Midnight UTC of the day of `epoch` (now by default), as a record's
    `ts` compares with it."""
    epoch = time.time() if epoch is None else epoch
    return time.strftime("%Y-%m-%dT00:00:00.000Z", time.gmtime(epoch))


def next_midnight(epoch: float) -> float:
    """When the UTC day of `epoch` ends (epoch seconds)."""
    return (int(epoch) // _DAY + 1) * _DAY


def call_tokens(record: dict[str, Any]) -> int:
    """What a finished call counts against the day: its usage."""
    return token_count(record.get("tokens_in")) + token_count(record.get("tokens_out"))


def _head_ts(line: bytes, phase_len: int) -> tuple[bytes, int] | None:
    """The `ts` of a line the proxy wrote, read where its writer puts it
    (right after the id: see `cfproxies.record`), and where its closing
    quote is; None if it is not there."""
    at = phase_len + ID_LEN + 1
    if not line.startswith(_TS_KEY, at):
        return None
    at += len(_TS_KEY)
    end = line.find(b'"', at, at + 40)
    return (line[at:end], end) if end > 0 else None


class TodayLines:
    """The rule applied to lines fed in file order: `feed` says which are
    today's finished calls (the caller adds up their usage its own way),
    and `open` holds today's starts still waiting for their end (id ->
    `tokens_est`). `bot`, when given, leaves other bots' lines out.
    `record` is the last line's record when `feed` had to parse it (a line
    not as the proxy writes it), else None: a caller need not parse it again."""

    def __init__(self, since: str, bot: str | None = None) -> None:
        self.since = since
        self._since = since.encode()
        self.bot = bot
        # `"bot":"name",` right after the ts's closing quote, as the proxy writes it
        self._bot_key = None if bot is None else b'","bot":' + json.dumps(bot).encode() + b","
        self.open: dict[bytes, int] = {}
        self.record: dict[str, Any] | None = None

    @property
    def estimates(self) -> int:
        """The tokens today's unfinished calls are charged."""
        return sum(self.open.values())

    def feed(self, line: bytes) -> bool:
        """Take one line (with or without its newline); True when it is a
        finished call of today. A torn or malformed line is nothing."""
        self.record = None
        line = line.strip()
        if not (line.startswith(b"{") and line.endswith(b"}")):
            return False
        half = line_phase(line)
        if half is not None and half[0] != START:
            self.open.pop(half[1], None)  # an end closes its start, whatever its day
        head = None
        if half is not None:
            head = _head_ts(line, len(START_PREFIX if half[0] == START else END_PREFIX))
        record = None
        if head is not None and (self._bot_key is None or line.startswith(self._bot_key, head[1])):
            today = head[0] >= self._since
        else:  # not as the proxy writes it: read the record
            record = self.record = parse_record_line(line)
            if record is None or (self.bot is not None and record.get("bot") != self.bot):
                return False
            ts = record.get("ts")
            today = isinstance(ts, str) and ts >= self.since
        if not today:
            return False
        if half is not None and half[0] == START:
            record = record or parse_record_line(line)
            self.open[half[1]] = token_count((record or {}).get("tokens_est"))
            return False
        return True


def tokens_today(path: Path, bot: str, epoch: float | None = None) -> int:
    """The tokens `bot`'s calls of the day of `epoch` (now by default) used,
    from the whole of its `traffic.jsonl` (0 if it cannot be read): every
    finished call's usage, and each unfinished call's estimate."""
    try:
        f = path.open("rb")
    except OSError:
        return 0
    today = TodayLines(day_start(epoch), bot)
    used = 0
    with f:
        for line in f:
            if today.feed(line):
                record = today.record or parse_record_line(line)
                used += call_tokens(record) if record is not None else 0
    return used + today.estimates
