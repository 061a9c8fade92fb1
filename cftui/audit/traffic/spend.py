"""Spend: calls, tokens and cost grouped by model, provider, day or hour
(`Totals` per group), over the lines since a date, for `cftui costs` and the
overview's chart. Where the date starts is found from the end of the file
by blocks (`since_offset`, the daily counter's search), so a `--since`
reads only the lines after it; a big range is cut for worker processes
(`rangescan`) as the filter's scan is, and only small dicts of totals come
back. A line is read by `Totals.add_line` (the one reader of a call's
tokens, status and cost) and its group from its header (`fields`).

A call counts once, as everywhere in this package: by its end line; a start
line whose end is not in the file is an unfinished call (unpriced) in its
start's group. A log can name any number of models (the agent picks the
name): past MAX_GROUPS distinct groups the rest are added up as OTHER, so a
hostile log costs bounded memory."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from cfproxies.record import END, START, line_phase

from cftui.audit import rangescan
from cftui.audit.traffic.daily import since_offset
from cftui.audit.traffic.fields import HALF_HEAD, field_of, parse_ok, top_limit
from cftui.audit.traffic.filter import TrafficFilter
from cftui.audit.traffic.lineio import feed_range, last_newline_before
from cftui.audit.traffic.pairing import end_after
from cftui.audit.traffic.scan import PARALLEL_MIN, RANGE, scan_ranges
from cftui.audit.traffic.totals import Totals

GROUPINGS = ("bot", "model", "provider", "day")  # what `cftui costs --by` takes
MAX_GROUPS = 1000
OTHER = "(other)"
NONE = "(none)"  # a call whose model (provider) is not a string: none asked, or odd

# id -> (group, tokens_est, where the start line ends) of starts not yet ended
Open = dict[bytes, tuple[str, int, int]]
Groups = dict[str, Totals]


def since_ts(day: date | datetime) -> str:
    """The `ts` a record of `day` (or after the hour of a datetime, UTC)
    compares with: RFC 3339 times in UTC compare as strings."""
    if isinstance(day, datetime):
        day = day.astimezone(UTC) if day.tzinfo else day.replace(tzinfo=UTC)
        return day.strftime("%Y-%m-%dT%H:00:00.000Z")
    return f"{day.isoformat()}T00:00:00.000Z"


def group_of(line: bytes, by: str, limit: int) -> str:
    """The group of a record line: its day (`2026-11-24`), hour
    (`2026-11-24T06`), model or provider; NONE when the field is not a
    string (or the time not a time)."""
    if by in ("day", "hour"):
        ts = field_of(line, "ts", limit)
        size = 10 if by == "day" else 13
        return ts[:size] if isinstance(ts, str) and len(ts) >= size else NONE
    value = field_of(line, by, limit)
    return value if isinstance(value, str) else NONE


def _slot(groups: Groups, key: str) -> Totals:
    totals = groups.get(key)
    if totals is None:
        if len(groups) >= MAX_GROUPS:
            key = OTHER
        totals = groups.setdefault(key, Totals())
    return totals


class GroupScan:
    """One pass over consecutive chunks of whole lines: totals per group,
    and the start lines still waiting for their end."""

    def __init__(self, by: str) -> None:
        self.by = by
        self.groups: Groups = {}
        self.open: Open = {}

    def feed(self, chunk: bytes, offset: int) -> None:
        by, groups, opened = self.by, self.groups, self.open
        pos = 0
        for line in chunk.split(b"\n"):
            start, pos = pos, pos + len(line) + 1
            if not parse_ok(line):
                continue
            half = line_phase(line[:HALF_HEAD])
            if half is not None and half[0] == START:
                est = field_of(line, "tokens_est")
                estimate = est if isinstance(est, int) and est > 0 else 0
                group = group_of(line, by, top_limit(line))
                opened[half[1]] = (group, estimate, offset + start + len(line))
                continue
            if half is not None and half[0] == END:
                opened.pop(half[1], None)
            _slot(groups, group_of(line, by, top_limit(line))).add_line(line)


def group_range(path: str, start: int, end: int, by: str, ino: int) -> tuple[Groups, Open] | None:
    """`GroupScan` over the whole lines in [start, end) of `path` (in a
    worker process: it opens the file itself); None when the file is no
    longer the one asked for (inode `ino`, at least `end` bytes)."""
    scan = GroupScan(by)
    # whole lines: the last newline ends the last
    if not feed_range(path, start, end, ino, lambda data, pos: scan.feed(data[:-1], pos)):
        return None
    return scan.groups, scan.open


def merge(into: Groups, groups: Mapping[str, Totals]) -> None:
    """Add `groups` to `into`, past MAX_GROUPS into OTHER."""
    for key, totals in groups.items():
        _slot(into, key).add(totals)


def spend(path: Path | str, by: str, since: str = "", *, bot: str | None = None) -> Groups:
    """Totals per group of the calls in a traffic.jsonl whose time is at or
    after `since` (a `since_ts`; "" for all). `by="bot"` is one group named
    `bot` (one log is one bot's), added up by the C-speed totals of the
    filter's scan. Empty if there is no log. Blocking: a worker's call."""
    try:
        f = open(path, "rb")  # noqa: SIM115  # closed below; a missing log is no spend
    except FileNotFoundError:
        return {}
    with f:
        fd = f.fileno()
        st = os.fstat(fd)
        end = last_newline_before(fd, st.st_size) + 1  # a torn tail: not a call yet
        start = since_offset(fd, since, end) if since else 0
        if start >= end:
            return {}
        if by == "bot":
            return _one_group(path, bot or NONE, st.st_ino, start, end, fd)
        groups: Groups = {}
        opened: Open = {}
        with rangescan.Scan(
            group_range,
            path,
            by,
            st.st_ino,
            start=start,
            end=end,
            chunk=RANGE,
            min_parallel=PARALLEL_MIN,
        ) as scan:
            for _s, _e, part in scan:
                if part is None:
                    return {}  # replaced under the scan: nothing sure to say
                part_groups, part_open = part
                merge(groups, part_groups)
                opened.update(part_open)
        for ident, (group, est, line_end) in opened.items():
            if not end_after(fd, ident, line_end)[0]:
                _slot(groups, group).add_open([est])
    return groups


def _one_group(path: Path | str, name: str, ino: int, start: int, end: int, fd: int) -> Groups:
    merged = scan_ranges(path, TrafficFilter(), ino, start, end)
    if merged is None:
        return {}
    totals = merged[1]
    still = [est for ident, (_n, est, at) in merged[3].items() if not end_after(fd, ident, at)[0]]
    totals.add_open(still)
    return {name: totals}


def total(groups: Iterable[Totals]) -> Totals:
    """The sum of some groups' totals."""
    out = Totals()
    for totals in groups:
        out.add(totals)
    return out


def hourly(path: Path | str, now: datetime, hours: int = 24) -> list[tuple[str, Totals]]:
    """The last `hours` UTC hours up to `now`'s, oldest first, each with its
    totals (empty ones too): the series the overview's chart draws."""
    now = now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)
    first = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
    groups = spend(path, "hour", since_ts(first))
    keys = [(first + timedelta(hours=h)).strftime("%Y-%m-%dT%H") for h in range(hours)]
    return [(key, groups.get(key) or Totals()) for key in keys]
