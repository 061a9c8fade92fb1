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
import uuid
import zlib
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

KEEP_REQUESTS = 200

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
GEMINI_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


@dataclass
class Knobs:
    """The x-fake-* headers of one request."""

    reply: str
    chunks: int
    gap_s: float
    status: int | None
    retry_after: str | None
    stream_error: bool
    drop_after: int | None
    hang_after: int | None
    gzip: bool
    cache_read: int
    cache_write: int
    reasoning: int
    no_length: bool
    stamp: bool


def _int_header(request: web.Request, name: str, default: int | None = None) -> int | None:
    value = request.headers.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        return default


def _prompt_text(body: Any) -> str:
    """The text of the last user turn, in whichever format the body uses."""
    if not isinstance(body, dict):
        return ""
    texts: list[str] = []
    for msg in body.get("messages") or []:
        if isinstance(msg, dict) and msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, list):
                content = " ".join(
                    p.get("text", "") for p in content if isinstance(p, dict) and "text" in p
                )
            texts = [str(content or "")]
    for turn in body.get("contents") or []:
        if isinstance(turn, dict) and turn.get("role", "user") == "user":
            texts = [
                " ".join(p.get("text", "") for p in turn.get("parts") or [] if isinstance(p, dict))
            ]
    if isinstance(body.get("input"), str):
        texts = [body["input"]]
    return texts[-1] if texts else ""


def _count_tokens(text: str) -> int:
    return max(1, len(text.split()))


