"""Which headers cross the proxy, each way: hop-by-hop ones never (nor
those a `Connection` header names), the gateway's credentials only without
`--token` (with it, the real key goes in their place), an Accept-Encoding
cut to what the side parser can decode; and on the way back, the upstream's
headers with every key literal masked."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from cfproxies.llm_proxy.providers import Provider
from cfproxies.llm_proxy.reflect import KeyStripper
from cfproxies.llm_proxy.upstream import Answer

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key", "x-goog-api-key"})
# aiohttp's server hands us request bodies already decoded, so the request's
# Content-Encoding no longer describes them and is not forwarded.
REQUEST_DROP = HOP_BY_HOP | {
    "host",
    "content-length",
    "content-encoding",
    "accept-encoding",
    "expect",
}
REQUEST_DROP_KEYED = REQUEST_DROP | CREDENTIAL_HEADERS  # with --token: the real key goes in
RESPONSE_DROP = HOP_BY_HOP | {"content-length"}
DECODABLE = ("gzip", "x-gzip", "deflate", "identity")


def accept_encoding(value: str | None) -> str | None:
    """The client's Accept-Encoding, minus what the side parser cannot decode."""
    if value is None:
        return None
    kept = [
        item.strip() for item in value.split(",") if item.split(";")[0].strip().lower() in DECODABLE
    ]
    return ", ".join(kept) if kept else "identity"


def connection_named(headers: Any) -> frozenset[str]:
    """The headers a `Connection` header names, hop-by-hop like it."""
    value = headers.get("connection")
    if not value:
        return frozenset()
    return frozenset(t.strip().lower() for t in value.split(",") if t.strip())


def upstream_headers(
    request: web.Request, provider: Provider, key: str | None
) -> list[tuple[str, str]]:
    """The gateway's headers as the provider gets them, with the real key
    in place of the bot's token when there is one."""
    drop = REQUEST_DROP if key is None else REQUEST_DROP_KEYED
    if "connection" in request.headers:
        drop = drop | connection_named(request.headers)
    # repeated headers stay repeated
    headers = [(k, v) for k, v in request.headers.items() if k.lower() not in drop]
    ae = accept_encoding(request.headers.get("accept-encoding"))
    if ae is not None:
        headers.append(("Accept-Encoding", ae))
    if key is not None:
        if provider.auth == "x-api-key":
            headers.append(("x-api-key", key))
        elif provider.auth == "x-goog-api-key":
            headers.append(("x-goog-api-key", key))
        else:
            headers.append(("Authorization", f"Bearer {key}"))
    return headers


def response_headers(upstream: Answer, keys: KeyStripper, decoding: bool) -> list[tuple[str, str]]:
    """The upstream's headers as the gateway gets them (pairs: the response
    builds its own multidict from them, once)."""
    drop = RESPONSE_DROP
    if "connection" in upstream.headers:
        drop = drop | connection_named(upstream.headers)
    if decoding:  # the proxy decodes the body to look for keys: it is sent as is
        drop = drop | {"content-encoding"}
    # several Set-Cookie stay several
    kept = [(k, v) for k, v in upstream.headers.items() if k.lower() not in drop]
    return keys.strip_headers(kept)
