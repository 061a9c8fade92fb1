"""The `traffic.jsonl` record (CONTRACTS §3): the keys every record carries
and the one parser every reader uses (a torn or malformed line is `None`,
never an exception)."""

from __future__ import annotations

import json
from typing import Any

SCHEMA_VERSION = 1

REQUIRED_KEYS = (
    "v",
    "id",
    "ts",
    "bot",
    "provider",
    "method",
    "path",
    "model",
    "status",
    "stream",
    "ttfb_ms",
    "duration_ms",
    "tokens_in",
    "tokens_out",
    "cache_read",
    "cache_write",
    "req_bytes",
    "resp_bytes",
    "request",
    "response",
    "error",
)


def parse_record_line(raw: bytes | str) -> dict[str, Any] | None:
    """One line of traffic.jsonl as a dict, or None if torn or not a record."""
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(value, dict) or not isinstance(value.get("v"), int):
        return None
    return value
