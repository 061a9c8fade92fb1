"""The `traffic.jsonl` record (CONTRACTS §3): the keys every record carries,
how a record is started and how provider usage is normalised into it, and the
one parser every reader uses (a torn or malformed line is `None`, never an
exception)."""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import dataclass, field
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
    except (ValueError, UnicodeDecodeError, RecursionError):  # deep nesting: tests/fuzz
        return None
    if not isinstance(value, dict) or not isinstance(value.get("v"), int):
        return None
    return value


_last_second: tuple[int, str] = (-1, "")  # the formatted second most recently asked for


def rfc3339_ms(epoch: float | None = None) -> str:
    """RFC 3339 UTC with milliseconds and a `Z`, as every log here writes.
    The proxy stamps thousands of records a second: the date and time part
    is formatted once per second, not once per call."""
    global _last_second
    epoch = time.time() if epoch is None else epoch
    whole = int(epoch)
    millis = int((epoch - whole) * 1000)
    second, text = _last_second
    if second != whole:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _last_second = (whole, text)
    return f"{text}.{millis:03d}Z"


# Record ids need to be unique, not secret: a generator seeded from the OS
# once gives 128 random bits without a system call per record.
_ids = random.Random(os.urandom(32))


def new_record(*, bot: str, provider: str, method: str, path: str, epoch: float) -> dict[str, Any]:
    """A record with every required key at its "nothing happened yet" value."""
    return {
        "v": SCHEMA_VERSION,
        "id": f"{_ids.getrandbits(128):032x}",
        "ts": rfc3339_ms(epoch),
        "bot": bot,
        "provider": provider,
        "method": method,
        "path": path,
        "model": None,
        "status": 0,
        "stream": False,
        "ttfb_ms": 0.0,
        "duration_ms": 0.0,
        "tokens_in": 0,
        "tokens_out": 0,
        "cache_read": 0,
        "cache_write": 0,
        "req_bytes": 0,
        "resp_bytes": 0,
        "request": None,
        "response": None,
        "error": None,
    }


# --- usage -------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    """Provider usage normalised as CONTRACTS §3 says: `tokens_in` counts every
    prompt token (cached ones included), `cache_*` are parts of it, and
    `tokens_out` includes reasoning tokens."""

    tokens_in: int = 0
    tokens_out: int = 0
    cache_read: int = 0
    cache_write: int = 0
    tokens_reasoning: int = 0
    raw: dict[str, Any] = field(default_factory=dict)

    def apply(self, record: dict[str, Any]) -> None:
        """Write these counts into a record (plus the raw usage, for audits)."""
        record["tokens_in"] = self.tokens_in
        record["tokens_out"] = self.tokens_out
        record["cache_read"] = self.cache_read
        record["cache_write"] = self.cache_write
        if self.tokens_reasoning:
            record["tokens_reasoning"] = self.tokens_reasoning
        record["usage_raw"] = self.raw


def _int(value: Any) -> int:
    """A token count from untrusted JSON: non-numbers count as 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    if isinstance(value, float) and not math.isfinite(value):
        return 0  # JSON's 1e999 or NaN (found by tests/fuzz): int() would raise
    return max(int(value), 0)


def _sub(usage: dict[str, Any], key: str, inner: str) -> int:
    details = usage.get(key)
    return _int(details.get(inner)) if isinstance(details, dict) else 0


def usage_anthropic(usage: dict[str, Any]) -> Usage:
    """Anthropic Messages: `input_tokens` excludes the cache counts."""
    read = _int(usage.get("cache_read_input_tokens"))
    write = _int(usage.get("cache_creation_input_tokens"))
    return Usage(
        tokens_in=_int(usage.get("input_tokens")) + read + write,
        tokens_out=_int(usage.get("output_tokens")),
        cache_read=read,
        cache_write=write,
        raw=usage,
    )


def usage_openai(usage: dict[str, Any]) -> Usage:
    """OpenAI Chat Completions (also OpenRouter) and the Responses API: the
    prompt count already includes cached tokens, the completion count already
    includes reasoning tokens."""
    if "prompt_tokens" not in usage and "input_tokens" in usage:  # Responses API
        return Usage(
            tokens_in=_int(usage.get("input_tokens")),
            tokens_out=_int(usage.get("output_tokens")),
            cache_read=_sub(usage, "input_tokens_details", "cached_tokens"),
            tokens_reasoning=_sub(usage, "output_tokens_details", "reasoning_tokens"),
            raw=usage,
        )
    return Usage(
        tokens_in=_int(usage.get("prompt_tokens")),
        tokens_out=_int(usage.get("completion_tokens")),
        cache_read=_sub(usage, "prompt_tokens_details", "cached_tokens"),
        cache_write=_int(usage.get("cache_write_tokens")),
        tokens_reasoning=_sub(usage, "completion_tokens_details", "reasoning_tokens"),
        raw=usage,
    )


def usage_gemini(meta: dict[str, Any]) -> Usage:
    """Gemini `usageMetadata`: `candidatesTokenCount` leaves out the thoughts,
    which `tokens_out` counts."""
    thoughts = _int(meta.get("thoughtsTokenCount"))
    return Usage(
        tokens_in=_int(meta.get("promptTokenCount")),
        tokens_out=_int(meta.get("candidatesTokenCount")) + thoughts,
        cache_read=_int(meta.get("cachedContentTokenCount")),
        tokens_reasoning=thoughts,
        raw=meta,
    )


# --- bodies ------------------------------------------------------------------


def body_for_record(raw: bytes, cap: int, parsed: Any = None) -> tuple[Any, bool]:
    """What a record stores for a body: the parsed JSON when it fits the cap,
    else its text cut at `cap` bytes; the flag says whether it was cut."""
    if len(raw) > cap:
        return raw[:cap].decode("utf-8", "replace"), True
    if parsed is not None:
        return parsed, False
    if not raw:
        return None, False
    try:
        return json.loads(raw), False
    except (ValueError, UnicodeDecodeError):
        return raw.decode("utf-8", "replace"), False
