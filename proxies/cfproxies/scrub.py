"""The one scrubber: what is replaced before anything reaches an audit log.

Built-in rules cover provider keys, bearer tokens, cookies, AWS and GitHub
tokens and private key blocks; each is found by plain substring anchors and
its (linear-time) regex is tried only where an anchor is. One Aho-Corasick scan
for all anchors tells whether a string holds any, so a long prompt with none
costs that one scan rather than a regex pass per rule. The operator's own rules
come from `scrub_rules.json` and run on the `regex` module with a timeout,
so a rule with catastrophic backtracking costs a bounded time and fails
closed (the string it was scanning is redacted whole) instead of hanging
the proxy. A malformed rules file is reported in `errors`, never fatal.

`scrub_rules.json` is either a list of rules or `{"rules": [...]}`; a rule is
a regex string or `{"pattern": "...", "name": "...", "replace": "...",
"ignore_case": false}`.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ahocorasick_rs
import regex

REDACTED = "[REDACTED:{}]"


@dataclass(frozen=True)
class BuiltinRule:
    """A secret shape, found in two steps so that long text stays cheap: a
    plain substring search for an anchor (on the lowercased text), then the
    rule's regex matched only where an anchor is. A group named `keep` stays
    in front of the redaction (the "Bearer " of a header). Case is ignored
    for ASCII letters only (`(?ai:...)`), as the raw pre-check's
    `bytes.lower()` does: otherwise a Kelvin sign would be a "k" to the rule
    and not to the pre-check, which would then skip a body the rule redacts."""

    name: str
    anchors: tuple[str, ...]  # lowercase; the match starts where one is found
    pattern: str
    # A key glued to a letter or digit before it ("x" + key, to slip past a
    # word-boundary check) is still a key. Only a rule whose anchor is common
    # inside words ("sk-" in "task-...") asks more of a glued match: that it
    # looks random (see `_looks_random`).
    glued_strict: bool = False


BUILTIN_RULES: tuple[BuiltinRule, ...] = (
    BuiltinRule(
        "private-key",
        ("-----begin",),
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----[\s\S]*?"
        r"(?:-----END [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----|\Z)",
    ),
    BuiltinRule("anthropic-key", ("sk-ant-",), r"sk-ant-[A-Za-z0-9]{2,10}-[A-Za-z0-9_\-]{16,}"),
    BuiltinRule("openrouter-key", ("sk-or-",), r"sk-or-(?:v1-)?[A-Za-z0-9]{32,}"),
    BuiltinRule(
        "openai-key",
        ("sk-",),
        r"sk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_\-]{20,}",
        glued_strict=True,
    ),
    BuiltinRule("google-key", ("aiza",), r"AIza[0-9A-Za-z_\-]{35}"),
    BuiltinRule("google-oauth", ("ya29.",), r"ya29\.[0-9A-Za-z_\-]{20,}"),
    BuiltinRule(
        "github-token",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
        r"(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})",
    ),
    BuiltinRule(
        "aws-key-id",
        ("akia", "asia", "abia", "acca"),
        r"(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}(?![0-9A-Z])",
    ),
    BuiltinRule(
        "aws-secret",
        ("aws",),
        r"(?P<keep>(?ai:aws_?secret_?(?:access_?)?key)[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9/+=]{40}",
    ),
    BuiltinRule("slack-token", ("xox",), r"xox[abposr]-[A-Za-z0-9\-]{10,}"),
    BuiltinRule("bearer", ("bearer",), r"(?P<keep>(?ai:bearer)\s+)[A-Za-z0-9._~+/=\-]{8,}"),
    BuiltinRule(
        "cookie",
        ("cookie",),
        r"(?P<keep>(?ai:cookie)[\"']?\s*:\s*[\"']?)[^\"'\r\n]+",
    ),
)
_COMPILED = tuple(re.compile(rule.pattern) for rule in BUILTIN_RULES)


def _looks_random(key: str) -> bool:
    """A glued `sk-...` is taken for a key when it reads like one: 32
    characters or more with an upper-case letter, a lower-case one and a
    digit (every OpenAI key format; "task-force-alpha-bravo-charlie" is not)."""
    return (
        len(key) >= 32
        and any(c.isdigit() for c in key)
        and any(c.isupper() for c in key)
        and any(c.islower() for c in key)
    )


# Every anchor: a string holding none of them skips the rules entirely,
# which is most of the text in an LLM call.
TRIGGERS = tuple(dict.fromkeys(a for rule in BUILTIN_RULES for a in rule.anchors))

# JSON keys whose values are secrets whatever they look like.
SECRET_KEYS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "x-goog-api-key",
        "api_key",
        "api-key",
        "apikey",
        "password",
        "passwd",
        "secret",
        "client_secret",
        "access_token",
        "refresh_token",
        "id_token",
        "private_key",
    }
)


# For raw JSON: the triggers plus short needles that every SECRET_KEYS name
# (as a quoted JSON key, lowercased) contains.
_RAW_TRIGGERS = tuple(
    dict.fromkeys(
        (
            *(t.encode() for t in TRIGGERS),
            b"authorization",
            b"secret",
            b"cookie",
            b'key"',
            b"passw",
            b'token"',
        )
    )
)
assert all(any(n in f'"{k}"'.encode() for n in _RAW_TRIGGERS) for k in SECRET_KEYS)

# One Aho-Corasick automaton per needle set, built once: one pass over the
# lowercased text for all needles (~2.3 ns a byte of JSON, ~4x less than a
# regex of the same needles as a trie; text far from ASCII, which the str
# automaton reads as UTF-8, costs more). Only ever asked yes or no, which the
# default non-overlapping search answers exactly: any needle present, some
# match is reported. The str automaton, not bytes, for text: it reads an ASCII
# str in place, where an encode would copy it (most strings are short).
assert all(t.isascii() and t == t.lower() for t in TRIGGERS)
# The raw scan also looks for `\u` (see `Scrubber._raw_is_clean`): one pass for all.
_RAW_NEEDLES = (*_RAW_TRIGGERS, b"\\u")
_RAW_SCAN = ahocorasick_rs.BytesAhoCorasick(list(_RAW_NEEDLES))
_TEXT_SCAN = ahocorasick_rs.AhoCorasick(list(TRIGGERS))


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _ascii_lower(text: str) -> str:
    """Lowercase A-Z only, as `bytes.lower()` does for the raw pre-check: a
    name is a secret key for the walk exactly when the raw text shows it
    (a Kelvin sign is not a K there, and must not be one here)."""
    return text.lower() if text.isascii() else text.translate(_ASCII_LOWER)


def _lower_in_place(text: str) -> str:
    """`text.lower()` with every character where it was: a few characters
    lowercase to two ("İ" to "i̇"), which would shift every anchor found after
    them off the text the rules are matched on. Those few stay as they are
    (no anchor contains them)."""
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(c if len(lc := c.lower()) != 1 else lc for c in text)


def _has_trigger(text: str) -> bool:
    """Whether the lowercased text holds any of TRIGGERS."""
    low = text.lower()
    try:
        return bool(_TEXT_SCAN.find_matches_as_indexes(low))
    except UnicodeEncodeError:
        # A lone surrogate (a JSON string may hold one) has no UTF-8 form; as
        # "?", like every other non-ASCII character, it leaves the needles as they were.
        return bool(_TEXT_SCAN.find_matches_as_indexes(low.encode("ascii", "replace").decode()))


# An agent resends its whole conversation on every call, so most of a large
# request is text this scrubber has already found clean: long strings found
# clean are remembered (per Scrubber, so a rules reload forgets them) and
# large bodies skip the raw pre-check, whose cost (~3 ns a byte) the walk
# then saves on every string seen before.
MEMO_MIN_CHARS = 256
MEMO_MAX_CHARS = 4 * 1024 * 1024  # all remembered strings together; then start over
RAW_CHECK_MAX = 16 * 1024

USER_RULE_TIMEOUT_S = 0.02  # one user rule on one string (the regex module overshoots ~3x)
RECORD_BUDGET_S = 0.25  # all user rules on one record, then the rest is redacted whole


@dataclass(frozen=True)
class UserRule:
    name: str
    pattern: Any  # a compiled `regex` pattern
    replace: str


@dataclass
class _Pass:
    """The running state of one `scrub` call."""

    deadline: float
    count: int = 0
    timeouts: list[str] = field(default_factory=list)


def load_user_rules(path: Path | str) -> tuple[list[UserRule], list[str]]:
    """The rules in a `scrub_rules.json` and the problems found in it; a
    missing file is no rules and no problem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return [], []
    except (OSError, UnicodeDecodeError) as exc:
        return [], [f"{path}: cannot read: {exc}"]
    try:
        data = json.loads(text)
    except ValueError as exc:
        return [], [f"{path}: not valid JSON ({exc}); only the built-in rules apply"]
    if isinstance(data, dict):
        data = data.get("rules")
    if not isinstance(data, list):
        return [], [f"{path}: expected a list of rules or {{'rules': [...]}}"]
    return parse_user_rules(data, source=str(path))


