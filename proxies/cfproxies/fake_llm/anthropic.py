"""The fake Anthropic Messages API, plain and streamed (SSE events)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from cfproxies.fake_llm.knobs import count_tokens, cut_in_pieces, knobs_of, prompt_text
from cfproxies.fake_llm.replies import json_reply, pace, sse_event, stamp, stream_reply

ANTHROPIC_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


async def anthropic_messages(request: web.Request, body: Any, entry: dict) -> web.StreamResponse:
    knobs = knobs_of(request, "anthropic", body)
    model = body.get("model", "claude-fake") if isinstance(body, dict) else "claude-fake"
    rid = "req_fake_" + uuid.uuid4().hex[:20]
    headers = {"request-id": rid}
    if knobs.status:
        if knobs.retry_after:
            headers["retry-after"] = knobs.retry_after
        kind = ANTHROPIC_ERRORS.get(knobs.status, "api_error")
        err = {"type": "error", "error": {"type": kind, "message": f"fake {kind}"}}
        return await json_reply(request, knobs, knobs.status, err, headers)
    usage_in = {
        "input_tokens": count_tokens(prompt_text(body)),
        "cache_creation_input_tokens": knobs.cache_write,
        "cache_read_input_tokens": knobs.cache_read,
    }
    out_tokens = count_tokens(knobs.reply) + knobs.reasoning
    msg_id = "msg_fake_" + uuid.uuid4().hex[:20]
    if not (isinstance(body, dict) and body.get("stream") is True):
        payload = {
            "id": msg_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": knobs.reply}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {**usage_in, "output_tokens": out_tokens},
        }
        return await json_reply(request, knobs, 200, payload, headers)

    async def events() -> AsyncIterator[bytes]:
        start = {
            "id": msg_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {**usage_in, "output_tokens": 1},
        }
        yield sse_event("message_start", {"type": "message_start", "message": start})
        block = {"type": "text", "text": ""}
        yield sse_event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": block},
        )
        yield sse_event("ping", {"type": "ping"})
        for i, piece in enumerate(cut_in_pieces(knobs.reply, knobs.chunks)):
            await pace(knobs, i)
            delta = {"type": "text_delta", "text": piece}
            yield sse_event(
                "content_block_delta",
                stamp(knobs, {"type": "content_block_delta", "index": 0, "delta": delta}),
            )
            if knobs.stream_error and i == 0:
                err = {"type": "overloaded_error", "message": "Overloaded"}
                yield sse_event("error", {"type": "error", "error": err})
                return
        await pace(knobs, knobs.chunks)
        yield sse_event("content_block_stop", {"type": "content_block_stop", "index": 0})
        yield sse_event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": out_tokens},
            },
        )
        yield sse_event("message_stop", {"type": "message_stop"})

    return await stream_reply(request, knobs, events, headers, entry)
