"""Calls, tokens and cost over a set of records (`Totals`), and the C-speed
ways a scan adds them up: a whole chunk of records in three regex passes
(`chunk_totals`), or the headers of a chunk's matching lines joined into
one buffer (`lines_totals`); the cost is read only on the lines that hold
its key (`chunk_cost`: none in a log older than costs). Each agrees with
`Totals.add_line`, line by line, whatever the values
(`tests/audit/test_traffic_ranges.py`, `tests/audit/test_traffic_cost.py`)."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass

from cftui.audit.traffic.fields import (
    COST_KEY,
    PICO,
    UNSURE,
    field_of,
    is_start,
    line_cost,
    parse_ok,
    raw_cost_pico,
    tail_cost,
    top_limit,
)
from cftui.audit.traffic.lineio import newlines_in
from cftui.audit.traffic.pairing import Pending, halves


@dataclass
class Totals:
    """Calls, tokens and cost over a set of records. An unfinished call (a
    start line with no end) is a call and a failure, and its estimate
    (`tokens_est`, what the proxy's budget charges it) is in `tokens`.

    Cost: `priced` calls carried a price (`cost_usd` a number), summed in
    whole picodollars (`cost_pico`: integers, so a sum is the same however
    the file was cut); every other call (null `cost_usd`, a record older
    than costs, an unfinished call) is `unpriced`, counted apart and never
    taken for free."""

    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    errors: int = 0
    unfinished: int = 0
    tokens_est: int = 0
    priced: int = 0
    cost_pico: int = 0

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
        cost = line_cost(line, limit)
        if cost is not None:
            self.priced += 1
            self.cost_pico += cost

    def add(self, other: Totals) -> None:
        self.calls += other.calls
        self.tokens_in += other.tokens_in
        self.tokens_out += other.tokens_out
        self.errors += other.errors
        self.unfinished += other.unfinished
        self.tokens_est += other.tokens_est
        self.priced += other.priced
        self.cost_pico += other.cost_pico

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

    @property
    def cost_usd(self) -> float:
        """What the priced calls cost (the unpriced ones are not in it)."""
        return self.cost_pico / PICO

    @property
    def unpriced(self) -> int:
        """Calls with no price: their cost is unknown, not zero."""
        return self.calls - self.priced


# Each pattern starts with a literal that is rare in a record (re's search
# skips to it), and a lookbehind then checks the whole key: ~4x faster than
# starting at the key's quote, a byte JSON is full of.
_TOKENS_IN = re.compile(rb'_in(?<="tokens_in)": ?(\d+)')
_TOKENS_OUT = re.compile(rb'_out(?<="tokens_out)": ?(\d+)')
_STATUS = re.compile(rb'tus(?<="status)": ?(\d+)')
_COST_ANY = re.compile(rb'_usd(?<="cost_usd)" ?: ?([^,}\s]*)')


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
        tout: list[bytes] = _TOKENS_OUT_ANY.findall(chunk) if len(tin) == n else []
        status: list[bytes] = _STATUS_ANY.findall(chunk) if len(tout) == n else []
        if len(status) == n:
            found = halves(chunk) if b"0" in status else None
            starts = len(found[0]) if found else 0
            totals.calls += n - starts
            totals.tokens_in += _sum_ints(tin)
            totals.tokens_out += _sum_ints(tout)
            totals.errors += _errors(status) - starts
            chunk_cost(chunk, totals)
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
        if COST_KEY in joined:  # in the headers, where our writer puts it
            for head, start in zip(heads, starts, strict=True):
                m = _COST_ANY.search(head)
                cost = raw_cost_pico(m.group(1)) if m else _after_head(chunk, start, len(head))
                _add_cost(totals, cost)
        elif chunk.find(COST_KEY) >= 0:  # after a body, or in one: read those lines
            for head, start in zip(heads, starts, strict=True):
                _add_cost(totals, _after_head(chunk, start, len(head)))
        return
    for start in starts:
        totals.add_line(chunk[start : chunk.find(b"\n", start)])


def _add_cost(totals: Totals, cost: int | None) -> None:
    if cost is not None:
        totals.priced += 1
        totals.cost_pico += cost


def _after_head(chunk: bytes, start: int, head_len: int) -> int | None:
    """The cost of the line at `start` whose header (`head_len` bytes) holds
    no `cost_usd`: None unless the key is further on (then the line is read)."""
    end = chunk.find(b"\n", start)
    if end < 0:
        end = len(chunk)
    if chunk.find(COST_KEY, start + head_len, end) < 0:
        return None
    return line_cost(chunk[start:end])


def chunk_cost(chunk: bytes, totals: Totals) -> None:
    """Add the cost of a chunk of whole record lines to `totals` (what
    `add_line` would add, line by line): one C-level search for the key,
    which a log older than costs never holds; each line that holds it is
    read once: from its header when the key stands there (above the first
    nested value, so it is the record's own), else parsed whole (the key
    after a body, or only inside one: a body may carry any key). Start
    lines are not calls and cost nothing."""
    if COST_KEY not in chunk:
        return
    done = -1  # where the last line read ends
    for m in _COST_ANY.finditer(chunk):
        at = m.start()
        if at < done:
            continue  # a second match in a line already read
        ls = chunk.rfind(b"\n", 0, at) + 1
        le = chunk.find(b"\n", at)
        if le < 0:
            le = len(chunk)
        done = le
        if chunk.startswith(b'{"v":1,"phase":"start"', ls) and is_start(chunk[ls:le]):
            continue
        brace = chunk.find(b"{", ls + 1, at)
        bracket = chunk.find(b"[", ls + 1, at)
        if brace < 0 and bracket < 0:  # in the header: the record's own key
            _add_cost(totals, raw_cost_pico(m.group(1)))
            continue
        # After a body: the line's last one, where the proxy writes it, read
        # in place when provably the record's own; else the line is parsed.
        tail = tail_cost(chunk, chunk.rfind(COST_KEY, at, le), le)
        if tail is UNSURE:
            _add_cost(totals, line_cost(chunk[ls:le]))
        else:
            _add_cost(totals, tail)  # type: ignore[arg-type]  # int or None
