"""The filter language of the traffic view and `cftui traffic --filter`
(`provider:openai model:gpt status:5xx free words`), and how a chunk scan
finds its candidate lines: the filter's most selective needle, searched
with one C-level call a chunk (`TrafficFilter.driver`), then each hit's
line checked on its top-level header only (`TrafficFilter.span_matcher`)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import regex

from cftui.audit.traffic.fields import UNSURE, field_of, header_value, is_start, top_limit

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
                if value is UNSURE:
                    value = field_of(chunk[ls:le], "provider")
                if value != provider:
                    return None
            if model is not None and not (model_proved and at < limit and chunk[at - 1] != 92):
                value = header_value(head, "model", len(head))
                if value is UNSURE:
                    value = field_of(chunk[ls:le], "model")
                if not isinstance(value, str) or model not in value.lower():
                    return None
            if plain_status:
                value = header_value(head, "status", len(head))
                if value is UNSURE:
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
