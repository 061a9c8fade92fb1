"""The `x-fake-*` request headers that steer one answer (listed in
`cfproxies.fake_llm.app`), and what the answer is made of: the prompt's
last user turn, a token count, the reply cut into pieces."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from cfproxies.fake_llm.state import STATE


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


def int_header(request: web.Request, name: str, default: int | None = None) -> int | None:
    value = request.headers.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        return default


def prompt_text(body: Any) -> str:
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


def count_tokens(text: str) -> int:
    return max(1, len(text.split()))


def knobs_of(request: web.Request, provider: str, body: Any) -> Knobs:
    h = request.headers
    state = request.app[STATE]
    reply = h.get("x-fake-reply")
    size = int_header(request, "x-fake-reply-bytes")
    if size is not None:
        reply = ("lorem ipsum " * (size // 12 + 1))[:size]
    if reply is None:
        said = " ".join(prompt_text(body).split())[:200]
        reply = f"Hello from the fake {provider} model." + (f" You said: {said}" if said else "")
    accepts_gzip = "gzip" in h.get("accept-encoding", "").lower()
    return Knobs(
        reply=reply,
        chunks=max(1, int_header(request, "x-fake-chunks", state.chunks) or 1),
        gap_s=(int_header(request, "x-fake-chunk-gap-ms", state.chunk_gap_ms) or 0) / 1000.0,
        status=int_header(request, "x-fake-status"),
        retry_after=h.get("x-fake-retry-after"),
        stream_error=h.get("x-fake-stream-error") == "1",
        drop_after=int_header(request, "x-fake-drop-after"),
        hang_after=int_header(request, "x-fake-hang-after"),
        gzip=h.get("x-fake-gzip") == "1" and accepts_gzip,
        cache_read=int_header(request, "x-fake-cache-read", 0) or 0,
        cache_write=int_header(request, "x-fake-cache-write", 0) or 0,
        reasoning=int_header(request, "x-fake-reasoning", 0) or 0,
        no_length=h.get("x-fake-no-length") == "1",
        stamp=h.get("x-fake-stamp") == "1",
    )


def cut_in_pieces(text: str, n: int) -> list[str]:
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
