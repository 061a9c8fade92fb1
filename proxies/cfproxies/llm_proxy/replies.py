"""What the proxy itself answers: JSON bodies, every error in one shape
(`{"error": {"type", "message", ...}}`, the message prefixed
`cf-llm-proxy:`), and a complete answer sent before anything else is done."""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from cfproxies.llm_proxy.budget import Refusal
from cfproxies.llm_proxy.providers import Provider


def json_reply(status: int, payload: dict[str, Any], headers: dict | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(payload).encode(),
        content_type="application/json",
        headers=headers,
    )


def error_reply(
    status: int, etype: str, message: str, headers: dict | None = None, **extra: Any
) -> web.Response:
    """The one error body the proxy sends: `{"error": {"type", "message",
    **extra}}`, in the shape the providers use, so an SDK reads it."""
    return json_reply(status, {"error": {"type": etype, "message": message, **extra}}, headers)


def own_words(message: str) -> str:
    """A message the proxy says of itself, so the agent knows it was not the provider."""
    return f"cf-llm-proxy: {message}"


def budget_reply(refusal: Refusal, dialect: str = "openai") -> web.Response:
    """429 for a call over a budget (tokens or money) or the rpm cap, naming
    it and when it resets, in the shape the gateway's SDK reads as a rate
    limit: Anthropic's `{"type": "error", "error": {...}}`, OpenAI's `code`,
    Gemini's `code` and `status`, all beside the proxy's own fields."""
    retry = refusal.retry_after(time.time())
    resets_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(refusal.resets_at))
    error: dict[str, Any] = {
        "type": "rate_limit_error",
        "message": own_words(f"{refusal.message}; resets at {resets_at}"),
        "limit": refusal.limit,
        "resets_at": resets_at,
        "retry_after_s": retry,
    }
    payload: dict[str, Any] = {"error": error}
    if dialect == "anthropic":
        payload = {"type": "error", "error": error}
    elif dialect == "gemini":
        error.update(code=429, status="RESOURCE_EXHAUSTED")
    else:
        error["code"] = "rate_limit_exceeded"
    return json_reply(429, payload, {"Retry-After": str(retry)})


def gateway_reply(status: int, message: str, provider: Provider) -> web.Response:
    """502 or 504 when the upstream failed; never its URL, which the gateway
    has no business knowing."""
    etype = "upstream_error" if status == 502 else "upstream_timeout"
    return error_reply(status, etype, own_words(f"{message} ({provider.name})"))


async def send_whole(request: web.Request, response: web.Response) -> web.Response:
    """Send a complete response now, so the record is built after the client has it."""
    await response.prepare(request)
    await response.write_eof()
    return response


def cut_connection(request: web.Request) -> None:
    """Cut the client's connection so a broken stream never looks complete."""
    if request.transport is not None:
        request.transport.close()
