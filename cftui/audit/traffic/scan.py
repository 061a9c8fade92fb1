"""A filter's pass over byte ranges of the log: `RangeScan` feeds on
chunks of whole lines, `scan_range` runs one over a range (in this process
or in a worker process: it opens the file itself), and `scan_ranges` cuts
a big file into ranges for `cftui.audit.rangescan` and merges the results."""

from __future__ import annotations

from array import array
from collections.abc import Callable
from itertools import repeat
from operator import add
from pathlib import Path

from cftui.audit import rangescan
from cftui.audit.traffic.fields import is_start, start_id
from cftui.audit.traffic.filter import TrafficFilter
from cftui.audit.traffic.lineio import feed_range, newlines_in
from cftui.audit.traffic.pairing import Pairing, Pending
from cftui.audit.traffic.totals import Totals, chunk_totals, lines_totals

RANGE = 32 << 20  # a worker's task: ~30 ms, so a new filter cancels the old one quickly
PARALLEL_MIN = 16 << 20  # smaller files are filtered here: a worker's start costs more

Progress = Callable[[float], object]  # what it returns is ignored
Cancelled = Callable[[], bool]


def never() -> bool:
    """The default `cancelled`: a pass runs to its end."""
    return False


def no_progress(_fraction: float) -> None:
    """The default `progress`: nobody watches."""


class RangeScan:
    """One filter's pass over consecutive chunks of whole lines: the numbers
    of the matching lines (0 = the first chunk's first line), their totals,
    and how many lines were fed. The filter feeds it in this process for a
    small file, and each worker process feeds one for its byte range.

    One C-level search per chunk finds the filter's most selective needle
    (`TrafficFilter.driver`); only lines holding it are looked at one by
    one: their bounds come from `rfind`/`find` of the newlines around the
    hit, their number from counting newlines since the last match (C
    calls), their top-level header is checked by `span_matcher`, and the
    totals of a chunk's matches come from one regex pass over their headers
    joined (`lines_totals`)."""

    def __init__(self, flt: TrafficFilter) -> None:
        self.flt = flt
        self.lines = array("q")
        self.totals = Totals()  # of the whole-call lines; `pairing` holds the open starts
        self.line_count = 0
        self.pairing = Pairing()
        self._driver = flt.driver()
        self._match = flt.span_matcher()

    def feed(self, chunk: bytes, offset: int = 0) -> None:
        """Scan a chunk of whole lines that begins at file offset `offset`."""
        first_line = self.line_count
        if self._driver is None:  # only an empty filter has no needle: count all
            count, found = chunk_totals(chunk, self.totals)
            self.line_count += count
            if found is not None:
                self.pairing.feed(chunk, first_line, offset, count, found[0], found[1])
            elif self.pairing.pending:  # no start line, but maybe the ends of open ones
                self.pairing.feed(chunk, first_line, offset, count, [])
            return
        matched: list[tuple[bytes, int]] = []  # the start lines that pass
        number = self.line_count  # of the line starting at `counted`
        find, lowered = self._driver
        match = self._match
        hay = chunk.lower() if lowered else chunk
        heads: list[bytes] = []
        starts: list[int] = []
        add = self.lines.append
        counted = 0
        pos = find(hay, 0)
        while pos >= 0:  # needles hold no newline: a hit lies within one line
            ls = chunk.rfind(b"\n", 0, pos) + 1
            le = chunk.find(b"\n", pos)
            head = match(chunk, ls, le, hay, pos)
            if head is not None and is_start(head):
                matched.append((start_id(head), ls))
            elif head is not None:
                number += newlines_in(chunk, counted, ls)
                counted = ls
                add(number)
                heads.append(head)
                starts.append(ls)
            pos = find(hay, le + 1)
        self.line_count = number + newlines_in(chunk, counted, len(chunk))
        lines_totals(heads, chunk, starts, self.totals)
        self.pairing.feed(chunk, first_line, offset, self.line_count - first_line, matched)


# matching line numbers, totals of the whole calls among them, line count,
# the start lines the filter matched whose end is not in the range
RangeResult = tuple[array, Totals, int, Pending]


def scan_range(path: str, start: int, end: int, flt: TrafficFilter, ino: int) -> RangeResult | None:
    """`flt` over the whole lines in [start, end) of `path`: (numbers of the
    matching lines from the range's first line, their totals, the range's
    line count, its start lines left open: see `Pairing`). Runs in a worker process (`cftui.audit.rangescan`), which
    opens the file itself; None when the file at `path` is no longer the
    one indexed (inode `ino`, at least `end` bytes): rotated or truncated."""
    scan = RangeScan(flt)
    if not feed_range(path, start, end, ino, scan.feed):
        return None
    return scan.lines, scan.totals, scan.line_count, scan.pairing.pending


def scan_ranges(
    path: Path | str,
    flt: TrafficFilter,
    ino: int,
    start: int,
    end: int,
    progress: Progress = no_progress,
    cancelled: Cancelled = never,
) -> RangeResult | None:
    """`scan_range` over the whole lines in [start, end), cut into ranges
    scanned by worker processes when there are PARALLEL_MIN bytes or more
    (`rangescan`), merged: line numbers counted from `start`, totals of the
    whole calls, line count, the start lines left open (see `Pairing`).
    None if cancelled or the file changed. A broken pool (a worker
    killed) costs speed, not the result: the scan is done here instead."""
    try:
        return _scan_ranges(path, flt, ino, start, end, progress, cancelled, workers=None)
    except FileNotFoundError:  # rotated away
        return None
    except Exception as exc:
        from concurrent.futures.process import BrokenProcessPool  # multiprocessing: when used

        if not isinstance(exc, BrokenProcessPool):
            raise
        return _scan_ranges(path, flt, ino, start, end, progress, cancelled, workers=1)


def _scan_ranges(
    path: Path | str,
    flt: TrafficFilter,
    ino: int,
    start: int,
    end: int,
    progress: Progress,
    cancelled: Cancelled,
    workers: int | None,
) -> RangeResult | None:
    found = array("q")
    totals = Totals()
    counted = 0
    pending: Pending = {}
    scan = rangescan.Scan(
        scan_range,
        path,
        flt,
        ino,
        start=start,
        end=end,
        chunk=RANGE,
        workers=workers,
        min_parallel=PARALLEL_MIN,
        progress=progress,
    )
    with scan:
        for _start, _end, part in scan:
            if part is None or cancelled():
                return None
            lines, part_totals, count, part_pending = part
            found.extend(map(add, lines, repeat(counted)) if counted else lines)
            totals.add(part_totals)
            for ident, (number, est, end_at) in part_pending.items():
                pending[ident] = (number + counted, est, end_at)
            counted += count
    return found, totals, counted, pending
