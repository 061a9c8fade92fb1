"""Side parsers: what a record keeps of a response (final text, stop reason,
usage), read from a copy of the bytes after they went to the client.

A stream is never delayed by these: the proxy writes each chunk first and
feeds it here afterwards. Buffers are bounded (an event larger than
`MAX_EVENT` is skipped, the text kept is cut at the body cap).
"""

from __future__ import annotations

import contextlib
import functools
import time
import zlib
from collections.abc import Callable
from typing import Any

from cfproxies.jsoncodec import loads
from cfproxies.record import Usage, usage_anthropic, usage_gemini, usage_openai

MAX_EVENT = 4 * 1024 * 1024  # one SSE event; larger ones are skipped, not buffered
MAX_JSON_STREAM = 16 * 1024 * 1024
MAX_TOOLS = 128  # tool calls kept per response  # a Gemini JSON-array stream kept for parsing


def decoder_for(encoding: str | None) -> Any:
    """A zlib decompressor for a Content-Encoding, or None for identity."""
    enc = (encoding or "").strip().lower()
    if enc in ("gzip", "x-gzip"):
        return zlib.decompressobj(wbits=31)
    if enc == "deflate":
        return zlib.decompressobj(wbits=47)  # zlib or gzip wrapper, auto-detected
    return None


def decode_body(raw: bytes, encoding: str | None) -> bytes:
    """A whole body decoded for parsing; undecodable bytes are returned as-is."""
    decoder = decoder_for(encoding)
    if decoder is None:
        return raw
    try:
        return decoder.decompress(raw) + decoder.flush()
    except zlib.error:
        return raw


def parse_json_body(raw: bytes, content_type: str) -> Any:
    """A body parsed as JSON when it says (or looks like) it is; else None."""
    if not raw or ("json" not in content_type and raw[:1] not in (b"{", b"[")):
        return None
    try:
        return loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None


def _tolerant(method: Callable[..., None]) -> Callable[..., None]:
    """A reader's `event`/`body` that skips a payload of a shape it does not
    expect (a string where an object goes, a number for text) and counts it,
    instead of raising out of the relay loop: the bytes already went to the
    client, and the record must still be written (found by tests/fuzz)."""

    @functools.wraps(method)
    def read(self: Reassembly, *args: Any) -> None:
        try:
            method(self, *args)
        except (AttributeError, TypeError, ValueError):
            self.malformed += 1

    return read


