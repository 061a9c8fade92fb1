"""THE reader of `traffic.jsonl` (CONTRACTS §3), for the TUI, `cftui traffic`
and `cftui --run`.

Toolong's way, improved: the file is never loaded whole. A line-offset index
(`array('q')`, 8 bytes a line) is built from the END of the file with
`pread` blocks (no mmap, so resident memory stays flat), so the
newest calls are known first; a line is read with `os.pread` only when it is
shown; raw lines and parsed records sit in small LRU caches. A follower polls
the open file for appends and notices truncation and rotation (inode change),
which Toolong does not. Filters and totals scan the file in chunks with
one C-level search each and touch only the lines that can match; a big file
is cut into byte ranges scanned by worker processes, and this process only
merges their results (a 1 GB log: ~0.03 s of its CPU; `TrafficLog.filter`).

A call may take two lines (see `cfproxies.record`): a start line written
before the request went upstream and the end line (the whole record), with
the same `id`. Every view and total pairs them: a call counts once, as its
end line; a start line whose end is in the file is hidden (`record` is None
for it, `is_hidden` says so, and it is not malformed); a start line with no
end is a call that never finished (its proxy died, or it is still running),
shown once as a record marked `"unfinished": true` and counted in the
totals as a call, a failure, and its `tokens_est`. Pairing costs two
literal-prefixed regex passes over a chunk that holds start lines (none over
an older log) and a few set operations; only the starts a chunk leaves open
are looked at one by one. Following (`poll`, `matches_line`, `add_line`)
skips start lines: a live call shows when it ends.

No Textual here: the TUI drives these blocking calls from thread workers.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from array import array
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from itertools import accumulate, repeat
from operator import add
from pathlib import Path
from typing import Any

import regex
from cfproxies.record import (
    END_PREFIX,
    ID_LEN,
    START,
    START_PREFIX,
    line_phase,
    parse_record_line,
    token_count,
)

from cftui.audit import rangescan

CHUNK = 1 << 20  # filter / totals read size: small enough to stay in the CPU cache
RANGE = 32 << 20  # a worker's task: ~30 ms, so a new filter cancels the old one quickly
PARALLEL_MIN = 16 << 20  # smaller files are filtered here: a worker's start costs more
SCAN_BLOCK = 1 << 20  # index read size (pread, not mmap: RSS stays flat)
FOLLOW_READ = 1 << 20  # follower read size
POLL_INTERVAL_S = 0.05  # the follower's idle sleep: appends show in ≤ 250 ms
PROGRESS_EVERY_S = 0.1

Progress = Callable[[float], None]
Cancelled = Callable[[], bool]


def _never() -> bool:
    return False


def _no_progress(_fraction: float) -> None:
    pass


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


# --- reading a record's top-level scalars without parsing the bodies ---------

_KEYS = {
    key: b'"' + key.encode() + b'":'
    for key in (
        "ts",
        "provider",
        "model",
        "status",
        "tokens_in",
        "tokens_out",
        "error",
        "tokens_est",
    )
}
_MISSING = object()
MISS = object()  # `TrafficLog.cached`: not read yet


def top_limit(line: bytes) -> int:
    """Where the first nested object or array of a record line starts: every
    key before it is a top-level key (a key inside a string is escaped)."""
    a = line.find(b"{", 1)
    b = line.find(b"[", 1)
    if a < 0:
        return b if b >= 0 else len(line)
    return a if b < 0 or a < b else b


def header_value(line: bytes, key: str, limit: int | None = None) -> Any:
    """A top-level scalar of a record line, read with a few `find`s and no
    parse of the bodies; `_MISSING` when the fast path cannot be sure (the
    key comes after a nested value, or a string holds escapes), and the
    caller parses the whole line."""
    if limit is None:
        limit = top_limit(line)
    i = line.find(_KEYS[key], 0, limit)
    if i < 0:
        return _MISSING
    j = i + len(_KEYS[key])
    while line[j : j + 1] == b" ":
        j += 1
    if line[j : j + 1] == b'"':
        k = line.find(b'"', j + 1)
        if k < 0 or line[j + 1 : k].find(b"\\") >= 0:
            return _MISSING
        return line[j + 1 : k].decode("utf-8", "replace")
    k = line.find(b",", j, limit)
    raw = line[j : k if k >= 0 else limit].strip().rstrip(b"}").strip()
    if raw.isdigit():
        return int(raw)
    if raw == b"null":
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return _MISSING


def field_of(line: bytes, key: str, limit: int | None = None) -> Any:
    """A top-level field of a record line: fast path, else a full parse."""
    value = header_value(line, key, limit)
    if value is _MISSING:
        record = parse_record_line(line)
        return None if record is None else record.get(key)
    return value


# --- filter ------------------------------------------------------------------


_STATUS_RE = re.compile(r"^(\d{3}|[1-5]xx|err|ok)$")


@dataclass(frozen=True)
class TrafficFilter:
    """Which calls to show: provider (exact), model (substring), status
    (`200`, `5xx`, `err` = 400 and up, `ok` = below 400) and free text
    (case-insensitive, anywhere in the line). Empty parts match everything."""

    provider: str | None = None
    model: str | None = None
    status: str | None = None
    text: str | None = None

    @classmethod
    def parse(cls, spec: str) -> TrafficFilter:
        """`provider:openai model:gpt status:5xx free words` → a filter.

        Raises ValueError (one line) on a bad status."""
        parts: dict[str, str] = {}
        words = []
        for word in spec.split():
            key, sep, value = word.partition(":")
            if sep and key in ("provider", "model", "status") and value:
                parts[key] = value
            else:
                words.append(word)
        status = parts.get("status")
        if status is not None and not _STATUS_RE.match(status.lower()):
            raise ValueError(f"bad status {status!r}: use e.g. 200, 5xx, err or ok")
        return cls(
            provider=parts.get("provider"),
            model=parts.get("model"),
            status=status.lower() if status else None,
            text=" ".join(words) or None,
        )

    def __str__(self) -> str:
        out = [f"{k}:{v}" for k in ("provider", "model", "status") if (v := getattr(self, k))]
        if self.text:
            out.append(self.text)
        return " ".join(out)

    @property
    def empty(self) -> bool:
        return not (self.provider or self.model or self.status or self.text)

    def _status_ok(self, status: Any) -> bool:
        if not self.status:
            return True
        if not isinstance(status, int):
            return False
        s = self.status
        if s == "err":
            return status >= 400 or status == 0
        if s == "ok":
            return 0 < status < 400
        if s.endswith("xx"):
            return status // 100 == int(s[0])
        return status == int(s)

    @cached_property
    def _needle_set(self) -> tuple[bytes, ...]:
        if not self.text:
            return ()
        low = self.text.lower()
        plain = low.encode()
        escaped = json.dumps(low)[1:-1].encode()  # how a writer with ensure_ascii stores it
        return (plain,) if plain == escaped else (plain, escaped)

    def _needles(self) -> tuple[bytes, ...]:
        return self._needle_set

    def matches_line(self, line: bytes, lowered: bytes | None = None) -> bool:
        """Whether a raw record line passes; torn/malformed lines never do,
        nor start lines (a call is shown by its end, or as unfinished by a
        whole-file pass)."""
        return not is_start(line) and self.match_head(line, lowered) >= 0

    def match_head(self, line: bytes, lowered: bytes | None = None) -> int:
        """`matches_line`, returning where the line's top-level header ends
        (see `top_limit`) when it passes, else -1: the filter's scan reuses
        it to add up the totals of the matching lines in one C-level pass."""
        if self.text:
            low = lowered if lowered is not None else line.lower()
            if not any(n in low for n in self._needle_set):
                return -1
        # The fast paths never prove the line is a whole record; check cheaply.
        if not line.startswith(b"{") or not line.rstrip().endswith(b"}"):
            return -1
        limit = top_limit(line)
        if self.provider is not None:
            value = field_of(line, "provider", limit)
            if value != self.provider:
                return -1
        if self.model is not None:
            value = field_of(line, "model", limit)
            if not isinstance(value, str) or self.model.lower() not in value.lower():
                return -1
        if self.status is not None and not self._status_ok(field_of(line, "status", limit)):
            return -1
        return limit

    def span_matcher(self) -> Callable[[bytes, int, int, bytes, int], bytes | None]:
        """`match(chunk, start, end, hay, at)`: the top-level header of the
        line chunk[start:end] if it passes, else None. `hay` is the chunk as
        the driver searched it (lowered for free text), `at` where the
        driver's needle was found (it proves the model when in the header).

        The filter's scan calls it for each candidate line, so it works on
        offsets and copies only the header (the bytes before the first `{`
        or `[`, where every key is a top-level one): exact byte needles
        accept the usual case in a few C calls; anything else goes the
        general way (`header_value`, or a full parse when a field is not
        plain or comes after a body)."""
        provider = self.provider
        pkeys = ()
        if provider is not None:
            value = json.dumps(provider, ensure_ascii=False).encode()
            pkeys = (b'"provider":' + value, b'"provider": ' + value)
        model = self.model.lower() if self.model else None
        needles = self._needle_set
        plain_status = self.status is not None
        model_proved = not self.text and not provider and model is not None
        model_proved = model_proved and _model_pattern(model or "") is not None

        def match(chunk: bytes, ls: int, le: int, hay: bytes, at: int) -> bytes | None:
            low = None
            if needles:
                low = hay[ls:le] if hay is not chunk else chunk[ls:le].lower()
                if not any(n in low for n in needles):
                    return None
            if not (chunk.startswith(b"{", ls) and chunk.endswith(b"}", ls, le)):
                line = chunk[ls:le]
                limit = self.match_head(line, low)
                return line[:limit] if limit >= 0 else None
            limit = chunk.find(b"{", ls + 1, le)
            if limit < 0:
                limit = le
            b = chunk.find(b"[", ls + 1, limit)
            if b >= 0:
                limit = b
            head = chunk[ls:limit]
            i = head.find(pkeys[0]) if pkeys else 0
            if i < 0:
                i = head.find(pkeys[1])
            if pkeys and (i <= 0 or head[i - 1] == 92):  # not found, or after a backslash
                value = header_value(head, "provider", len(head))
                if value is _MISSING:
                    value = field_of(chunk[ls:le], "provider")
                if value != provider:
                    return None
            if model is not None and not (model_proved and at < limit and chunk[at - 1] != 92):
                value = header_value(head, "model", len(head))
                if value is _MISSING:
                    value = field_of(chunk[ls:le], "model")
                if not isinstance(value, str) or model not in value.lower():
                    return None
            if plain_status:
                value = header_value(head, "status", len(head))
                if value is _MISSING:
                    value = field_of(chunk[ls:le], "status")
                if not self._status_ok(value):
                    return None
            return head

        return match

    def matches(self, record: dict[str, Any]) -> bool:
        """Whether a parsed record passes (used for single records)."""
        if self.text:
            low = json.dumps(record, ensure_ascii=False).lower().encode()
            if not any(n in low for n in self._needles()):
                return False
        if self.provider is not None and record.get("provider") != self.provider:
            return False
        if self.model is not None:
            model = record.get("model")
            if not isinstance(model, str) or self.model.lower() not in model.lower():
                return False
        return self._status_ok(record.get("status"))

    def driver(self) -> tuple[Callable[[bytes, int], int], bool] | None:
        """How a chunk scan finds candidate lines: a find function over the
        chunk (lowered or not) for the free text if any, else the provider's
        value, else the model. None: every line is a candidate."""
        if self.text:
            needles = self._needles()
            if len(needles) == 1:
                if needles[0] == needles[0].upper():  # no letters: no case to fold
                    return _finder(needles[0]), False
                # `regex` folds ASCII case while it searches (as bytes.lower
                # does), ~2x faster than lowering the chunk and then finding.
                return _regex_finder(regex.compile(regex.escape(needles[0]), regex.I)), False
            pattern = re.compile(b"|".join(re.escape(n) for n in needles))
            return _regex_finder(pattern), True
        if self.provider:
            # The value as a JSON writer stores it (quotes escaped; non-ASCII
            # as is or as \u escapes).
            forms = {json.dumps(self.provider, ensure_ascii=e).encode() for e in (False, True)}
            if len(forms) == 1:
                return _finder(forms.pop()), False
            return _regex_finder(re.compile(b"|".join(map(re.escape, sorted(forms))))), False
        if self.model:
            return _model_driver(self.model)
        if self.status:
            return _regex_finder(_STATUS_NEEDLES.get(self.status) or _status_needle(self)), False
        return None


_STATUS_NEEDLES = {
    "err": re.compile(rb'"status": ?(?:[45]\d\d|0)\b'),
    "ok": re.compile(rb'"status": ?[123]\d\d\b'),
}


def _status_needle(flt: TrafficFilter) -> re.Pattern[bytes]:
    s = flt.status or ""
    if s.endswith("xx"):
        return re.compile(rb'"status": ?' + s[0].encode() + rb"\d\d\b")
    return re.compile(rb'"status": ?' + s.encode() + rb"\b")


def _model_pattern(model: str) -> re.Pattern[bytes] | None:
    """A case-insensitive search for a `"model"` key whose string value
    holds `model`: one C-level pass instead of lowering the chunk. None when
    the needle is not plain ASCII (re's bytes IGNORECASE folds only ASCII).
    Known gap: a model value holding an escaped quote before the needle
    (`"a\\"gemini"`) is not found; model names do not hold quotes."""
    low = model.lower()
    if not low.isascii() or json.dumps(low)[1:-1] != low:
        return None
    return re.compile(rb'"model" ?: ?"[^"\n]*?' + re.escape(low.encode()), re.IGNORECASE)


def _model_driver(model: str) -> tuple[Callable[[bytes, int], int], bool]:
    pattern = _model_pattern(model)
    if pattern is None:  # rare: a non-ASCII needle, searched in the lowered chunk
        return _finder(model.lower().encode()), True
    return _regex_finder(pattern), False


def _finder(needle: bytes) -> Callable[[bytes, int], int]:
    def find(hay: bytes, start: int) -> int:
        return hay.find(needle, start)

    return find


def _regex_finder(pattern: re.Pattern[bytes]) -> Callable[[bytes, int], int]:
    def find(hay: bytes, start: int) -> int:
        m = pattern.search(hay, start)
        return m.start() if m else -1

    return find


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
        self.calls += len(pending)
        self.errors += len(pending)
        self.unfinished += len(pending)
        self.tokens_est += sum(est for _line, est, _end in pending.values())

    @property
    def tokens(self) -> int:
        return self.tokens_in + self.tokens_out + self.tokens_est


# --- pairing start lines with their ends ------------------------------------

# id -> (line number, tokens_est, file offset where the start line ends) of
# the start lines still waiting for their end
Pending = dict[bytes, tuple[int, int, int]]

# Start and end lines after a newline (a chunk's first line is checked on
# its own): each begins with a literal (re skips to it), and only the
# proxy's own line starts match (a body is never at the start of a line).
_HALF_IDS = re.compile(rb'\n\{"v":1,"phase":"(?:(s)tart|end)","id":"([0-9a-f]{32})"')
_HEAD = len(START_PREFIX) + ID_LEN + 1
TARGETED_MAX = 8  # more starts open than this: one pass for all ends, not a search each


def is_start(line: bytes) -> bool:
    """Whether a line is the start line of a call (see `cfproxies.record`)."""
    if not line.startswith(START_PREFIX):
        return False
    half = line_phase(line[:_HEAD])
    return half is not None and half[0] == START


def _start_id(line: bytes) -> bytes:
    return line[len(START_PREFIX) : len(START_PREFIX) + ID_LEN]


def halves(chunk: bytes) -> tuple[list[bytes], set[bytes]]:
    """The ids of a chunk's start lines (in order) and of its end lines, in
    one pass over the chunk."""
    found = _HALF_IDS.findall(chunk)
    starts = [ident for s, ident in found if s]
    ends = {ident for s, ident in found if not s}
    first = line_phase(chunk[:_HEAD])
    if first is not None:
        if first[0] == START:
            starts.insert(0, first[1])
        else:
            ends.add(first[1])
    return starts, ends


class Pairing:
    """The start lines of one pass over consecutive chunks (a range, or the
    lines since the last count) that the filter matched and whose end has
    not been seen yet. Old logs (no start lines) cost nothing here. A start
    is closed by a search for its own end line from where it stands (it is
    usually a few lines on) or, when many are open, by one pass over the
    chunk for all its end lines. Only the starts left open are numbered
    and read (a few a chunk). A start still open at the end of the pass is
    looked for further on by the caller (`end_after`)."""

    def __init__(self) -> None:
        self.pending: Pending = {}

    def feed(
        self,
        chunk: bytes,
        first_line: int,
        offset: int,
        lines: int,
        starts: list[tuple[bytes, int]] | list[bytes],
        ends: set[bytes] | None = None,
    ) -> None:
        """Open `starts` (ids, with where their line starts in `chunk` when
        known), then close every open start whose end line is in the chunk
        (`ends`, when the caller has them). `first_line`: the number of the
        chunk's first line, `lines` how many it has; `offset`: where it
        begins in the file."""
        pending = self.pending
        if not starts and not pending:
            return
        targeted = ends is None and len(starts) + len(pending) <= TARGETED_MAX
        if ends is None and not targeted:
            ends = halves(chunk)[1]
        if targeted:
            for ident in list(pending):
                if (
                    chunk.startswith(END_PREFIX + ident)
                    or chunk.find(b"\n" + END_PREFIX + ident) >= 0
                ):
                    del pending[ident]
        else:
            assert ends is not None
            for ident in ends.intersection(pending):
                del pending[ident]
        left = []
        for item in starts:
            ident, at = item if isinstance(item, tuple) else (item, -1)
            if not targeted and ident in ends:  # type: ignore[operator]
                continue  # (most: before any search for where it is)
            if at < 0:
                # From the end (0 if not after a newline: the first line):
                # a start left open is mostly one whose end is in the next chunk.
                at = 1 + chunk.rfind(b"\n" + START_PREFIX + ident)
            if targeted and chunk.find(b"\n" + END_PREFIX + ident, at) >= 0:
                continue
            left.append((at, ident))
        # Numbered from the chunk's end: the starts left open are mostly near it.
        number, counted = first_line + lines, len(chunk)
        for at, ident in sorted(left, reverse=True):
            number -= _newlines_in(chunk, at, counted)
            counted = at
            line_end = chunk.find(b"\n", at)
            est = field_of(chunk[at:line_end], "tokens_est")
            pending[ident] = (number, token_count(est), offset + line_end)


def _with_pending(found: array, pending: Pending) -> array:
    """The matching line numbers with the unfinished calls' start lines in place."""
    if not pending:
        return found
    return array("q", sorted([*found, *(number for number, _est, _end in pending.values())]))


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


def _chunk_totals(
    chunk: bytes, totals: Totals
) -> tuple[int, tuple[list[bytes], set[bytes]] | None]:
    """Add a chunk of whole lines to `totals`; returns its line count and
    its `halves` (None when it has none), whose starts are not calls: they hold status
    0 and no tokens (each key once, as the proxy writes them), so the sums
    stand and only calls and errors are corrected; a chunk with no status 0
    holds none, and is not searched for them.

    When every line starts like a record and holds each key exactly once
    (our writer's records), the sums come from three C-speed regex passes
    over the chunk; otherwise (a body that repeats a key, a torn line) each
    line is read on its own."""
    n = _newlines_in(chunk, 0, len(chunk))
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


def _lines_totals(heads: list[bytes], chunk: bytes, starts: list[int], totals: Totals) -> None:
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


@dataclass
class FilterResult:
    """Line indices (ascending) of the matching records, and their totals."""

    lines: array = field(default_factory=lambda: array("q"))
    totals: Totals = field(default_factory=Totals)
    cancelled: bool = False
    generation: int = 0
    covered: int = 0  # lines 0..covered-1 were looked at; later ones are appends


# --- the scan of a byte range (in this process or in a worker process) -------


def read_lines(fd: int, pos: int, stop: int) -> bytes:
    """Whole lines from `pos` (a line start): up to CHUNK bytes, never past
    `stop` (a line start too), cut after their last newline; a line longer
    than a chunk is read whole. Empty at `stop` or at the end of the file."""
    data = os.pread(fd, min(CHUNK, stop - pos), pos)
    cut = data.rfind(b"\n")
    if data and cut < 0:  # one line longer than a chunk: take it whole
        nl = _next_newline(fd, pos + len(data))
        data = os.pread(fd, nl + 1 - pos, pos)
        cut = len(data) - 1
    return data[: cut + 1]


def _next_newline(fd: int, pos: int) -> int:
    while True:
        data = os.pread(fd, 65536, pos)
        if not data:
            return pos - 1
        i = data.find(b"\n")
        if i >= 0:
            return pos + i
        pos += len(data)


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
    joined (`_lines_totals`)."""

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
            count, found = _chunk_totals(chunk, self.totals)
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
                matched.append((_start_id(head), ls))
            elif head is not None:
                number += _newlines_in(chunk, counted, ls)
                counted = ls
                add(number)
                heads.append(head)
                starts.append(ls)
            pos = find(hay, le + 1)
        self.line_count = number + _newlines_in(chunk, counted, len(chunk))
        _lines_totals(heads, chunk, starts, self.totals)
        self.pairing.feed(chunk, first_line, offset, self.line_count - first_line, matched)


def _newlines_in(data: bytes, start: int, end: int) -> int:
    """How many newlines data[start:end] holds. `bytes.count` tests each
    byte in a plain loop; deleting them with `replace` goes by `memchr`,
    ~3x faster even with the copy."""
    part = data[start:end] if start or end < len(data) else data
    return len(part) - len(part.replace(b"\n", b""))


# matching line numbers, totals of the whole calls among them, line count,
# the start lines the filter matched whose end is not in the range
RangeResult = tuple[array, Totals, int, Pending]


def scan_range(path: str, start: int, end: int, flt: TrafficFilter, ino: int) -> RangeResult | None:
    """`flt` over the whole lines in [start, end) of `path`: (numbers of the
    matching lines from the range's first line, their totals, the range's
    line count, its start lines left open: see `Pairing`). Runs in a worker process (`cftui.audit.rangescan`), which
    opens the file itself; None when the file at `path` is no longer the
    one indexed (inode `ino`, at least `end` bytes): rotated or truncated."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        st = os.fstat(fd)
        if st.st_ino != ino or st.st_size < end:
            return None
        scan = RangeScan(flt)
        pos = start
        while pos < end:
            data = read_lines(fd, pos, end)
            if not data:
                break
            scan.feed(data, pos)
            pos += len(data)
    finally:
        os.close(fd)
    return scan.lines, scan.totals, scan.line_count, scan.pairing.pending


def scan_ranges(
    path: Path | str,
    flt: TrafficFilter,
    ino: int,
    start: int,
    end: int,
    progress: Progress = _no_progress,
    cancelled: Cancelled = _never,
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


UNFINISHED = "unfinished: no end record (the proxy stopped mid-call, or the call still runs)"
_FIRST_WINDOW = 8192  # an end usually follows its start within a few lines
_MAX_WINDOW = 4 << 20


def unfinished(record: dict[str, Any]) -> dict[str, Any]:
    """A start line shown as the call it began, which never finished."""
    return {**record, "unfinished": True, "error": record.get("error") or UNFINISHED}


def end_after(fd: int, ident: bytes, pos: int) -> tuple[bool, int]:
    """Whether the end line of call `ident` starts after offset `pos` (a
    newline, or before one); and the file size searched to. Windows grow
    from a few KB (the usual case: the end is near) to a few MB."""
    needle = b"\n" + END_PREFIX + ident
    size = os.fstat(fd).st_size
    window = _FIRST_WINDOW
    while pos < size:
        data = os.pread(fd, min(window, size - pos), pos)
        if needle in data:
            return True, size
        if len(data) <= len(needle):
            break
        pos += len(data) - len(needle)  # a needle across two windows is found in the next
        window = min(window * 4, _MAX_WINDOW)
    return False, max(pos, 0)


# --- the log -----------------------------------------------------------------


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
            last = _last_newline_before(fd, st.st_size)
            self._fwd = array("q", [last])
            if last >= 0:
                self._rev = array("q", [last])
            else:
                self._rev = array("q")
                self._rev.append(-1)  # nothing before: the scan is trivially done
                self.scanned = True
            return True

    def scan(self, progress: Progress = _no_progress, cancelled: Cancelled = _never) -> bool:
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
                if self.ended(_start_id(line), span[1]):
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
        progress: Progress = _no_progress,
        cancelled: Cancelled = _never,
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
            start = self.span(first - 1)[1] + 1 if first else 0  # type: ignore[index]
        merged = scan_ranges(self.path, flt, ino, start, end, report, cancelled)
        changed = merged is None or merged[2] != end_line - first
        if changed or result.generation != self.generation or cancelled():
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
            lines = _with_pending(lines, pending)
        base.add_unfinished(pending)
        result.lines = lines
        result.totals = base
        result.covered = end_line
        progress(1.0)
        return result

    def totals(
        self,
        progress: Progress = _no_progress,
        cancelled: Cancelled = _never,
        end_line: int | None = None,
    ) -> Totals:
        """Calls and tokens of the whole file (or its first `end_line` lines).
        The last count is kept: counted again (the filter cleared, lines
        appended since), only the lines after it are read."""
        return self.filter(TrafficFilter(), progress, cancelled, end_line).totals


# --- helpers for the CLI, --run and the fleet view ---------------------------


def today_start(now: datetime | None = None) -> str:
    """Midnight UTC today as a record's `ts` prefix compares (RFC 3339)."""
    now = now or datetime.now(UTC)
    return now.strftime("%Y-%m-%dT00:00:00.000Z")


class DailyCounter:
    """Calls and tokens since midnight UTC for one traffic.jsonl, kept up to
    date incrementally (the fleet screen asks every few seconds).

    The first call finds where today starts from the end of the file, and
    adds up today's lines with the filter's totals (`scan_ranges`: worker
    processes for a big file); later calls read only what was appended.
    Threads may call it at once (the TUI restarts its refresh worker while
    one still runs): they take turns, so none re-reads the file from 0."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.day = ""
        self.totals = Totals()
        self._finished = Totals()  # today's whole calls; `totals` adds the open starts
        self._pending: Pending = {}
        self._ino = 0
        self._pos = 0
        self._lock = threading.Lock()

    def update(self, now: datetime | None = None) -> Totals:
        since = today_start(now)
        with self._lock:
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                self.totals, self._pos, self._ino = Totals(), 0, 0
                self._finished, self._pending = Totals(), {}
                return self.totals
            if since != self.day or st.st_ino != self._ino or st.st_size < self._pos:
                self.day, self._ino = since, st.st_ino
                self._finished, self._pending, self._pos = self._scan_back(since, st.st_size)
            elif st.st_size > self._pos:
                self._read_forward(since, st.st_size)
            self.totals = replace(self._finished)
            self.totals.add_unfinished(self._pending)
            return self.totals

    def _scan_back(self, since: str, size: int) -> tuple[Totals, Pending, int]:
        """Today's totals of whole calls, today's starts still open (keyed
        by id; the line number is not kept), and where the whole lines end
        (the torn tail is read next time)."""
        with open(self.path, "rb") as f:
            fd = f.fileno()
            ino = os.fstat(fd).st_ino
            end = _last_newline_before(fd, size) + 1
            start = _today_start(fd, since, end)
            merged = scan_ranges(self.path, TrafficFilter(), ino, start, end)
            if merged is None:  # replaced meanwhile: start over next time
                self._ino = 0
                return Totals(), {}, 0
            pending = {i: v for i, v in merged[3].items() if not end_after(fd, i, v[2])[0]}
        return merged[1], pending, end

    def _read_forward(self, since: str, size: int) -> None:
        with open(self.path, "rb") as f:
            fd = f.fileno()
            stop = _last_newline_before(fd, size) + 1  # the torn tail: next time
            while self._pos < stop:  # by chunks: a long gap never sits in memory whole
                data = read_lines(fd, self._pos, stop)
                if not data:
                    return
                for line in data[:-1].split(b"\n"):
                    half = line_phase(line[:_HEAD])
                    if half is not None and half[0] != START:  # an end closes its start
                        self._pending.pop(half[1], None)
                    ts = field_of(line, "ts") if line.strip() else None
                    if isinstance(ts, str) and ts >= since and parse_ok(line):
                        if half is not None and half[0] == START:
                            est = field_of(line, "tokens_est")
                            self._pending[half[1]] = (0, token_count(est), 0)
                        else:
                            self._finished.add_line(line)
                self._pos += len(data)


def _last_newline_before(fd: int, end: int) -> int:
    """The offset of the last newline before `end`, or -1."""
    pos = end
    while pos > 0:
        start = max(0, pos - 65536)
        i = os.pread(fd, pos - start, start).rfind(b"\n")
        if i >= 0:
            return start + i
        pos = start
    return -1


def _today_start(fd: int, since: str, end: int) -> int:
    """Where today's lines start in [0, end) (`end` ends a line). The log is
    in time order, so it is found from the end by blocks: a block whose
    first line is from today is today's whole, and only the block where
    yesterday ends is read line by line (the first line from the end older
    than `since` ends yesterday; a line without a time does not)."""
    pos = end  # a line start: [pos, end) is today's
    size = CHUNK
    while pos > 0:
        start = max(0, pos - size)
        data = os.pread(fd, pos - start, start)
        first = data.find(b"\n") + 1 if start else 0
        if first >= len(data):  # no line starts in the block: a long one, read more
            size *= 2
            continue
        size = CHUNK
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


def parse_ok(line: bytes) -> bool:
    """Cheap check that a line is a whole record (not torn)."""
    s = line.strip()
    return s.startswith(b"{") and s.endswith(b"}")


def format_call(record: dict[str, Any]) -> str:
    """One line per call, as `cftui traffic` and `cftui --run` print it."""
    ts = str(record.get("ts", ""))
    model = record.get("model") or "-"
    status = record.get("status")
    line = (
        f"{ts:<24}  {record.get('bot', '')!s:<12} {record.get('provider', '')!s:<10} "
        f"{model!s:<28} {status!s:>3}  in {record.get('tokens_in', 0)!s:>6}  "
        f"out {record.get('tokens_out', 0)!s:>6}  ttfb {_ms(record.get('ttfb_ms'))}  "
        f"{_ms(record.get('duration_ms'))}"
    )
    if record.get("error"):
        line += f"  error: {record['error']}"
    return line


def _ms(value: Any) -> str:
    return f"{value:>6.0f} ms" if isinstance(value, int | float) else "     - ms"