def _knobs(request: web.Request, provider: str, body: Any) -> Knobs:
    h = request.headers
    state = request.app[STATE]
    reply = h.get("x-fake-reply")
    size = _int_header(request, "x-fake-reply-bytes")
    if size is not None:
        reply = ("lorem ipsum " * (size // 12 + 1))[:size]
    if reply is None:
        said = " ".join(_prompt_text(body).split())[:200]
        reply = f"Hello from the fake {provider} model." + (f" You said: {said}" if said else "")
    accepts_gzip = "gzip" in h.get("accept-encoding", "").lower()
    return Knobs(
        reply=reply,
        chunks=max(1, _int_header(request, "x-fake-chunks", state.chunks) or 1),
        gap_s=(_int_header(request, "x-fake-chunk-gap-ms", state.chunk_gap_ms) or 0) / 1000.0,
        status=_int_header(request, "x-fake-status"),
        retry_after=h.get("x-fake-retry-after"),
        stream_error=h.get("x-fake-stream-error") == "1",
        drop_after=_int_header(request, "x-fake-drop-after"),
        hang_after=_int_header(request, "x-fake-hang-after"),
        gzip=h.get("x-fake-gzip") == "1" and accepts_gzip,
        cache_read=_int_header(request, "x-fake-cache-read", 0) or 0,
        cache_write=_int_header(request, "x-fake-cache-write", 0) or 0,
        reasoning=_int_header(request, "x-fake-reasoning", 0) or 0,
        no_length=h.get("x-fake-no-length") == "1",
        stamp=h.get("x-fake-stamp") == "1",
    )


def _pieces(text: str, n: int) -> list[str]:
    if n <= 1 or len(text) <= 1:
        return [text]
    n = min(n, len(text))
    step, extra = divmod(len(text), n)
    out, at = [], 0
    for i in range(n):
        size = step + (1 if i < extra else 0)
        out.append(text[at : at + size])
        at += size
    return out


class FakeState:
    def __init__(self, chunks: int = 4, chunk_gap_ms: int = 0) -> None:
        self.requests: deque[dict[str, Any]] = deque(maxlen=KEEP_REQUESTS)
        self.chunks = chunks  # defaults for requests that carry no x-fake-* header
        self.chunk_gap_ms = chunk_gap_ms


STATE = web.AppKey("cf_fake_llm_state", FakeState)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


# --- responding ---------------------------------------------------------------------


async def _json_reply(
    request: web.Request, knobs: Knobs, status: int, payload: Any, headers: dict[str, str]
) -> web.StreamResponse:
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", **headers}
    if knobs.gzip:
        body = zlib.compress(body, wbits=31)  # wbits=31: the gzip wrapper
        headers["Content-Encoding"] = "gzip"
    if knobs.no_length:
        resp = web.StreamResponse(status=status, headers=headers)
        await resp.prepare(request)
        half = len(body) // 2
        await resp.write(body[:half])
        await resp.write(body[half:])
        await resp.write_eof()
        return resp
    return web.Response(status=status, body=body, headers=headers)


async def _stream_reply(
    request: web.Request,
    knobs: Knobs,
    events: Callable[[], AsyncIterator[bytes]],
    headers: dict[str, str],
    entry: dict[str, Any],
    content_type: str = "text/event-stream",
) -> web.StreamResponse:
    headers = {"Content-Type": content_type, "Cache-Control": "no-cache", **headers}
    gz = None
    if knobs.gzip:
        gz = zlib.compressobj(wbits=31)
        headers["Content-Encoding"] = "gzip"
    resp = web.StreamResponse(status=200, headers=headers)
    await resp.prepare(request)
    try:
        async for frame in events():
            data = frame
            if gz is not None:
                data = gz.compress(frame) + gz.flush(zlib.Z_SYNC_FLUSH)
            await resp.write(data)
        if gz is not None:
            await resp.write(gz.flush())
        await resp.write_eof()
        entry["outcome"] = "completed"
    except _Drop:
        entry["outcome"] = "dropped"
        if request.transport is not None:
            request.transport.abort()
    except (asyncio.CancelledError, ConnectionResetError):
        entry["outcome"] = "client_closed"
        raise
    return resp


class _Drop(Exception):
    """x-fake-drop-after: break the connection mid-stream."""


async def _pace(knobs: Knobs, index: int) -> None:
    """Between pieces: the gap, and the drop/hang behaviours."""
    if knobs.drop_after is not None and index >= knobs.drop_after:
        raise _Drop
    if knobs.hang_after is not None and index >= knobs.hang_after:
        await asyncio.Event().wait()
    if knobs.gap_s and index:
        await asyncio.sleep(knobs.gap_s)


def _stamp(knobs: Knobs, obj: dict[str, Any]) -> dict[str, Any]:
    if knobs.stamp:
        obj["fake_ts"] = time.time()
    return obj


# --- Anthropic Messages ---------------------------------------------------------------


def _sse(event: str | None, obj: Any) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {_dumps(obj)}\n\n".encode()


async def anthropic_messages(request: web.Request, body: Any, entry: dict) -> web.StreamResponse:
    knobs = _knobs(request, "anthropic", body)
    model = body.get("model", "claude-fake") if isinstance(body, dict) else "claude-fake"
    rid = "req_fake_" + uuid.uuid4().hex[:20]
    headers = {"request-id": rid}
    if knobs.status:
        if knobs.retry_after:
            headers["retry-after"] = knobs.retry_after
        kind = ANTHROPIC_ERRORS.get(knobs.status, "api_error")
        err = {"type": "error", "error": {"type": kind, "message": f"fake {kind}"}}
        return await _json_reply(request, knobs, knobs.status, err, headers)
    usage_in = {
        "input_tokens": _count_tokens(_prompt_text(body)),
        "cache_creation_input_tokens": knobs.cache_write,
        "cache_read_input_tokens": knobs.cache_read,
    }
    out_tokens = _count_tokens(knobs.reply) + knobs.reasoning
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
        return await _json_reply(request, knobs, 200, payload, headers)

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
        yield _sse("message_start", {"type": "message_start", "message": start})
        block = {"type": "text", "text": ""}
        yield _sse(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": block},
        )
        yield _sse("ping", {"type": "ping"})
        for i, piece in enumerate(_pieces(knobs.reply, knobs.chunks)):
            await _pace(knobs, i)
            delta = {"type": "text_delta", "text": piece}
            yield _sse(
                "content_block_delta",
                _stamp(knobs, {"type": "content_block_delta", "index": 0, "delta": delta}),
            )
            if knobs.stream_error and i == 0:
                err = {"type": "overloaded_error", "message": "Overloaded"}
                yield _sse("error", {"type": "error", "error": err})
                return
        await _pace(knobs, knobs.chunks)
        yield _sse("content_block_stop", {"type": "content_block_stop", "index": 0})
        yield _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": out_tokens},
            },
        )
        yield _sse("message_stop", {"type": "message_stop"})

    return await _stream_reply(request, knobs, events, headers, entry)


# --- OpenAI Chat Completions (and OpenRouter) --------------------------------------------


