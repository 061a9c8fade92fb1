"""A record's top-level scalars read from its line without parsing the
bodies: a few `find`s before the first nested value, where every key is a
top-level one. The filter, the totals and the daily counter read fields
this way; a line the fast path cannot be sure of is parsed whole."""

from __future__ import annotations

import json
import math
from typing import Any

from cfproxies.record import ID_LEN, START, START_PREFIX, line_phase, parse_record_line

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
        "cost_usd",
        "cost_status",
    )
}
UNSURE = object()  # `header_value`: the fast path cannot be sure; parse the line


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
    parse of the bodies; `UNSURE` when the fast path cannot be sure (the
    key comes after a nested value, or a string holds escapes), and the
    caller parses the whole line."""
    if limit is None:
        limit = top_limit(line)
    i = line.find(_KEYS[key], 0, limit)
    if i < 0:
        return UNSURE
    j = i + len(_KEYS[key])
    while line[j : j + 1] == b" ":
        j += 1
    if line[j : j + 1] == b'"':
        k = line.find(b'"', j + 1)
        if k < 0 or line[j + 1 : k].find(b"\\") >= 0:
            return UNSURE
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
        return UNSURE


def field_of(line: bytes, key: str, limit: int | None = None) -> Any:
    """A top-level field of a record line: fast path, else a full parse."""
    value = header_value(line, key, limit)
    if value is UNSURE:
        record = parse_record_line(line)
        return None if record is None else record.get(key)
    return value


COST_KEY = b'"cost_usd"'  # only a key is followed by `:`; absent, no key anywhere
PICO = 10**12  # costs are added up in whole picodollars: sums agree however cut
MAX_USD = 1e9  # more than this for one call is no price a provider charged


def cost_pico(value: Any) -> int | None:
    """A record's `cost_usd` as whole picodollars, or None when the call has
    no price: null, absent, or not a finite non-negative number (the file is
    read as hostile: a bool, a string or -1 is no price, never a credit)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        usd = float(value)
    except OverflowError:  # an int of 400 digits
        return None
    if not math.isfinite(usd) or not 0 <= usd <= MAX_USD:
        return None
    return round(usd * PICO)


def raw_cost_pico(raw: bytes) -> int | None:
    """`cost_pico` of a value's raw JSON bytes (`0.0012`, `null`, `1e-5`)."""
    try:
        value = float(raw)
    except ValueError:
        return None
    if raw[:1] not in b"0123456789":  # float() reads `nan`, `inf`, `-1`, ` 1`: JSON does not
        return None
    return cost_pico(value)


def line_cost(line: bytes, limit: int | None = None) -> int | None:
    """The cost of the call a whole record line holds, in picodollars (see
    `cost_pico`); None when unpriced, and for a line written before costs
    existed. Read in the header when the key is there, else in the tail
    (after the bodies, where the proxy adds it: `tail_cost`), else with a
    full parse, only when the line holds the key at all."""
    value = header_value(line, "cost_usd", limit)
    if value is UNSURE:
        at = line.rfind(COST_KEY)
        if at < 0:
            return None
        tail = tail_cost(line, at)
        if tail is not UNSURE:
            return tail  # type: ignore[return-value]  # int or None
        record = parse_record_line(line)
        value = None if record is None else record.get("cost_usd")
    return cost_pico(value)


def tail_cost(line: bytes, at: int, end: int | None = None) -> object:  # int | None | UNSURE
    """`cost_pico` of the `cost_usd` key at `at`, when it is provably the
    record's own: no `}` or `]` between it and the record's closing brace,
    so no nested value is still open there (a bracket inside a string only
    makes this unsure). `UNSURE` otherwise: the caller parses the line.
    `line` may be a whole chunk: then `end` is where the line ends."""
    if end is None:
        end = len(line.rstrip())
    close = end - 1
    if close <= at or line[close] != 0x7D:  # "}"
        return UNSURE
    if line.find(b"}", at, close) >= 0 or line.find(b"]", at, close) >= 0:
        return UNSURE
    j = at + len(COST_KEY)
    while line[j : j + 1] == b" ":
        j += 1
    if line[j : j + 1] != b":":
        return UNSURE
    k = line.find(b",", j, close)
    return raw_cost_pico(line[j + 1 : k if k >= 0 else close].strip())


def record_cost(record: dict[str, Any]) -> float | None:
    """A parsed record's cost in USD, None when unpriced: the rule of
    `line_cost`, for a view that already holds the record."""
    pico = cost_pico(record.get("cost_usd"))
    return None if pico is None else pico / PICO


HALF_HEAD = len(START_PREFIX) + ID_LEN + 1  # the bytes `line_phase` reads


def is_start(line: bytes) -> bool:
    """Whether a line is the start line of a call (see `cfproxies.record`)."""
    if not line.startswith(START_PREFIX):
        return False
    half = line_phase(line[:HALF_HEAD])
    return half is not None and half[0] == START


def start_id(line: bytes) -> bytes:
    return line[len(START_PREFIX) : len(START_PREFIX) + ID_LEN]


def parse_ok(line: bytes) -> bool:
    """Cheap check that a line is a whole record (not torn)."""
    s = line.strip()
    return s.startswith(b"{") and s.endswith(b"}")
