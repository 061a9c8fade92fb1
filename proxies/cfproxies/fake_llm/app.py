"""A local stand-in for the LLM providers, for tests, the demo and the bench.

It speaks each provider's wire format (Anthropic Messages, OpenAI Chat
Completions, which OpenRouter also serves, Gemini generateContent), streamed
and not, with the real event framing and usage fields. Request headers steer
it (all optional):

    x-fake-reply: TEXT          the answer (default: a greeting echoing the prompt)
    x-fake-reply-bytes: N       an answer N bytes long
    x-fake-chunks: N            stream the answer in N pieces (default 4)
    x-fake-chunk-gap-ms: MS     pause between pieces
    x-fake-delay-ms: MS         pause before the response headers
    x-fake-status: CODE         answer this HTTP error, in the provider's format
    x-fake-retry-after: S       with x-fake-status, a Retry-After header
    x-fake-stream-error: 1      an in-stream error event after the first piece
    x-fake-drop-after: N        close the connection after N pieces
    x-fake-hang-after: N        go silent after N pieces
    x-fake-gzip: 1              gzip the body (when the client accepts gzip)
    x-fake-cache-read / x-fake-cache-write / x-fake-reasoning: N   extra usage
    x-fake-no-length: 1         a non-streamed body without Content-Length
    x-fake-stamp: 1             each streamed event carries "fake_ts" (epoch s)

`GET /_fake/requests` lists the last requests received, with every credential
(auth headers, cookies, a `key=` query parameter) replaced by `[REDACTED]`:
whoever can reach the fake (the demo shares one between bots) must not read
the keys that reached it. Tests in the same process see what arrived in
`FakeState.requests`; `DELETE` clears it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from cfproxies.fake_llm.anthropic import anthropic_messages
from cfproxies.fake_llm.gemini import gemini_generate
from cfproxies.fake_llm.knobs import int_header
from cfproxies.fake_llm.openai import openai_chat
from cfproxies.fake_llm.state import STATE, FakeState

__all__ = ["STATE", "FakeState", "make_app"]


def _remembered(handler: Callable[..., Any]) -> Callable[[web.Request], Any]:
    """A provider endpoint whose requests are kept (`FakeState.requests`),
    and answered after `x-fake-delay-ms`."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = None
        entry = {
            "ts": time.time(),
            "method": request.method,
            "path": request.path,
            "query": request.raw_path.partition("?")[2],
            "headers": dict(request.headers),
            "body_bytes": len(raw),
            "body": body if len(raw) <= 65536 else None,
            "outcome": "answered",
        }
        request.app[STATE].requests.append(entry)
        delay = int_header(request, "x-fake-delay-ms", 0) or 0
        try:
            if delay:
                await asyncio.sleep(delay / 1000.0)
            return await handler(request, body, entry)
        except asyncio.CancelledError:
            if entry["outcome"] == "answered":
                entry["outcome"] = "client_closed"
            raise

    return wrapped


CREDENTIAL_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "x-goog-api-key", "cookie"}
)


def shown(entry: dict[str, Any]) -> dict[str, Any]:
    """A request as `/_fake/requests` shows it: no credential in it."""
    headers = {
        k: "[REDACTED]" if k.lower() in CREDENTIAL_HEADERS else v
        for k, v in entry["headers"].items()
    }
    query = "&".join(
        "key=[REDACTED]" if part.partition("=")[0].lower() in ("key", "api_key") else part
        for part in entry["query"].split("&")
        if part
    )
    return {**entry, "headers": headers, "query": query}


async def requests_seen(request: web.Request) -> web.Response:
    return web.json_response([shown(e) for e in request.app[STATE].requests])


async def requests_clear(request: web.Request) -> web.Response:
    request.app[STATE].requests.clear()
    return web.json_response({"cleared": True})


async def health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True, "service": "cf-fake-llm"})


def make_app(chunks: int = 4, chunk_gap_ms: int = 0) -> web.Application:
    """The fake; `chunks` and `chunk_gap_ms` shape streams by default (the
    demo sets a gap so that replies visibly stream)."""
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[STATE] = FakeState(chunks, chunk_gap_ms)
    app.router.add_get("/health", health)
    app.router.add_get("/_fake/requests", requests_seen)
    app.router.add_delete("/_fake/requests", requests_clear)
    app.router.add_post("/v1/messages", _remembered(anthropic_messages))
    app.router.add_post("/v1/chat/completions", _remembered(openai_chat))
    app.router.add_post(
        "/api/v1/chat/completions", _remembered(openai_chat)
    )  # OpenRouter's own path
    app.router.add_post("/chat/completions", _remembered(openai_chat))  # a base URL without /v1
    app.router.add_post("/v1beta/models/{model_action}", _remembered(gemini_generate))
    return app
