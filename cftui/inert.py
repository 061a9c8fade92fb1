"""Agent text made inert for a terminal: one helper every print site uses.

Anything the agent wrote (a model name, a log line, a URL the egress saw, a
file name under `state/`) may carry a newline that forges an output line,
a CSI or OSC sequence that moves the cursor, retitles the window or writes
the clipboard, a C1 control that 8-bit terminals obey, or a bidi override
that shows the operator text in another order than it is. `inert()` shows
each such character visibly (`\\n`, `\\x1b`, `\\u202e`) and leaves every
other character alone. `inert_json()` does the same inside JSON output,
where the escapes are JSON's own, so the output still parses to the same
value.

No Textual or Rich import: the CLI and `cftui --run` use it too.
"""

from __future__ import annotations

import json
import unicodedata
from functools import lru_cache
from typing import Any

# Cc: C0, DEL, C1. Cf: bidi embeddings/overrides/isolates, zero-width
# characters, soft hyphen, BOM, tags. Cs: lone surrogates (which would also
# make the write to a UTF-8 stream raise). Zl/Zp: U+2028/U+2029, which some
# line splitters (Python's splitlines among them) take for newlines.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


@lru_cache(maxsize=4096)
def _escape_char(ch: str) -> str:
    """The visible form of one character, or the character if it is safe."""
    if unicodedata.category(ch) not in _UNSAFE_CATEGORIES:
        return ch
    if ch in _SHORT:
        return _SHORT[ch]
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def inert(value: object, *, multiline: bool = False) -> str:
    """`str(value)` with every control, format or separator character shown
    as a visible escape. With `multiline`, `\\n` stays a newline (for panes
    that show a whole body, where a line of its own forges nothing)."""
    text = value if isinstance(value, str) else str(value)
    # Fast path: isprintable() is False for every unsafe category (and for a
    # few harmless ones, such as no-break space, handled below).
    if text.isprintable():
        return text
    if multiline:
        return "\n".join(inert(part) for part in text.split("\n"))
    return "".join(map(_escape_char, text))


def _json_escape(ch: str) -> str:
    escaped = _escape_char(ch)
    if escaped == ch:
        return ch
    code = ord(ch)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # a UTF-16 surrogate pair, the only JSON form above the BMP
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def inert_json_text(text: str) -> str:
    """Serialized JSON with the unsafe characters JSON leaves raw (DEL, C1,
    bidi, separators, surrogates) turned into `\\uXXXX` escapes. They can
    only occur inside strings, so the value parsed back is unchanged."""
    if text.isprintable():
        return text
    return "".join(ch if ch == "\n" else _json_escape(ch) for ch in text)


def inert_json(value: Any, **dumps_kwargs: Any) -> str:
    """`json.dumps(value, ensure_ascii=False, ...)`, safe for a terminal."""
    dumps_kwargs.setdefault("ensure_ascii", False)
    return inert_json_text(json.dumps(value, **dumps_kwargs))
