"""Calls and tokens over a set of records (`Totals`), and the C-speed ways
a scan adds them up: a whole chunk of records in three regex passes
(`chunk_totals`), or the headers of a chunk's matching lines joined into
one buffer (`lines_totals`). Each agrees with `Totals.add_line`, line by
line, whatever the values (`tests/audit/test_traffic_ranges.py`)."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass

from cftui.audit.traffic.fields import field_of, is_start, parse_ok, top_limit
from cftui.audit.traffic.lineio import newlines_in
from cftui.audit.traffic.pairing import Pending, halves


@dataclass
class Totals:
    """Calls and tokens over a set of records. An unfinished call (a start
    line with no end) is a call and a failure, and its estimate
    (`tokens_est`, what the proxy's budget charges it) is in `tokens`."""

    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    errors: int = 0
    unfinished: int = 0
    tokens_est: int = 0

    def add_line(self, line: bytes) -> None:
        """Count one whole-call line (a start line is not one: skipped)."""
        if is_start(line):
            return
        self.calls += 1
        limit = top_limit(line)
        tin = field_of(line, "tokens_in", limit)
        tout = field_of(line, "tokens_out", limit)
        self.tokens_in += tin if isinstance(tin, int) else 0
        self.tokens_out += tout if isinstance(tout, int) else 0
        status = field_of(line, "status", limit)
        if not isinstance(status, int) or status >= 400 or status == 0:
            self.errors += 1

    def add(self, other: Totals) -> None:
        self.calls += other.calls
        self.tokens_in += other.tokens_in
        self.tokens_out += other.tokens_out
        self.errors += other.errors
        self.unfinished += other.unfinished
        self.tokens_est += other.tokens_est

    def add_unfinished(self, pending: Pending) -> None:
        """Count the calls still open at the end of a pass."""
        self.add_open([est for _line, est, _end in pending.values()])

    def add_open(self, estimates: Collection[int]) -> None:
        """Count calls still open, from their `tokens_est`."""
        self.calls += len(estimates)
        self.errors += len(estimates)
        self.unfinished += len(estimates)
        self.tokens_est += sum(estimates)

    @property
    def tokens(self) -> int:
        return self.tokens_in + self.tokens_out + self.tokens_est


# Each pattern starts with a literal that is rare in a record (re's search
# skips to it), and a lookbehind then checks the whole key: ~4x faster than
# starting at the key's quote, a byte JSON is full of.
_TOKENS_IN = re.compile(rb'_in(?<="tokens_in)": ?(\d+)')
_TOKENS_OUT = re.compile(rb'_out(?<="tokens_out)": ?(\d+)')
_STATUS = re.compile(rb'tus(?<="status)": ?(\d+)')


# Any value of a key (up to the next `,`, `}` or space), for whole chunks:
# n matches in n lines prove each line holds each key once (a key is
# matched where it stands, keys do not overlap).
_TOKENS_IN_ANY = re.compile(rb'_in(?<="tokens_in)": ?([^,}\s]*)')
_TOKENS_OUT_ANY = re.compile(rb'_out(?<="tokens_out)": ?([^,}\s]*)')
_STATUS_ANY = re.compile(rb'tus(?<="status)": ?([^,}\s]*)')
# A line that does not start like a record, or (the newline not after "}")
# the line before it does not end like one: a line torn after the keys
# summed would otherwise pass for a call. One literal-prefix scan for both.
_NOT_A_RECORD = re.compile(rb"\n(?:(?!\{)|(?<!\}\n))")


def _json_int(raw: bytes) -> int | None:
    """A scalar as `Totals.add_line` reads it: its value if an int, else None."""
    if raw.isdigit():
        return int(raw)
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, int) else None


def _sum_ints(values: list[bytes]) -> int:
    """The sum of the int values (anything else counts 0, as in `add_line`):
    plain digits are summed by C iterators, the rest (rare) one by one."""
    digits = list(filter(bytes.isdigit, values))
    total = sum(map(int, digits))
    if len(digits) < len(values):
        total += sum(_json_int(raw) or 0 for raw in values if not raw.isdigit())
    return total


def _errors(statuses: list[bytes]) -> int:
    """How many of these statuses are failures (not an int, 0 = no answer,
    or 400+); counted per distinct value (a few) rather than per record."""
    failed = 0
    for raw, k in Counter(statuses).items():
        status = _json_int(raw)
        if status is None or status >= 400 or status == 0:
            failed += k
    return failed


def chunk_totals(chunk: bytes, totals: Totals) -> tuple[int, tuple[list[bytes], set[bytes]] | None]:
    """Add a chunk of whole lines to `totals`; returns its line count and
    its `halves` (None when it has none), whose starts are not calls: they hold status
    0 and no tokens (each key once, as the proxy writes them), so the sums
    stand and only calls and errors are corrected; a chunk with no status 0
    holds none, and is not searched for them.

    When every line starts like a record and holds each key exactly once
    (our writer's records), the sums come from three C-speed regex passes
    over the chunk; otherwise (a body that repeats a key, a torn line) each
    line is read on its own."""
    n = newlines_in(chunk, 0, len(chunk))
    if (
        chunk.startswith(b"{")
        and chunk.endswith(b"}\n")
        and _NOT_A_RECORD.search(chunk, 0, len(chunk) - 1) is None
    ):
        tin = _TOKENS_IN_ANY.findall(chunk)
        tout = _TOKENS_OUT_ANY.findall(chunk) if len(tin) == n else ()
        status = _STATUS_ANY.findall(chunk) if len(tout) == n else ()
        if len(status) == n:
            found = halves(chunk) if b"0" in status else None
            starts = len(found[0]) if found else 0
            totals.calls += n - starts
            totals.tokens_in += _sum_ints(tin)
            totals.tokens_out += _sum_ints(tout)
            totals.errors += _errors(status) - starts
            return n, found
    start = 0
    while start < len(chunk):
        end = chunk.find(b"\n", start)
        line = chunk[start:end]
        if parse_ok(line):
            totals.add_line(line)  # skips start lines
        start = end + 1
    return n, (halves(chunk) if b'"phase":"start"' in chunk else None)


def lines_totals(heads: list[bytes], chunk: bytes, starts: list[int], totals: Totals) -> None:
    """Add matching lines to `totals`, from their top-level headers joined
    into one buffer (three C-level regex passes over a few hundred bytes a
    line); a line whose header lacks a key (it comes after a body) is read
    on its own."""
    n = len(heads)
    if not n:
        return
    joined = b"\n".join(heads)
    # A header holds each key at most once (the top level of one record), so
    # n integer matches of each mean every line has all three.
    tin = _TOKENS_IN.findall(joined)
    tout = _TOKENS_OUT.findall(joined)
    status = _STATUS.findall(joined)
    if len(tin) == len(tout) == len(status) == n:
        totals.calls += n
        totals.tokens_in += sum(map(int, tin))
        totals.tokens_out += sum(map(int, tout))
        totals.errors += _errors(status)
        return
    for start in starts:
        totals.add_line(chunk[start : chunk.find(b"\n", start)])