class Reassembly:
    """What a response comes to, whichever provider sent it."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.text: list[str] = []
        self.text_len = 0
        self.thinking: list[str] = []
        self.tools: list[dict[str, Any]] = []
        self.stop_reason: str | None = None
        self.usage: Usage | None = None
        self.usage_final = False  # the provider's last word on usage was seen
        self.model: str | None = None
        self.response_id: str | None = None
        self.error: str | None = None
        self.finished = False  # the provider's end-of-stream marker was seen
        self.first_content_at: float | None = None
        self.events = 0
        self.malformed = 0  # payloads of an unexpected shape, skipped
        self.truncated = False

    def add_text(self, piece: str, into: list[str] | None = None) -> None:
        if not piece or not isinstance(piece, str):
            return
        if self.first_content_at is None:
            self.first_content_at = time.perf_counter()
        room = self.cap - self.text_len
        if room <= 0:
            self.truncated = True
            return
        if len(piece) > room:
            piece, self.truncated = piece[:room], True
        self.text_len += len(piece)
        (self.text if into is None else into).append(piece)

    def new_tool(self, name: Any, arguments: Any = "") -> None:
        if len(self.tools) >= MAX_TOOLS:
            self.truncated = True
            return
        self.tools.append({"name": name, "arguments": arguments})

    def add_arguments(self, tool: dict[str, Any], piece: str) -> None:
        """Streamed tool-call arguments, counted against the same cap as text."""
        if not isinstance(piece, str):
            return
        if self.first_content_at is None:
            self.first_content_at = time.perf_counter()
        room = self.cap - self.text_len
        if len(piece) > room:
            piece, self.truncated = piece[: max(room, 0)], True
        self.text_len += len(piece)
        tool["arguments"] = (tool.get("arguments") or "") + piece

    @property
    def usage_status(self) -> str:
        if self.usage is None:
            return "missing" if self.finished else "partial"
        return "complete" if self.usage_final or self.finished else "partial"

    def as_response(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.response_id,
            "model": self.model,
            "text": "".join(self.text),
            "stop_reason": self.stop_reason,
            "usage": self.usage.raw if self.usage else None,
        }
        if self.thinking:
            out["thinking"] = "".join(self.thinking)
        if self.tools:
            out["tool_calls"] = self.tools
        if self.error:
            out["error"] = self.error
        return out


def _error_text(err: Any) -> str:
    if isinstance(err, dict):
        kind = err.get("type") or err.get("status") or err.get("code") or "error"
        return f"{kind}: {err.get('message', '')}".strip().rstrip(":")
    return str(err)


# --- per-dialect readers ---------------------------------------------------------


class AnthropicReader(Reassembly):
    _usage: dict[str, Any] | None = None

    def _merge_usage(self, usage: Any, final: bool) -> None:
        if not isinstance(usage, dict):
            return
        # message_delta usage is cumulative: its fields replace, never add to, the earlier ones.
        merged = dict(self._usage or {})
        merged.update({k: v for k, v in usage.items() if v is not None})
        self._usage = merged
        self.usage = usage_anthropic(merged)
        self.usage_final = self.usage_final or final

    @_tolerant
    def event(self, name: str | None, data: Any) -> None:
        if not isinstance(data, dict):
            return
        kind = data.get("type") or name
        if kind == "message_start":
            msg = data.get("message") or {}
            self.response_id = msg.get("id")
            self.model = msg.get("model")
            self._merge_usage(msg.get("usage"), final=False)
        elif kind == "content_block_start":
            block = data.get("content_block") or {}
            if block.get("type") == "tool_use":
                self.new_tool(block.get("name"))
            elif block.get("type") == "text":
                self.add_text(block.get("text") or "")
        elif kind == "content_block_delta":
            delta = data.get("delta") or {}
            dtype = delta.get("type")
            if dtype == "text_delta":
                self.add_text(delta.get("text") or "")
            elif dtype == "thinking_delta":
                self.add_text(delta.get("thinking") or "", self.thinking)
            elif dtype == "input_json_delta" and self.tools:
                self.add_arguments(self.tools[-1], delta.get("partial_json") or "")
        elif kind == "message_delta":
            delta = data.get("delta") or {}
            if delta.get("stop_reason"):
                self.stop_reason = delta["stop_reason"]
            self._merge_usage(data.get("usage"), final=True)
        elif kind == "message_stop":
            self.finished = True
        elif kind == "error":
            self.error = _error_text(data.get("error"))

    @_tolerant
    def body(self, data: Any) -> None:
        if not isinstance(data, dict):
            return
        if data.get("type") == "error":
            self.error = _error_text(data.get("error"))
            return
        self.response_id, self.model = data.get("id"), data.get("model")
        for block in data.get("content") or []:
            if isinstance(block, dict) and block.get("type") == "text":
                self.add_text(block.get("text") or "")
            elif isinstance(block, dict) and block.get("type") == "tool_use":
                self.new_tool(block.get("name"), block.get("input"))
        self.stop_reason = data.get("stop_reason")
        self._merge_usage(data.get("usage"), final=True)
        self.finished = True


class OpenAIReader(Reassembly):
    """Chat Completions (OpenAI, OpenRouter and compatibles) and the Responses API."""

    def _usage(self, usage: Any) -> None:
        if isinstance(usage, dict) and usage:
            self.usage = usage_openai(usage)
            self.usage_final = True

    @_tolerant
    def event(self, name: str | None, data: Any) -> None:
        if data == "[DONE]":
            self.finished = True
            return
        if not isinstance(data, dict):
            return
        if data.get("error"):
            self.error = _error_text(data["error"])
        kind = data.get("type")
        if isinstance(kind, str) and kind.startswith("response."):
            self._responses_event(kind, data)
            return
        self.response_id = self.response_id or data.get("id")
        self.model = data.get("model") or self.model
        for choice in data.get("choices") or []:  # `choices: null` from some servers
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta") or {}
            self.add_text(delta.get("content") or "")
            reasoning = delta.get("reasoning") or delta.get("reasoning_content")
            if isinstance(reasoning, str):
                self.add_text(reasoning, self.thinking)
            for call in delta.get("tool_calls") or []:
                self._tool_delta(call)
            if choice.get("finish_reason"):
                self.stop_reason = choice["finish_reason"]
        self._usage(data.get("usage"))

    def _tool_delta(self, call: Any) -> None:
        if not isinstance(call, dict):
            return
        fn = call.get("function") or {}
        index = call.get("index", len(self.tools))
        if not isinstance(index, int) or not 0 <= index < MAX_TOOLS:
            self.truncated = True
            return
        while len(self.tools) <= index:
            self.new_tool(None)
        if fn.get("name"):
            self.tools[index]["name"] = fn["name"]
        self.add_arguments(self.tools[index], fn.get("arguments") or "")

    def _responses_event(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "response.output_text.delta":
            self.add_text(data.get("delta") or "")
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            resp = data.get("response") or {}
            self.response_id, self.model = resp.get("id"), resp.get("model")
            self.stop_reason = resp.get("status")
            self._usage(resp.get("usage"))
            if resp.get("error"):
                self.error = _error_text(resp["error"])
            self.finished = True
        elif kind == "response.created":
            resp = data.get("response") or {}
            self.response_id, self.model = resp.get("id"), resp.get("model")

    @_tolerant
    def body(self, data: Any) -> None:
        if not isinstance(data, dict):
            return
        if data.get("error"):
            self.error = _error_text(data["error"])
        self.response_id, self.model = data.get("id"), data.get("model")
        for choice in data.get("choices") or []:
            msg = choice.get("message") or {} if isinstance(choice, dict) else {}
            content = msg.get("content")
            if isinstance(content, list):
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
            self.add_text(content or "")
            for call in msg.get("tool_calls") or []:
                fn = call.get("function") or {} if isinstance(call, dict) else {}
                self.new_tool(fn.get("name"), fn.get("arguments"))
            self.stop_reason = choice.get("finish_reason") or self.stop_reason
        for item in data.get("output") or []:  # Responses API
            for part in (item.get("content") or []) if isinstance(item, dict) else []:
                if isinstance(part, dict) and part.get("type") == "output_text":
                    self.add_text(part.get("text") or "")
        if data.get("object") == "response":
            self.stop_reason = data.get("status")
        self._usage(data.get("usage"))
        self.finished = True


class GeminiReader(Reassembly):
    @_tolerant
    def event(self, name: str | None, data: Any) -> None:
        if not isinstance(data, dict):
            return
        if data.get("error"):
            self.error = _error_text(data["error"])
            return
        self.model = data.get("modelVersion") or self.model
        self.response_id = data.get("responseId") or self.response_id
        for cand in data.get("candidates") or []:
            if not isinstance(cand, dict):
                continue
            for part in (cand.get("content") or {}).get("parts") or []:
                if not isinstance(part, dict):
                    continue
                if part.get("thought"):
                    self.add_text(part.get("text") or "", self.thinking)
                elif "functionCall" in part:
                    call = part["functionCall"] or {}
                    self.new_tool(call.get("name"), call.get("args"))
                else:
                    self.add_text(part.get("text") or "")
            if cand.get("finishReason"):
                self.stop_reason = cand["finishReason"]
                self.finished = True
        block = (data.get("promptFeedback") or {}).get("blockReason")
        if block:
            self.stop_reason, self.finished = f"blocked:{block}", True
        meta = data.get("usageMetadata")
        # Running totals: the last one wins, and a chunk without it changes nothing.
        if isinstance(meta, dict) and meta:
            self.usage = usage_gemini(meta)

    @_tolerant
    def body(self, data: Any) -> None:
        for item in data if isinstance(data, list) else [data]:
            self.event(None, item)
        self.finished = True
        self.usage_final = self.usage is not None


READERS: dict[str, type[Reassembly]] = {
    "anthropic": AnthropicReader,
    "openai": OpenAIReader,
    "gemini": GeminiReader,
}


def _json(data: bytes) -> Any:
    if data == b"[DONE]":
        return "[DONE]"
    try:
        return loads(data)
    except (ValueError, UnicodeDecodeError):
        return None


class StreamParser:
    """Feeds raw response chunks (in their content-encoding) to a reader:
    SSE is split into events at blank lines, anything else (Gemini's
    JSON-array stream) is kept, bounded, and parsed at the end."""

    def __init__(self, reader: Reassembly, sse: bool, encoding: str | None) -> None:
        self.reader = reader
        self.sse = sse
        self._decoder = decoder_for(encoding)
        self._buf = bytearray()
        self._event: str | None = None
        self._data: list[bytes] = []
        self._data_len = 0
        self._skipping = False
        self.overflow = False
        self.broken = False

    def feed(self, chunk: bytes) -> None:
        if self.broken:
            return
        if self._decoder is not None:
            try:
                chunk = self._decoder.decompress(chunk)
            except zlib.error:
                self.broken = True
                return
        if not self.sse:
            if len(self._buf) + len(chunk) > MAX_JSON_STREAM:
                self.overflow = True
                return
            self._buf += chunk
            return
        if b"\n" not in chunk:  # the middle of a line: keep it, bounded
            self._buf += chunk
        else:
            if self._buf:
                self._buf += chunk
                chunk = bytes(self._buf)
                self._buf.clear()
            lines = chunk.split(b"\n")
            rest = lines.pop()  # after the last newline: not a whole line yet
            for line in lines:
                self._line(line[:-1] if line[-1:] == b"\r" else line)
            self._buf += rest
        if len(self._buf) > MAX_EVENT:  # one endless line: drop it, not the process
            self._buf.clear()
            self._skipping = True
            self.overflow = True

    def _line(self, line: bytes) -> None:
        if not line:
            self._dispatch()
            return
        if self._skipping:
            return
        field_name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if field_name == b"data":
            self._data_len += len(value) + 1
            if self._data_len > MAX_EVENT:
                self._data.clear()
                self._skipping, self.overflow = True, True
                return
            self._data.append(value)
        elif field_name == b"event":
            self._event = value.decode("utf-8", "replace")

    def _dispatch(self) -> None:
        if self._data and not self._skipping:
            data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
            self.reader.events += 1
            self.reader.event(self._event, _json(data))
        self._event, self._data, self._data_len, self._skipping = None, [], 0, False

    def kept_body(self) -> bytes | None:
        """A stream that is not SSE, as kept for parsing (decoded); None for
        SSE, or when it outgrew MAX_JSON_STREAM."""
        return None if self.sse or self.overflow else bytes(self._buf)

    def close(self) -> Reassembly:
        """End of stream: flush what is complete and return the reassembly."""
        if not self.broken:
            if self.sse:
                if self._buf:
                    self._line(bytes(self._buf).rstrip(b"\r"))
                    self._buf.clear()
                self._dispatch()
            elif not self.overflow and self._buf:
                with contextlib.suppress(ValueError):
                    self.reader.body(loads(bytes(self._buf)))
        return self.reader