async def openai_chat(request: web.Request, body: Any, entry: dict) -> web.StreamResponse:
    knobs = _knobs(request, "openai", body)
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
        return await _json_reply(request, knobs, knobs.status, err, headers)
    prompt = _count_tokens(_prompt_text(body)) + knobs.cache_read
    completion = _count_tokens(knobs.reply) + knobs.reasoning
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
        return await _json_reply(request, knobs, 200, payload, headers)
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
        return f"data: {_dumps(_stamp(knobs, obj))}\n\n".encode()

    async def events() -> AsyncIterator[bytes]:
        first = {"role": "assistant", "content": "", "refusal": None}
        yield chunk([{"index": 0, "delta": first, "logprobs": None, "finish_reason": None}])
        for i, piece in enumerate(_pieces(knobs.reply, knobs.chunks)):
            await _pace(knobs, i)
            yield chunk(
                [{"index": 0, "delta": {"content": piece}, "logprobs": None, "finish_reason": None}]
            )
            if knobs.stream_error and i == 0:
                err = {"message": "fake mid-stream error", "type": "server_error", "code": 502}
                yield f"data: {_dumps({'error': err})}\n\n".encode()
                return
        await _pace(knobs, knobs.chunks)
        yield chunk([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}])
        if include_usage:
            yield chunk([], usage=usage)
        yield b"data: [DONE]\n\n"

    return await _stream_reply(request, knobs, events, headers, entry)


# --- Gemini ----------------------------------------------------------------------------


async def gemini_generate(request: web.Request, body: Any, entry: dict) -> web.StreamResponse:
    model, _, action = request.match_info["model_action"].partition(":")
    knobs = _knobs(request, "gemini", body)
    headers: dict[str, str] = {}
    if action not in ("generateContent", "streamGenerateContent"):
        err = {"error": {"code": 404, "message": f"unknown method {action}", "status": "NOT_FOUND"}}
        return await _json_reply(request, knobs, 404, err, headers)
    if knobs.status:
        if knobs.retry_after:
            headers["retry-after"] = knobs.retry_after
        status = GEMINI_STATUS.get(knobs.status, "INTERNAL")
        err = {"error": {"code": knobs.status, "message": f"fake {status}", "status": status}}
        return await _json_reply(request, knobs, knobs.status, err, headers)
    prompt = _count_tokens(_prompt_text(body)) + knobs.cache_read
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
        return _stamp(
            knobs,
            {
                "candidates": [cand],
                "usageMetadata": usage(candidates),
                "modelVersion": model,
                "responseId": response_id,
            },
        )

    if action == "generateContent":
        payload = message(knobs.reply, True, _count_tokens(knobs.reply))
        return await _json_reply(request, knobs, 200, payload, headers)
    sse = request.query.get("alt") == "sse"
    pieces = _pieces(knobs.reply, knobs.chunks)

    async def events() -> AsyncIterator[bytes]:
        so_far = ""
        if not sse:
            yield b"["
        for i, piece in enumerate(pieces):
            await _pace(knobs, i)
            so_far += piece
            obj = message(piece, i == len(pieces) - 1, _count_tokens(so_far))
            if knobs.stream_error and i == 0:
                obj = {"error": {"code": 503, "message": "fake overload", "status": "UNAVAILABLE"}}
            if sse:
                yield f"data: {_dumps(obj)}\r\n\r\n".encode()
            else:
                yield (b"," if i else b"") + _dumps(obj).encode() + b"\r\n"
            if knobs.stream_error:
                break
        if not sse:
            yield b"]"

    ctype = "text/event-stream" if sse else "application/json"
    return await _stream_reply(request, knobs, events, headers, entry, ctype)


# --- the app ---------------------------------------------------------------------------


def _route(handler: Callable[..., Any]) -> Callable[[web.Request], Any]:
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
        delay = _int_header(request, "x-fake-delay-ms", 0) or 0
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
    app.router.add_post("/v1/messages", _route(anthropic_messages))
    app.router.add_post("/v1/chat/completions", _route(openai_chat))
    app.router.add_post("/api/v1/chat/completions", _route(openai_chat))  # OpenRouter's own path
    app.router.add_post("/chat/completions", _route(openai_chat))  # a base URL without /v1
    app.router.add_post("/v1beta/models/{model_action}", _route(gemini_generate))
    return app
