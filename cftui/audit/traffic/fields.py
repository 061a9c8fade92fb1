"""A record's top-level scalars read from its line without parsing the
bodies: a few `find`s before the first nested value, where every key is a
top-level one. The filter, the totals and the daily counter read fields
this way; a line the fast path cannot be sure of is parsed whole."""

from __future__ import annotations

import json
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
