"""Whether a call may go upstream, before its body is read: a request
target the proxy reads without ambiguity, a configured provider, a route
of that provider's inference API (`routes.py`), and, with `--token`, the
bot's token presented as its API key and the real key there to swap in."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from multidict import CIMultiDictProxy
from yarl import URL

from cfproxies.llm_proxy.providers import Provider, upstream_path
from cfproxies.llm_proxy.routes import decoded, route_path, split_target
from cfproxies.llm_proxy.state import ProxyState


@dataclass(frozen=True)
class Refused:
    """A call the proxy will not forward: its status, the record's
    `error_kind`, the message, and the error type the gateway reads (the
    kind unless said) with any extra fields of the error."""

    status: int
    kind: str
    message: str
    etype: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Admitted(NamedTuple):  # a tuple: built on every call, and cheaply
    """Where an admitted call goes and with which key."""

    name: str
    provider: Provider
    tail: str  # the request path after /<provider>
    path: str  # the path asked of the provider
    key: str | None  # the real key, with --token; None: the gateway's own credentials go
    query: list[tuple[str, str]]  # what of the query goes upstream


def presented_credentials(
    headers: CIMultiDictProxy[str], query: list[tuple[str, str]]
) -> list[str]:
    """Every credential the gateway presented: API-key headers, a bearer
    token, a `key=` query parameter."""
    found = []
    for header in ("x-api-key", "x-goog-api-key"):
        if value := headers.get(header):
            found.append(value.strip())
    auth = headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        found.append(value.strip())
    for name, part in query:
        if name == "key":
            found.append(URL(f"?{part}", encoded=True).query.get("key", ""))
    return found


def token_ok(presented: list[str], token: str) -> bool:
    want = token.encode()
    return any(hmac.compare_digest(p.encode(), want) for p in presented if p)


def admit(
    state: ProxyState,
    method: str,
    raw_path: str,
    headers: CIMultiDictProxy[str],
    query: list[tuple[str, str]],
) -> Admitted | Refused:
    """The checks, in order; the first that fails is the answer."""
    cfg = state.config
    target = split_target(raw_path)
    if isinstance(target, str):
        return Refused(400, "bad_request_target", target)
    name, tail = target
    provider = cfg.providers.get(name)
    if provider is None:
        known = ", ".join(sorted(cfg.providers))
        return Refused(
            404, "unknown_provider", f"unknown provider {name!r}; known: {known}", "not_found"
        )
    path = upstream_path(provider, tail)
    if not state.allowed[name].permits(method, decoded(route_path(provider, path))):
        return Refused(
            403,
            "route_not_allowed",
            f"{method} on this path is not part of {name}'s inference API, which is "
            "all the proxy forwards (the operator may allow more with --allow-route)",
        )
    key: str | None = None
    if cfg.token is not None:  # before the body is read: a stranger's body is never held
        if not token_ok(presented_credentials(headers, query), cfg.token):
            return Refused(
                401, "auth", "present the bot's proxy token as the API key", "authentication_error"
            )
        key = cfg.keys.get(provider.key_env)
        if not key:
            return Refused(
                503,
                "no_key",
                f"{provider.key_env} is not set in providers.env",
                "provider_key_missing",
                {"variable": provider.key_env},
            )
        query = [(n, part) for n, part in query if n != "key"]
    return Admitted(name, provider, tail, path, key, query)