def parse_user_rules(
    items: Iterable[Any], source: str = "rules"
) -> tuple[list[UserRule], list[str]]:
    """Compile rule entries; a bad one is reported and skipped, the others kept."""
    rules: list[UserRule] = []
    errors: list[str] = []
    for index, item in enumerate(items):
        if isinstance(item, str):
            item = {"pattern": item}
        if not isinstance(item, dict) or not isinstance(item.get("pattern"), str):
            errors.append(f"{source}: rule {index} has no 'pattern' string; skipped")
            continue
        name = str(item.get("name") or f"user-{index}")
        replace = item.get("replace")
        replace = REDACTED.format(name) if not isinstance(replace, str) else replace
        flags = regex.IGNORECASE if item.get("ignore_case") else 0
        try:
            compiled = regex.compile(item["pattern"], flags | regex.V0)
        except (regex.error, ValueError, TypeError) as exc:
            errors.append(f"{source}: rule {name!r} is not a valid regex ({exc}); skipped")
            continue
        rules.append(UserRule(name, compiled, replace))
    return rules, errors


class Scrubber:
    """Replaces secrets in strings and JSON values; counts what it replaced."""

    def __init__(
        self,
        user_rules: Iterable[UserRule] = (),
        literals: Iterable[str] = (),
        errors: Iterable[str] = (),
        timeout_s: float = USER_RULE_TIMEOUT_S,
        budget_s: float = RECORD_BUDGET_S,
    ) -> None:
        self.user_rules = list(user_rules)
        self.errors = list(errors)
        self.timeout_s = timeout_s
        self.budget_s = budget_s
        self.timeouts = 0  # user-rule timeouts since start, for /health
        self._literals = tuple(s for s in literals if s and len(s) >= 8)
        # The raw pre-check's needles and these literals, lowercased like the
        # text it scans: one pass for all (a literal in another case only
        # costs a walk, which then tells).
        lowered = {s.encode().lower() for s in self._literals}
        self._raw_scan = (
            ahocorasick_rs.BytesAhoCorasick([*_RAW_NEEDLES, *sorted(lowered)])
            if lowered
            else _RAW_SCAN
        )
        # `encoded_is_clean` finds a literal in a line only if the encoder
        # writes it as it is: no quote, backslash or control character in it.
        self._encoded_checkable = all(
            s.isprintable() and '"' not in s and "\\" not in s for s in self._literals
        )
        # The exact keys the proxy holds, whatever their shape; longest first.
        self._literals = tuple(sorted(set(self._literals), key=len, reverse=True))
        self._clean: set[str] = set()  # long strings no rule changes (see MEMO_MIN_CHARS)
        self._clean_chars = 0

    @classmethod
    def from_file(cls, path: Path | str | None, literals: Iterable[str] = ()) -> Scrubber:
        rules, errors = load_user_rules(path) if path else ([], [])
        return cls(rules, literals, errors)

    def _builtin(self, text: str) -> tuple[str, int]:
        """Apply the literal secrets and the built-in rules; a span already
        taken by an earlier rule is not matched again."""
        spans: list[tuple[int, int, str]] = []

        def free(start: int, end: int) -> bool:
            return all(end <= s or start >= e for s, e, _ in spans)

        for secret in self._literals:
            at = text.find(secret)
            while at >= 0:
                if free(at, at + len(secret)):
                    spans.append((at, at + len(secret), REDACTED.format("secret")))
                at = text.find(secret, at + len(secret))
        low = _lower_in_place(text)
        for rule, compiled in zip(BUILTIN_RULES, _COMPILED, strict=True):
            for anchor in rule.anchors:
                at = low.find(anchor)
                while at >= 0:
                    nxt = at + 1
                    m = compiled.match(text, at)
                    if m and rule.glued_strict and at and text[at - 1].isalnum():
                        m = m if _looks_random(m.group()) else None
                    if m and free(m.start(), m.end()):
                        keep = m.groupdict().get("keep") or ""
                        spans.append((m.start(), m.end(), keep + REDACTED.format(rule.name)))
                        nxt = m.end()
                    at = low.find(anchor, nxt)
        if not spans:
            return text, 0
        spans.sort()
        out, last = [], 0
        for start, end, replacement in spans:
            out.append(text[last:start])
            out.append(replacement)
            last = end
        out.append(text[last:])
        return "".join(out), len(spans)

    def _may_hold_builtin(self, text: str) -> bool:
        if _has_trigger(text):
            return True
        return any(secret in text for secret in self._literals)

    def _text(self, text: str, state: _Pass) -> str:
        memo = len(text) >= MEMO_MIN_CHARS
        if memo and text in self._clean:
            return text
        found = state.count
        text = self._rules(text, state)
        if memo and state.count == found:  # nothing replaced, no timeout: clean
            if self._clean_chars + len(text) > MEMO_MAX_CHARS:
                self._clean, self._clean_chars = set(), 0
            self._clean.add(text)
            self._clean_chars += len(text)
        return text

    def _rules(self, text: str, state: _Pass) -> str:
        if self._may_hold_builtin(text):
            text, n = self._builtin(text)
            state.count += n
        for rule in self.user_rules:
            left = state.deadline - time.monotonic()
            if left <= 0:
                state.count += 1
                return REDACTED.format("scrub-budget")
            try:
                text, n = rule.pattern.subn(rule.replace, text, timeout=min(self.timeout_s, left))
            except TimeoutError:
                # Fail closed: what the rule could not finish scanning may hold a secret.
                # The rest of this record is redacted whole too: a rule that
                # backtracks once will likely do so again, and each try costs time.
                state.timeouts.append(rule.name)
                state.deadline = 0.0
                self.timeouts += 1
                state.count += 1
                return REDACTED.format("scrub-timeout")
            state.count += n
        return text

    def _value(self, value: Any, state: _Pass) -> Any:
        if isinstance(value, str):
            return self._text(value, state)
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                if (
                    isinstance(key, str)
                    and _ascii_lower(key) in SECRET_KEYS
                    and item not in (None, "")
                ):
                    state.count += 1
                    out[key] = REDACTED.format(_ascii_lower(key))
                else:
                    out[key] = self._value(item, state)
            return out
        if isinstance(value, list):
            return [self._value(item, state) for item in value]
        return value

    def _raw_is_clean(self, raw: bytes) -> bool:
        """Whether the JSON text a value was parsed from cannot hold anything
        a rule would replace, so the walk over the value can be skipped. Only
        with no user rules (those can match anything) and no `\\u` escapes
        (which could spell a trigger that the raw text does not show)."""
        # (Lowered, a `\U` counts as a `\u` too: at worst a walk more.)
        return not self.user_rules and not self._raw_scan.find_matches_as_indexes(raw.lower())

    def encoded_is_clean(self, line: bytes) -> bool:
        """Whether a value this package's JSON encoder wrote (`jsoncodec`:
        UTF-8, only quotes, backslashes and control characters escaped) holds
        nothing a rule would replace, so that scrubbing the value would change
        nothing: the check of `_raw_is_clean`, valid here for the whole line
        of a record, not just a body's text, because each string of the value
        is in it as it is. Never with user rules (those can match anything),
        nor with a literal that the encoder would escape."""
        return self._encoded_checkable and self._raw_is_clean(line)

    def scrub(self, value: Any, raw: bytes | None = None) -> tuple[Any, int]:
        """A scrubbed copy of a JSON value (or string) and the redaction count;
        `raw`, the JSON text the value came from, lets a clean body skip the walk."""
        if raw is not None and len(raw) <= RAW_CHECK_MAX and self._raw_is_clean(raw):
            return value, 0
        if isinstance(value, str) and not self.user_rules and not self._may_hold_builtin(value):
            return value, 0  # a clean string (a record's path, mostly): no pass to set up
        state = _Pass(deadline=time.monotonic() + self.budget_s)
        try:
            return self._value(value, state), state.count
        except RecursionError:  # nested past the stack (found by tests/fuzz): keep none of it
            return {"truncated": True, "reason": "nested too deep to scrub"}, 0

    def scrub_text(self, text: str) -> str:
        return self.scrub(text)[0]


