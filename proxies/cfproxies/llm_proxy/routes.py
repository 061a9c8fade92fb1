"""Which requests the proxy forwards: a request target it can read without
ambiguity, and only each provider's inference API (the methods and paths an
LLM client calls), unless the operator widens it.

Why: the proxy holds the real keys. Anything else a provider (or the local
fake) answers on, an admin or introspection endpoint, would be reached with
the operator's key on the agent's say-so; and a target the proxy reads one
way and the upstream another (`..`, an encoded slash, an absolute URL) is a
way around any list of paths.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import unquote

from cfproxies.llm_proxy.providers import Provider

# Per dialect: (method, path glob) relative to the provider's base URL; `*`
# is part of one path segment, `**` any run of segments.
_OPENAI = (
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/responses"),
    ("POST", "/v1/embeddings"),
    ("GET", "/v1/models"),
)
_ANTHROPIC = (
    ("POST", "/v1/messages"),
    ("POST", "/v1/messages/count_tokens"),
    ("GET", "/v1/models"),
)
_GEMINI = tuple(
    (method, f"/{version}/{path}")
    for version in ("v1beta", "v1")
    for method, path in (
        ("POST", "models/*:generateContent"),
        ("POST", "models/*:streamGenerateContent"),
        ("POST", "models/*:countTokens"),
        ("GET", "models"),
    )
)
DEFAULT_ROUTES: dict[str | None, tuple[tuple[str, str], ...]] = {
    "openai": _OPENAI,
    "anthropic": _ANTHROPIC,
    "gemini": _GEMINI,
    # A provider only `--upstream` names: whichever of the three it speaks.
    None: _OPENAI + _ANTHROPIC[:2] + _GEMINI,
}


class RouteError(ValueError):
    """A bad `--allow-route` entry, told in one line."""


@dataclass(frozen=True)
class Route:
    """One allowed (provider, method, path) shape; `*` for any provider or method."""

    provider: str
    method: str
    glob: str

    @property
    def pattern(self) -> re.Pattern[str]:
        return _compile(self.glob)


def _compile(glob: str) -> re.Pattern[str]:
    parts = re.split(r"(\*\*|\*)", glob)
    regex = "".join(
        ".*" if p == "**" else "[^/]*" if p == "*" else re.escape(p) for p in parts if p
    )
    return re.compile(regex)


def parse_route(spec: str) -> Route:
    """`PROVIDER METHOD /PATH-GLOB`, e.g. `gemini POST /v1beta/cachedContents`
    or `* * /**` (everything, as the proxy did before it had this list)."""
    words = spec.split()
    if len(words) != 3 or not words[2].startswith("/"):
        raise RouteError(
            f"--allow-route {spec!r}: expected 'PROVIDER METHOD /PATH', e.g. "
            "'gemini POST /v1beta/models/*:embedContent' (* one segment, ** any)"
        )
    provider, method, glob = words
    if not (method == "*" or method.isalpha()):
        raise RouteError(f"--allow-route {spec!r}: METHOD is GET, POST, ... or *")
    return Route(provider.lower(), method.upper(), glob)


def parse_routes(specs: Iterable[str]) -> tuple[Route, ...]:
    """Flag values and `CF_ALLOW_ROUTES` entries (separated by `;`)."""
    out = []
    for spec in specs:
        for part in spec.split(";"):
            if part.strip():
                out.append(parse_route(part))
    return tuple(out)


MEMO_SIZE = 1024  # answers kept per provider; then they are forgotten and found again


@dataclass(frozen=True)
class Allowed:
    """A provider's allowed routes, compiled once at start. An agent calls
    the same few paths again and again, so each answer is remembered (up
    to MEMO_SIZE of them) rather than matched against every rule again."""

    rules: tuple[tuple[str, re.Pattern[str]], ...]
    _memo: dict[tuple[str, str], bool] = field(default_factory=dict, compare=False, repr=False)

    def permits(self, method: str, path: str) -> bool:
        key = (method, path)
        answer = self._memo.get(key)
        if answer is None:
            if len(self._memo) >= MEMO_SIZE:
                self._memo.clear()
            answer = self._memo[key] = any(
                (m == "*" or m == method) and pattern.fullmatch(path) for m, pattern in self.rules
            )
        return answer


def allowed_for(provider: Provider, extra: Sequence[Route]) -> Allowed:
    rules = [(m, _compile(g)) for m, g in DEFAULT_ROUTES[provider.dialect]]
    for route in extra:
        if route.provider in ("*", provider.name):
            rules.append((route.method, route.pattern))
    return Allowed(tuple(rules))


def route_path(provider: Provider, tail: str) -> str:
    """The path a route is checked on: the tail relative to the provider's
    API root, with the `/v1` a base URL ending in `/v1` already holds."""
    if provider.base_url.endswith("/v1") and not tail.startswith("/v1"):
        return "/v1" + tail
    return tail


_BAD_ESCAPES = re.compile(r"%(?:2e|2f|5c|00)", re.IGNORECASE)


@lru_cache(maxsize=MEMO_SIZE)  # the same few paths, again and again
def split_target(raw_path: str) -> tuple[str, str] | str:
    """(provider, tail) of a request target (without its query), or why it
    is refused: only origin-form targets (`/provider/...`), no `.` or `..`
    segment, no encoded dot, slash, backslash or NUL, no backslash, no
    empty segment; so the path the allowlist checks is the path the
    upstream serves."""
    if not raw_path.startswith("/") or raw_path.startswith("//"):
        return "the request target must be a path (/PROVIDER/...), not an absolute URL"
    if _BAD_ESCAPES.search(raw_path) or "\\" in raw_path:
        return "the request path holds an encoded dot, slash, backslash or NUL"
    segments = raw_path[1:].split("/")
    if any(s in (".", "..") for s in segments):
        return "the request path holds a '.' or '..' segment"
    if "" in segments[1:-1]:
        return "the request path holds an empty segment"
    provider = unquote(segments[0])
    tail = raw_path[1 + len(segments[0]) :]
    return provider, tail


def decoded(tail: str) -> str:
    """The tail as the upstream reads it (`%3A` is a `:`), for the route check."""
    return unquote(tail) if "%" in tail else tail
