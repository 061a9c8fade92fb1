"""The fake OpenAI Chat Completions API (which OpenRouter also serves),
plain and streamed (`data:` chunks, `[DONE]`)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from cfproxies.fake_llm.knobs import count_tokens, cut_in_pieces, knobs_of, prompt_text
from cfproxies.fake_llm.replies import dumps, json_reply, pace, stamp, stream_reply


async def openai_chat(request: web.Request, body: Any, entry: dict) -> web.StreamResponse:
    knobs = knobs_of(request, "openai", body)
    body = body if isinstance(body, dict) else {}
    model = body.get("model", "gpt-fake")
    headers = {"x-request-id": "req_" + uuid.uuid4().hex[:24]}
    if knobs.status:
        if knobs.retry_after:
            headers["retry-after"] = knobs.retry_after
        err = {
            "error": {
                "message": f"fake error {knobs.status}",
                "type": "rate_limit_exceeded" if knobs.status == 429 else "server_error",
                "param": None,
                "code": None,
            }
        }
        return await json_reply(request, knobs, knobs.status, err, headers)
    prompt = count_tokens(prompt_text(body)) + knobs.cache_read
    completion = count_tokens(knobs.reply) + knobs.reasoning
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": knobs.cache_read, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": knobs.reasoning, "audio_tokens": 0},
    }
    cid = "chatcmpl-fake" + uuid.uuid4().hex[:20]
    created = int(time.time())
    if body.get("stream") is not True:
        payload = {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": knobs.reply, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": usage,
            "system_fingerprint": "fp_fake",
        }
        return await json_reply(request, knobs, 200, payload, headers)
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        obj: dict[str, Any] = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": choices,
        }
        if include_usage:
            obj["usage"] = None
        obj.update(extra)
        return f"data: {dumps(stamp(knobs, obj))}\n\n".encode()

    async def events() -> AsyncIterator[bytes]:
        first = {"role": "assistant", "content": "", "refusal": None}
        yield chunk([{"index": 0, "delta": first, "logprobs": None, "finish_reason": None}])
        for i, piece in enumerate(cut_in_pieces(knobs.reply, knobs.chunks)):
            await pace(knobs, i)
            yield chunk(
                [{"index": 0, "delta": {"content": piece}, "logprobs": None, "finish_reason": None}]
            )
            if knobs.stream_error and i == 0:
                err = {"message": "fake mid-stream error", "type": "server_error", "code": 502}
                yield f"data: {dumps({'error': err})}\n\n".encode()
                return
        await pace(knobs, knobs.chunks)
        yield chunk([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}])
        if include_usage:
            yield chunk([], usage=usage)
        yield b"data: [DONE]\n\n"

    return await stream_reply(request, knobs, events, headers, entry)
