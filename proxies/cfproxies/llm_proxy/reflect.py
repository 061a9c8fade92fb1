"""Keys never go back to the gateway: the exact key literals the proxy holds
(every value of `providers.env`, and the bot's own proxy token) are cut out
of every answer it relays, headers and body, streamed too.

An upstream that echoes its request (a debug endpoint, an error that quotes
the `x-api-key` it got, a fake provider's introspection) would otherwise hand
the agent the operator's key. Each literal is replaced by a marker of the
same length, so a Content-Length stays true. A stream is not delayed: each
chunk goes on at once, except a tail that is the start of some literal
(usually none), held back until the next chunk says whether the literal
completes, and flushed at the end.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from urllib.parse import quote

import ahocorasick_rs

MIN_LITERAL = 8  # shorter "keys" are not credentials (and would mangle ordinary text)
_MARK = b"[REDACTED]"


def _mask(length: int) -> bytes:
    if length >= len(_MARK):
        return _MARK + b"*" * (length - len(_MARK))
    return b"[REDACT]" + b"*" * (length - 8)


def _forms(secret: str) -> set[bytes]:
    """The spellings a key takes in an answer: as is, JSON-escaped, URL-encoded."""
    return {
        secret.encode(),
        json.dumps(secret)[1:-1].encode(),
        quote(secret, safe="").encode(),
    }


class KeyStripper:
    """Finds the proxy's own key literals in bytes and masks them."""

    def __init__(self, secrets: Iterable[str]) -> None:
        forms: set[bytes] = set()
        for secret in secrets:
            if secret and len(secret) >= MIN_LITERAL:
                forms |= _forms(secret)
        self.literals = tuple(sorted(forms, key=len, reverse=True))
        self.active = bool(self.literals)
        self._scan = (
            ahocorasick_rs.BytesAhoCorasick(
                list(self.literals), matchkind=ahocorasick_rs.MatchKind.LeftmostLongest
            )
            if self.active
            else None
        )
        # Every proper prefix of a literal: a chunk ending in one may be
        # followed by the rest of the key.
        self._prefixes = frozenset(lit[:k] for lit in self.literals for k in range(1, len(lit)))
        self._firsts = tuple({lit[:1] for lit in self.literals})
        self.hold_max = max((len(lit) for lit in self.literals), default=1) - 1

    def strip(self, data: bytes) -> bytes:
        """`data` with every literal masked (same length)."""
        if self._scan is None or not data:
            return data
        found = self._scan.find_matches_as_indexes(data)
        if not found:
            return data
        out = bytearray(data)
        for _index, start, end in found:
            out[start:end] = _mask(end - start)
        return bytes(out)

    def strip_text(self, text: str) -> str:
        """A header value with every literal masked."""
        if self._scan is None:
            return text
        raw = text.encode("utf-8", "surrogateescape")
        stripped = self.strip(raw)
        return text if stripped is raw else stripped.decode("utf-8", "surrogateescape")

    def strip_headers(self, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Header names and values with every literal masked: one scan of
        them all, and a pass per header only if that finds a literal."""
        if self._scan is None or not pairs:
            return pairs
        joined = "\n".join([text for pair in pairs for text in pair])
        if not self._scan.find_matches_as_indexes(joined.encode("utf-8", "surrogateescape")):
            return pairs
        return [(self.strip_text(k), self.strip_text(v)) for k, v in pairs]

    def held_from(self, data: bytes) -> int:
        """Where the tail of `data` that begins some literal starts (len: none)."""
        start = max(0, len(data) - self.hold_max)
        cut = len(data)
        for first in self._firsts:
            i = data.find(first, start)
            while 0 <= i < cut:
                if data[i:] in self._prefixes:
                    cut = i
                    break
                i = data.find(first, i + 1)
        return cut

    def stream(self) -> StreamStripper:
        return StreamStripper(self)


class StreamStripper:
    """One relayed body, chunk by chunk."""

    def __init__(self, keys: KeyStripper) -> None:
        self.keys = keys
        self.held = b""

    def feed(self, chunk: bytes) -> bytes:
        """What may go to the gateway now; a possible key start is kept back."""
        data = self.held + chunk if self.held else chunk
        data = self.keys.strip(data)
        cut = self.keys.held_from(data)
        self.held = data[cut:]
        return data if cut == len(data) else data[:cut]

    def flush(self) -> bytes:
        """The held tail at the end of the body: not a whole key, so as is."""
        held, self.held = self.held, b""
        return held
