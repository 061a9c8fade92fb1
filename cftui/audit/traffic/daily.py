"""Today's (or this month's) calls, tokens and cost of one bot
(`DailyCounter`), for the fleet view. What is today's, and what a call
counts, is `cfproxies.today`'s rule,
the one the proxy's daily budget applies: where today starts is found from
the end of the log, the bulk of today is added up by the filter's scan (its
C-speed totals), and later counts feed only the appends to `TodayLines`.
A month is counted the same way from its first midnight (`month_start`):
the rule takes any start, and the month's budget is a calendar month's."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from cfproxies.today import TodayLines, day_start

from cftui.audit.traffic import lineio
from cftui.audit.traffic.fields import field_of
from cftui.audit.traffic.filter import TrafficFilter
from cftui.audit.traffic.lineio import last_newline_before, read_lines
from cftui.audit.traffic.pairing import end_after
from cftui.audit.traffic.scan import scan_ranges
from cftui.audit.traffic.totals import Totals


def month_start(epoch: float | None = None) -> str:
    """The first midnight UTC of the calendar month of `epoch` (now by
    default), as a record's `ts` compares with it."""
    return day_start(epoch)[:8] + "01T00:00:00.000Z"


class DailyCounter:
    """Calls, tokens and cost since midnight UTC (or since `period`'s start:
    `month_start` for the month) for one traffic.jsonl, kept up to date
    incrementally (the fleet screen asks every few seconds).

    The first call finds where today starts from the end of the file, and
    adds up today's lines with the filter's totals (`scan_ranges`: worker
    processes for a big file); later calls read only what was appended.
    Threads may call it at once (the TUI restarts its refresh worker while
    one still runs): they take turns, so none re-reads the file from 0."""

    def __init__(self, path: Path | str, period: Callable[[float | None], str] = day_start) -> None:
        self.path = Path(path)
        self.period = period
        self.day = ""
        self.totals = Totals()
        self._finished = Totals()  # today's whole calls; `totals` adds the open starts
        self._today = TodayLines("")  # the appends since the last count, by the shared rule
        self._ino = 0
        self._pos = 0
        self._lock = threading.Lock()

    def update(self, now: datetime | None = None) -> Totals:
        if now is not None and now.tzinfo is None:
            now = now.replace(tzinfo=UTC)  # a naive time is UTC's
        since = self.period(None if now is None else now.timestamp())
        with self._lock:
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                self.totals, self._pos, self._ino = Totals(), 0, 0
                self._finished, self._today = Totals(), TodayLines(since)
                return self.totals
            if since != self.day or st.st_ino != self._ino or st.st_size < self._pos:
                self.day, self._ino = since, st.st_ino
                self._finished, self._today, self._pos = self._scan_back(since, st.st_size)
            elif st.st_size > self._pos:
                self._read_forward(st.st_size)
            self.totals = replace(self._finished)
            self.totals.add_open(self._today.open.values())
            return self.totals

    def _scan_back(self, since: str, size: int) -> tuple[Totals, TodayLines, int]:
        """Today's totals of whole calls, today's starts still open (in the
        `TodayLines` that reads the appends next), and where the whole lines
        end (the torn tail is read next time)."""
        with open(self.path, "rb") as f:
            fd = f.fileno()
            ino = os.fstat(fd).st_ino
            end = last_newline_before(fd, size) + 1
            start = since_offset(fd, since, end)
            merged = scan_ranges(self.path, TrafficFilter(), ino, start, end)
            today = TodayLines(since)
            if merged is None:  # replaced meanwhile: start over next time
                self._ino = 0
                return Totals(), today, 0
            for ident, (_line, est, line_end) in merged[3].items():
                if not end_after(fd, ident, line_end)[0]:
                    today.open[ident] = est
        return merged[1], today, end

    def _read_forward(self, size: int) -> None:
        with open(self.path, "rb") as f:
            fd = f.fileno()
            stop = last_newline_before(fd, size) + 1  # the torn tail: next time
            while self._pos < stop:  # by chunks: a long gap never sits in memory whole
                data = read_lines(fd, self._pos, stop)
                if not data:
                    return
                for line in data[:-1].split(b"\n"):
                    if self._today.feed(line):
                        self._finished.add_line(line)
                self._pos += len(data)


def since_offset(fd: int, since: str, end: int) -> int:
    """Where the lines at or after `since` (a `ts`, such as today's
    midnight) start in [0, end) (`end` ends a line). The log is
    in time order, so it is found from the end by blocks: a block whose
    first line is from today is today's whole, and only the block where
    yesterday ends is read line by line (the first line from the end older
    than `since` ends yesterday; a line without a time does not)."""
    pos = end  # a line start: [pos, end) is today's
    size = lineio.CHUNK  # at call time: a test shrinks it
    while pos > 0:
        start = max(0, pos - size)
        data = os.pread(fd, pos - start, start)
        first = data.find(b"\n") + 1 if start else 0
        if first >= len(data):  # no line starts in the block: a long one, read more
            size *= 2
            continue
        size = lineio.CHUNK
        if not _older(data[first : data.find(b"\n", first)], since):
            pos = start + first
            continue
        lend = len(data) - 1  # yesterday ends in this block: find where
        while lend >= first:
            ls = data.rfind(b"\n", 0, lend) + 1
            if _older(data[ls:lend], since):
                return start + lend + 1
            lend = ls - 1
    return 0


def _older(line: bytes, since: str) -> bool:
    ts = field_of(line, "ts") if line.strip() else None
    return isinstance(ts, str) and ts < since
