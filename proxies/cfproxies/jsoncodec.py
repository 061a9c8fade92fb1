"""JSON on the proxy's hot path: orjson where installed (several times faster
for the bodies and the record line), the standard library otherwise and
whenever orjson refuses a value (integers past 64 bits, NaN, lone surrogates,
nesting past 255 levels)."""

from __future__ import annotations

import json
from typing import Any

from cfproxies.jsonl import encode_line

try:
    import orjson
except ImportError:  # pragma: no cover - the llm extra installs it
    orjson = None


def loads(raw: bytes) -> Any:
    """Parse JSON; raises ValueError (or UnicodeDecodeError) like json.loads."""
    if orjson is not None:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # json.loads accepts a little more (NaN); let it decide
    try:
        return json.loads(raw)
    except RecursionError:  # nested past orjson's 1024 levels (found by tests/fuzz)
        raise ValueError("JSON nested too deep") from None


def orjson_line(value: Any) -> bytes | None:
    """`dumps_line`'s line when orjson writes it; None when orjson is missing
    or refuses the value (the caller then takes the slower path)."""
    if orjson is None:
        return None
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        return None


def dumps_line(value: Any) -> bytes:
    """One compact UTF-8 JSON line ending in a newline."""
    return orjson_line(value) or encode_line(value)
