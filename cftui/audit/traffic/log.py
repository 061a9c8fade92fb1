"""`TrafficLog`: one bot's traffic.jsonl as numbered lines. The index of
line offsets (`array('q')`, 8 bytes a line) is built from the end of the
file so the newest calls are known first; lines are read with `pread` when
shown and kept in small LRU caches; the follower reads appends and notices
truncation and rotation; whole-file passes (filter, totals) go through
`scan_ranges`, and the last count is kept so a count again reads only the
lines since."""

from __future__ import annotations

import os
import threading
import time
from array import array
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from itertools import accumulate, repeat
from operator import add
from pathlib import Path
from typing import Any

from cfproxies.record import parse_record_line

from cftui.audit.traffic.fields import is_start, start_id
from cftui.audit.traffic.filter import TrafficFilter
from cftui.audit.traffic.lineio import last_newline_before
from cftui.audit.traffic.pairing import Pending, end_after, unfinished, with_pending
from cftui.audit.traffic.scan import Cancelled, Progress, never, no_progress, scan_ranges
from cftui.audit.traffic.totals import Totals

SCAN_BLOCK = 1 << 20  # index read size (pread, not mmap: RSS stays flat)
FOLLOW_READ = 1 << 20  # follower read size
POLL_INTERVAL_S = 0.05  # the follower's idle sleep: appends show in ≤ 250 ms
PROGRESS_EVERY_S = 0.1