class ReloadingScrubber:
    """A `Scrubber` that rereads `scrub_rules.json` when it changes, checked at
    most once a second, so the operator's edits apply without a restart. Each
    problem found in the file, at start or on a reload, goes to `report` (the
    proxy prints it on stderr) as well as to `errors` (its `/health`)."""

    def __init__(
        self,
        path: Path | str | None,
        literals: Iterable[str] = (),
        report: Callable[[str], None] | None = None,
    ) -> None:
        self.path = Path(path) if path else None
        self.literals = tuple(literals)
        self.report = report
        self._stamp: tuple[int, int] | None = self._stat()
        self._checked = time.monotonic()
        self.current = self._load()

    def _load(self) -> Scrubber:
        scrubber = Scrubber.from_file(self.path, self.literals)
        if self.report is not None:
            for problem in scrubber.errors:
                self.report(problem)
        return scrubber

    def _stat(self) -> tuple[int, int] | None:
        if self.path is None:
            return None
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def get(self) -> Scrubber:
        now = time.monotonic()
        if self.path is not None and now - self._checked >= 1.0:
            self._checked = now
            stamp = self._stat()
            if stamp != self._stamp:
                self._stamp = stamp
                timeouts = self.current.timeouts
                self.current = self._load()
                self.current.timeouts = timeouts
        return self.current
