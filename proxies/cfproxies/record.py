"""The `traffic.jsonl` record (CONTRACTS §3): the keys every record carries,
how a record is started and how provider usage is normalised into it, how
every field is scrubbed before it is written, and the one parser every reader
uses (a torn or malformed line is `None`, never an exception).

A call may take two lines, sharing its `id` (both carry every required key):
- a *start* line, `"phase": "start"`, written before the request goes
  upstream: status 0, no usage, and `tokens_est`, what the call may cost
  (`estimate_tokens`), so a proxy that dies mid-call still leaves the call
  visible and charged;
- the *end* line, `"phase": "end"`, the whole record, written once the
  call is over. A call refused before it went upstream has only this line.
Both lines begin `{"v":1,"phase":"...","id":"...` (the writer keeps these keys
first and compact), which is how readers pair them without a parse
(`line_phase`). A line without `phase` (written before it existed) is a
whole call. A start with no end is a call that never finished.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

from cfproxies.jsoncodec import orjson_line

SCHEMA_VERSION = 1
START = "start"
END = "end"
# Every line of the proxy begins with one of these (then the 32 hex digits of its id).
START_PREFIX = b'{"v":1,"phase":"start","id":"'
END_PREFIX = b'{"v":1,"phase":"end","id":"'
ID_LEN = 32

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
    """A record with every required key at its "nothing happened yet" value
    (`v`, `phase`, `id` first: see the module's docstring)."""
    return {
        "v": SCHEMA_VERSION,
        "phase": END,
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


def line_phase(line: bytes) -> tuple[str, bytes] | None:
    """(`start` or `end`, id) of a line the proxy wrote as one half of a
    call; None for anything else (an old whole-call line, a torn one)."""
    if line.startswith(START_PREFIX):
        phase, at = START, len(START_PREFIX)
    elif line.startswith(END_PREFIX):
        phase, at = END, len(END_PREFIX)
    else:
        return None
    ident = line[at : at + ID_LEN]
    if len(ident) != ID_LEN or line[at + ID_LEN : at + ID_LEN + 1] != b'"':
        return None
    if ident.strip(b"0123456789abcdef"):  # the proxy's ids are lowercase hex
        return None
    return phase, ident


# Keys a start line keeps of its record: everything known before the upstream answers.
_START_KEYS = frozenset(REQUIRED_KEYS) | {"phase", "tokens_est", "cost_est_usd"}
DEFAULT_MAX_OUTPUT = 4096  # tokens an unfinished call is charged when it asked no limit
BYTES_PER_TOKEN = 4  # the usual rule of thumb for a prompt's size in tokens
_MAX_KEYS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


def estimate_split(body: Any, req_bytes: int) -> tuple[int, int]:
    """`estimate_tokens` in its two parts: (prompt, output) tokens, which a
    price charges at different rates (the money budget's reservation)."""
    asked = 0
    if isinstance(body, dict):
        for key in _MAX_KEYS:
            if key in body:
                asked = max(asked, token_count(body[key]))
        config = body.get("generationConfig")
        if isinstance(config, dict):
            asked = max(asked, token_count(config.get("maxOutputTokens")))
    return max(req_bytes, 0) // BYTES_PER_TOKEN, asked or DEFAULT_MAX_OUTPUT


def estimate_tokens(body: Any, req_bytes: int) -> int:
    """What an unfinished call is charged (the budget and the reader's totals
    both use this number, written in its start line as `tokens_est`): the
    output limit it asked for (`max_tokens`, `max_completion_tokens`,
    `max_output_tokens`, Gemini's `generationConfig.maxOutputTokens`;
    DEFAULT_MAX_OUTPUT if none) plus its prompt estimated from the request
    size (BYTES_PER_TOKEN bytes a token). Deliberately high: a call whose
    end was lost is charged at most what it could have cost, not nothing."""
    prompt, output = estimate_split(body, req_bytes)
    return prompt + output


def start_line(record: dict[str, Any], tokens_est: int) -> dict[str, Any]:
    """The start line of a call, from its record as it stands before the
    upstream is asked (unscrubbed: `scrub_record` it like the end)."""
    if record.keys() <= _START_KEYS:  # the proxy's own record, at the start: all of it
        line = record.copy()
    else:
        line = {k: v for k, v in record.items() if k in _START_KEYS}
    line["phase"] = START
    # Nothing has happened yet, whatever the record says: readers count a
    # start line's keys as zeros without reading them.
    line.update(status=0, tokens_in=0, tokens_out=0, cache_read=0, cache_write=0)
    line["request"] = line["response"] = None
    line["tokens_est"] = tokens_est
    return line


# Keys the proxy itself fills with its own values; every other string in a
# record may come from the agent or the upstream and is scrubbed.
_TRUSTED = frozenset({"v", "phase", "id", "ts", "bot"})
_TEXTUAL = (str, dict, list)  # a tuple: isinstance with a union is several times slower


def scrub_record(record: dict[str, Any], scrubber: Any, raws: dict[str, bytes | None]) -> None:
    """Scrub every field of a record in place, the one place that does:
    the bodies (with the raw text they came from, which lets a clean one
    skip the walk) and every other value (model, model_resp, usage_raw,
    ids, path, error, provider...). Fails closed: if the scrubber breaks,
    every field it did not finish is dropped, never written as it was."""
    try:
        count = 0
        for key in ("request", "response"):
            if record.get(key) is not None:
                record[key], n = scrubber.scrub(record[key], raws.get(key))
                count += n
        rest = {
            k: v
            for k, v in record.items()
            if k not in _TRUSTED and k not in ("request", "response") and isinstance(v, _TEXTUAL)
        }
        if rest:
            # The JSON text of these few fields lets a clean record (most)
            # skip the walk: one scan of a few hundred bytes. (Not
            # dumps_line's fallback, which would hide a value nested too
            # deep for it: json.dumps raises, and the record fails closed.)
            raw = orjson_line(rest) or json.dumps(rest, ensure_ascii=False, default=str).encode()
            clean, n = scrubber.scrub(rest, raw)
            if clean is not rest:
                record.update(clean)
            count += n
        record["scrubbed"] = count
    except Exception as exc:  # never let a scrub bug write secrets or lose the call
        for key, value in list(record.items()):
            if key not in _TRUSTED and isinstance(value, _TEXTUAL):
                record[key] = None
        record["path"] = record["provider"] = record["method"] = ""
        record["scrub_error"] = type(exc).__name__


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


def token_count(value: Any) -> int:
    """A token count from untrusted JSON: non-numbers count as 0."""
    if type(value) is int:  # nearly always; not a bool, which is a subclass
        return value if value > 0 else 0
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    if isinstance(value, float) and not math.isfinite(value):
        return 0  # JSON's 1e999 or NaN (found by tests/fuzz): int() would raise
    return max(int(value), 0)


def _sub(usage: dict[str, Any], key: str, inner: str) -> int:
    details = usage.get(key)
    return token_count(details.get(inner)) if isinstance(details, dict) else 0


def usage_anthropic(usage: dict[str, Any]) -> Usage:
    """Anthropic Messages: `input_tokens` excludes the cache counts."""
    read = token_count(usage.get("cache_read_input_tokens"))
    write = token_count(usage.get("cache_creation_input_tokens"))
    return Usage(
        tokens_in=token_count(usage.get("input_tokens")) + read + write,
        tokens_out=token_count(usage.get("output_tokens")),
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
            tokens_in=token_count(usage.get("input_tokens")),
            tokens_out=token_count(usage.get("output_tokens")),
            cache_read=_sub(usage, "input_tokens_details", "cached_tokens"),
            tokens_reasoning=_sub(usage, "output_tokens_details", "reasoning_tokens"),
            raw=usage,
        )
    return Usage(
        tokens_in=token_count(usage.get("prompt_tokens")),
        tokens_out=token_count(usage.get("completion_tokens")),
        cache_read=_sub(usage, "prompt_tokens_details", "cached_tokens"),
        cache_write=token_count(usage.get("cache_write_tokens")),
        tokens_reasoning=_sub(usage, "completion_tokens_details", "reasoning_tokens"),
        raw=usage,
    )


def usage_gemini(meta: dict[str, Any]) -> Usage:
    """Gemini `usageMetadata`: `candidatesTokenCount` leaves out the thoughts,
    which `tokens_out` counts."""
    thoughts = token_count(meta.get("thoughtsTokenCount"))
    return Usage(
        tokens_in=token_count(meta.get("promptTokenCount")),
        tokens_out=token_count(meta.get("candidatesTokenCount")) + thoughts,
        cache_read=token_count(meta.get("cachedContentTokenCount")),
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