class LRU:
    """A small thread-safe LRU mapping (threads fill it, the UI reads it)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


MISS = object()  # `TrafficLog.cached`: not read yet


@dataclass
class FilterResult:
    """Line indices (ascending) of the matching records, and their totals."""

    lines: array = field(default_factory=lambda: array("q"))
    totals: Totals = field(default_factory=Totals)
    cancelled: bool = False
    generation: int = 0
    covered: int = 0  # lines 0..covered-1 were looked at; later ones are appends


@dataclass(frozen=True)
class Change:
    """What `TrafficLog.poll` saw: `appended` new lines, or a `reset`
    (truncated, rotated, or created) after which every index is stale."""

    appended: int = 0
    reset: bool = False

    def __bool__(self) -> bool:
        return bool(self.appended or self.reset)


class TrafficLog:
    """One bot's traffic.jsonl: index, line access, follower, filter.

    Lines are numbered 0 (oldest known) to len-1 (newest). While the backward
    scan runs, older lines are still being discovered, so numbering shifts by
    `len` growth at the front; `scanned` says when it is final.
    """

    def __init__(self, path: Path | str, raw_cache: int = 2048, record_cache: int = 1024) -> None:
        self.path = Path(path)
        self.generation = 0
        self.malformed: set[tuple[int, int]] = set()
        self.hidden: set[tuple[int, int]] = set()  # start lines of finished calls
        self._raw = LRU(raw_cache)
        self._rec = LRU(record_cache)
        self._lock = threading.RLock()
        self._fd: int | None = None
        self._reset_state()

    def _reset_state(self) -> None:
        self._ino = 0
        self._read_pos = 0
        # Newline offsets found by the backward scan, newest first; a -1
        # sentinel is appended when the scan reaches the start of the file.
        self._rev = array("q")
        # Newline offsets after the scanned region, oldest first; [0] is the
        # last newline before it (or -1), shared with _rev[0].
        self._fwd = array("q", [-1])
        self.scanned = False
        # The last count of every line (an empty filter): (generation, lines,
        # totals of the whole calls, starts still open); counted again, only
        # the lines after are read.
        self._counted: tuple[int, int, Totals, Pending] = (-1, 0, Totals(), {})
        self._ends = LRU(4096)  # start id -> True (its end is in the file) or offset searched to

    # --- opening and scanning ---------------------------------------------
    def open(self) -> bool:
        """Open the file if it exists; False (no error) if it does not yet."""
        with self._lock:
            if self._fd is not None:
                return True
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                return False
            st = os.fstat(fd)
            self._fd = fd
            self._reset_state()
            self._ino = st.st_ino
            self._read_pos = st.st_size
            last = last_newline_before(fd, st.st_size)
            self._fwd = array("q", [last])
            if last >= 0:
                self._rev = array("q", [last])
            else:
                self._rev = array("q")
                self._rev.append(-1)  # nothing before: the scan is trivially done
                self.scanned = True
            return True

    def scan(self, progress: Progress = no_progress, cancelled: Cancelled = never) -> bool:
        """Index every line of the opened file, newest first, in batches so
        that readers see the tail at once. Blocking: run it in a thread.
        Returns False if cancelled."""
        with self._lock:
            if self._fd is None or self.scanned:
                progress(1.0)
                return True
            fd, generation, rev = self._fd, self.generation, self._rev
            pos = rev[-1]
        size = pos + 1
        end = pos  # newlines are searched in [start, end), block by block backwards
        next_report = 0.0  # the first block is reported at once: it holds the tail
        while end > 0:
            start = max(0, end - SCAN_BLOCK)
            with self._lock:  # close() may not run between the check and the read
                if self._fd is None or generation != self.generation:
                    return False
                data = os.pread(fd, end - start, start)
            # Newline offsets of the block, computed by C iterators (split,
            # len, accumulate): the GIL is held for a fraction of a millisecond
            # per block, so the UI and the line reader never queue behind us.
            parts = data.split(b"\n")
            parts.pop()  # after the block's last newline: belongs to the next line
            batch = array("q", accumulate(map(add, map(len, parts), repeat(1))))
            if batch:
                batch = array("q", map(add, batch, repeat(start - 1)))
                batch.reverse()
                rev.extend(batch)
            end = start
            now = time.monotonic()
            if now >= next_report:
                next_report = now + PROGRESS_EVERY_S
                progress(1.0 - end / size)
                if cancelled():
                    return False
        rev.append(-1)  # the start of the file: the sentinel
        self.scanned = True
        progress(1.0)
        return True

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self._reset_state()
            self._raw.clear()
            self._rec.clear()

    def __enter__(self) -> TrafficLog:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- following ------------------------------------------------------------
    def poll(self) -> Change:
        """Read what was appended since last time; notice truncation and
        rotation. Blocking but quick: call it from one thread only."""
        with self._lock:
            if self._fd is None:
                if self.open():
                    self.generation += 1
                    self.scan()
                    return Change(reset=True)
                return Change()
            st = os.fstat(self._fd)
            if st.st_size < self._read_pos:  # truncated in place
                return self._reopen()
            if st.st_size == self._read_pos:
                try:
                    path_ino = os.stat(self.path).st_ino
                except FileNotFoundError:
                    return Change()  # rotated away, new file not there yet
                if path_ino != self._ino:  # rotated: old file drained
                    return self._reopen()
                return Change()
            added = 0
            fwd = self._fwd
            while self._read_pos < st.st_size:
                n = min(FOLLOW_READ, st.st_size - self._read_pos)
                data = os.pread(self._fd, n, self._read_pos)
                if not data:
                    break
                base = self._read_pos
                i = data.find(b"\n")
                while i >= 0:
                    fwd.append(base + i)
                    added += 1
                    i = data.find(b"\n", i + 1)
                self._read_pos += len(data)
            return Change(appended=added)

    def _reopen(self) -> Change:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._raw.clear()
        self._rec.clear()
        self.malformed.clear()
        self.hidden.clear()
        self._ends.clear()
        self.generation += 1
        self._reset_state()
        if self.open():
            self.scan()
        return Change(reset=True)

    def follow(
        self,
        on_change: Callable[[Change], None],
        stop: threading.Event,
        interval: float = POLL_INTERVAL_S,
    ) -> None:
        """Poll until `stop` is set, calling `on_change` for each change."""
        while not stop.is_set():
            change = self.poll()
            if change:
                on_change(change)
            else:
                stop.wait(interval)

    # --- lines ------------------------------------------------------------------
    @property
    def scanned_lines(self) -> int:
        """Lines the backward scan has found so far (they grow at the front)."""
        return max(len(self._rev) - 1, 0)

    def __len__(self) -> int:
        return max(len(self._rev) - 1, 0) + len(self._fwd) - 1

    def span(self, i: int) -> tuple[int, int] | None:
        """[start, end) of line i (without its newline), or None if gone."""
        rev, fwd = self._rev, self._fwd
        n_rev = max(len(rev) - 1, 0)
        try:
            if i < 0:
                return None
            if i < n_rev:
                j = n_rev - 1 - i  # 0 = newest of the scanned region
                return rev[j + 1] + 1, rev[j]
            k = i - n_rev
            return fwd[k] + 1, fwd[k + 1]
        except IndexError:
            return None

    def raw(self, i: int) -> bytes | None:
        """Line i as bytes (LRU cached, read with pread)."""
        return self.raw_at(self.span(i))

    def raw_at(self, span: tuple[int, int] | None) -> bytes | None:
        """The bytes of a span (LRU cached, read with pread)."""
        if span is None:
            return None
        key = (self.generation, span[0])
        line = self._raw.get(key)
        if line is None:
            with self._lock:  # close() may not run between the check and the read
                if self._fd is None or key[0] != self.generation:
                    return None
                try:
                    line = os.pread(self._fd, span[1] - span[0], span[0])
                except OSError:
                    return None
            self._raw.put(key, line)
        return line

    def record(self, i: int) -> dict[str, Any] | None:
        """Line i parsed; None (and counted) if torn or malformed."""
        return self.record_at(self.span(i))

    def record_at(self, span: tuple[int, int] | None) -> dict[str, Any] | None:
        """The record at a span (stable while the scan renumbers lines);
        None for a torn or malformed line (counted in `malformed`) and for
        the start line of a finished call (in `hidden`); the start line of
        an unfinished one comes marked `"unfinished": true`."""
        if span is None:
            return None
        key = (self.generation, span[0])
        rec = self._rec.get(key)
        if rec is None:
            if key in self.hidden:
                return None
            line = self.raw_at(span)
            rec = parse_record_line(line) if line is not None else None
            if rec is None:
                if line is not None and line.strip():
                    self.malformed.add(key)
                return None
            if line is not None and is_start(line):
                if self.ended(start_id(line), span[1]):
                    self.hidden.add(key)
                    return None
                return unfinished(rec)  # as of now: not cached, its end may come
            self._rec.put(key, rec)
        return rec

    def call(self, i: int) -> dict[str, Any] | None:
        """Line i as a call for a follower: None for any start line (the
        call is shown once, when its end comes), without looking for the end."""
        raw = self.raw(i)
        return None if raw is None or is_start(raw) else self.record(i)

    def is_hidden(self, i: int) -> bool:
        """Whether line i is the start line of a finished call, which a view
        skips (its end line is the call). Reads the file: a worker's call."""
        span = self.span(i)
        if span is not None:
            self.record_at(span)
        return self.known_hidden(i)

    def known_hidden(self, i: int) -> bool:
        """`is_hidden` as far as line i has been read already (no I/O: the
        UI thread's question)."""
        span = self.span(i)
        return span is not None and (self.generation, span[0]) in self.hidden

    def ended(self, ident: bytes, after: int) -> bool:
        """Whether the end line of call `ident` is in the file past offset
        `after` (the end of its start line). An end, once there, stays: a
        yes is remembered, and a no only up to where the file was read."""
        known = self._ends.get(ident)
        if known is True:
            return True
        with self._lock:
            if self._fd is None:
                return False
            found, upto = end_after(self._fd, ident, max(after, known or 0))
        self._ends.put(ident, True if found else upto)
        return found

    def cached(self, i: int) -> dict[str, Any] | object | None:
        """Line i's record if already parsed (None if malformed or hidden),
        else MISS; never reads the file, so a UI thread may call it."""
        span = self.span(i)
        if span is None:
            return None
        key = (self.generation, span[0])
        rec = self._rec.get(key)
        if rec is not None:
            return rec
        return None if key in self.malformed or key in self.hidden else MISS

    def tail(self, n: int) -> list[tuple[int, dict[str, Any]]]:
        """The last n calls (well-formed records, unfinished calls' start
        lines, not the start lines of finished ones), oldest first, with
        their indices."""
        out: list[tuple[int, dict[str, Any]]] = []
        i = len(self) - 1
        while i >= 0 and len(out) < n:
            rec = self.record(i)
            if rec is not None:
                out.append((i, rec))
            i -= 1
        out.reverse()
        return out

    # --- whole-file passes (filter, totals) -----------------------------------
    def filter(
        self,
        flt: TrafficFilter,
        progress: Progress = no_progress,
        cancelled: Cancelled = never,
        end_line: int | None = None,
    ) -> FilterResult:
        """Every line matching `flt`, with totals. Scans first if needed.

        The file is cut into newline-aligned byte ranges, each filtered by
        `scan_range` (see `RangeScan` for how it stays fast): in worker
        processes for a big file (`rangescan`), so that this process only
        merges compact results (arrays of line numbers, totals) and its GIL
        stays free for the UI; here for a small one. The result is
        `cancelled` when asked to, or when the file changed under the scan."""
        if not self.scanned:
            self.scan(lambda f: progress(f * 0.3), cancelled)
            base_progress = 0.3
        else:
            base_progress = 0.0
        result = FilterResult(generation=self.generation)
        if not self.scanned:
            result.cancelled = True
            return result
        span = 1.0 - base_progress
        next_report = 0.0

        def report(f: float) -> None:
            nonlocal next_report
            now = time.monotonic()
            if now >= next_report:
                next_report = now + PROGRESS_EVERY_S
                progress(base_progress + f * span)

        with self._lock:  # the follower appends under it: end and lines agree
            if end_line is None:
                end_line = len(self)
            last = self.span(end_line - 1) if end_line > 0 else None
            end = last[1] + 1 if last else 0
            ino = self._ino
            first, base, pending = 0, Totals(), {}
            counted = self._counted
            if flt.empty and counted[0] == self.generation and 0 < counted[1] <= end_line:
                # only the lines since
                first, base, pending = counted[1], replace(counted[2]), dict(counted[3])
            start = self.span(first - 1)[1] + 1 if first else 0  # type: ignore[index]  # a span exists for every line before end_line
        merged = scan_ranges(self.path, flt, ino, start, end, report, cancelled)
        changed = merged is None or merged[2] != end_line - first
        if merged is None or changed or result.generation != self.generation or cancelled():
            result.cancelled = True  # asked to, or the file changed under the scan
            return result
        lines, totals, _count, later = merged
        pending.update((i, (n + first, est, at)) for i, (n, est, at) in later.items())
        # Open at the end of the pass: its end may be further on (after a
        # range's end, or after `end_line`: then the call is counted by
        # whoever counts those lines, the follower, not here).
        pending = {i: v for i, v in pending.items() if not self.ended(i, v[2])}
        base.add(totals)
        if flt.empty:
            self._counted = (result.generation, end_line, replace(base), pending)
        else:
            lines = with_pending(lines, pending)
        base.add_unfinished(pending)
        result.lines = lines
        result.totals = base
        result.covered = end_line
        progress(1.0)
        return result

    def totals(
        self,
        progress: Progress = no_progress,
        cancelled: Cancelled = never,
        end_line: int | None = None,
    ) -> Totals:
        """Calls and tokens of the whole file (or its first `end_line` lines).
        The last count is kept: counted again (the filter cleared, lines
        appended since), only the lines after it are read."""
        return self.filter(TrafficFilter(), progress, cancelled, end_line).totals
