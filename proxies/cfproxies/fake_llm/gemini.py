"""The fake Gemini generateContent and streamGenerateContent (a JSON array,
or SSE with `alt=sse`)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from cfproxies.fake_llm.knobs import count_tokens, cut_in_pieces, knobs_of, prompt_text
from cfproxies.fake_llm.replies import dumps, json_reply, pace, stamp, stream_reply

GEMINI_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


async def gemini_generate(request: web.Request, body: Any, entry: dict) -> web.StreamResponse:
    model, _, action = request.match_info["model_action"].partition(":")
    knobs = knobs_of(request, "gemini", body)
    headers: dict[str, str] = {}
    if action not in ("generateContent", "streamGenerateContent"):
        err = {"error": {"code": 404, "message": f"unknown method {action}", "status": "NOT_FOUND"}}
        return await json_reply(request, knobs, 404, err, headers)
    if knobs.status:
        if knobs.retry_after:
            headers["retry-after"] = knobs.retry_after
        status = GEMINI_STATUS.get(knobs.status, "INTERNAL")
        err = {"error": {"code": knobs.status, "message": f"fake {status}", "status": status}}
        return await json_reply(request, knobs, knobs.status, err, headers)
    prompt = count_tokens(prompt_text(body)) + knobs.cache_read
    response_id = uuid.uuid4().hex[:22]

    def usage(candidates: int) -> dict[str, int]:
        meta = {
            "promptTokenCount": prompt,
            "candidatesTokenCount": candidates,
            "totalTokenCount": prompt + candidates + knobs.reasoning,
        }
        if knobs.cache_read:
            meta["cachedContentTokenCount"] = knobs.cache_read
        if knobs.reasoning:
            meta["thoughtsTokenCount"] = knobs.reasoning
        return meta

    def message(text: str, done: bool, candidates: int) -> dict[str, Any]:
        cand: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
        if done:
            cand["finishReason"] = "STOP"
        return stamp(
            knobs,
            {
                "candidates": [cand],
                "usageMetadata": usage(candidates),
                "modelVersion": model,
                "responseId": response_id,
            },
        )

    if action == "generateContent":
        payload = message(knobs.reply, True, count_tokens(knobs.reply))
        return await json_reply(request, knobs, 200, payload, headers)
    sse = request.query.get("alt") == "sse"
    pieces = cut_in_pieces(knobs.reply, knobs.chunks)

    async def events() -> AsyncIterator[bytes]:
        so_far = ""
        if not sse:
            yield b"["
        for i, piece in enumerate(pieces):
            await pace(knobs, i)
            so_far += piece
            obj = message(piece, i == len(pieces) - 1, count_tokens(so_far))
            if knobs.stream_error and i == 0:
                obj = {"error": {"code": 503, "message": "fake overload", "status": "UNAVAILABLE"}}
            if sse:
                yield f"data: {dumps(obj)}\r\n\r\n".encode()
            else:
                yield (b"," if i else b"") + dumps(obj).encode() + b"\r\n"
            if knobs.stream_error:
                break
        if not sse:
            yield b"]"

    ctype = "text/event-stream" if sse else "application/json"
    return await stream_reply(request, knobs, events, headers, entry, ctype)
