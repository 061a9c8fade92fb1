"""A call's prompt and answer in the shape the OpenTelemetry GenAI
conventions give `gen_ai.input.messages`, `gen_ai.system_instructions` and
`gen_ai.output.messages`: a list of `{role, parts: [{type, ...}]}`, from
each provider's own wire format (Anthropic Messages, OpenAI Chat
Completions and Responses, Gemini), taken from the call's record once it
is scrubbed (only with the operator's opt-in: telemetry.py).

Everything here is the agent's or the provider's JSON: any field may be
missing or of another type, and what is not understood becomes a part of
its own `type` with no content, never an exception."""

from __future__ import annotations

from typing import Any

Parts = list[dict[str, Any]]


def _text(content: str) -> dict[str, Any]:
    return {"type": "text", "content": content}


def _block(block: Any) -> dict[str, Any]:
    """One content block of any of the formats as a part."""
    if isinstance(block, str):
        return _text(block)
    if not isinstance(block, dict):
        return {"type": "unknown"}
    kind = block.get("type")
    text = block.get("text")
    if isinstance(text, str) and kind in (None, "text", "input_text", "output_text"):
        return _text(text)
    if kind == "tool_use" or "functionCall" in block:
        call = block.get("functionCall") if "functionCall" in block else block
        call = call if isinstance(call, dict) else {}
        return {
            "type": "tool_call",
            "id": block.get("id"),
            "name": call.get("name"),
            "arguments": call.get("input", call.get("args")),
        }
    if kind == "tool_result" or "functionResponse" in block:
        result = block.get("functionResponse", block)
        result = result if isinstance(result, dict) else {}
        return {
            "type": "tool_call_response",
            "id": block.get("tool_use_id"),
            "response": result.get("content", result.get("response")),
        }
    if kind == "thinking" and isinstance(block.get("thinking"), str):
        return {"type": "reasoning", "content": block["thinking"]}
    return {"type": kind if isinstance(kind, str) else "unknown"}


def _parts(content: Any) -> Parts:
    if isinstance(content, str):
        return [_text(content)]
    if isinstance(content, list):
        return [_block(b) for b in content]
    if content is None:
        return []
    return [_block(content)]


def _message(msg: Any) -> dict[str, Any]:
    if not isinstance(msg, dict):
        return {"role": "user", "parts": _parts(msg)}
    role = msg.get("role")
    parts = _parts(msg.get("content", msg.get("parts")))
    for call in msg.get("tool_calls") or []:  # OpenAI's assistant tool calls
        if isinstance(call, dict):
            fn = call.get("function")
            fn = fn if isinstance(fn, dict) else {}
            parts.append(
                {
                    "type": "tool_call",
                    "id": call.get("id"),
                    "name": fn.get("name"),
                    "arguments": fn.get("arguments"),
                }
            )
    return {"role": role if isinstance(role, str) else "user", "parts": parts}


def input_messages(request: Any) -> tuple[list[dict[str, Any]] | None, Parts | None]:
    """(the messages, the system instructions) of a request body; None for
    what it does not carry (or a body cut at the record's cap: not JSON)."""
    if not isinstance(request, dict):
        return None, None
    system: Parts | None = None
    if "system" in request:  # Anthropic
        system = _parts(request["system"])
    elif isinstance(request.get("systemInstruction"), dict):  # Gemini
        system = _parts(request["systemInstruction"].get("parts"))
    elif isinstance(request.get("instructions"), str):  # OpenAI Responses
        system = [_text(request["instructions"])]
    raw = request.get("messages", request.get("contents", request.get("input")))
    if raw is None:
        return None, system
    if isinstance(raw, str):
        return [{"role": "user", "parts": [_text(raw)]}], system
    if not isinstance(raw, list):
        return None, system
    return [_message(m) for m in raw], system


def output_messages(response: Any, streamed: bool) -> list[dict[str, Any]] | None:
    """The answer as output messages: a streamed call's reassembly
    (`{text, thinking, tool_calls, stop_reason}`) or a provider's body."""
    if not isinstance(response, dict):
        return None
    if streamed:
        parts: Parts = []
        if isinstance(response.get("thinking"), str):
            parts.append({"type": "reasoning", "content": response["thinking"]})
        if isinstance(response.get("text"), str) and response["text"]:
            parts.append(_text(response["text"]))
        for tool in response.get("tool_calls") or []:
            if isinstance(tool, dict):
                parts.append(
                    {
                        "type": "tool_call",
                        "name": tool.get("name"),
                        "arguments": tool.get("arguments"),
                    }
                )
        return [_answer(parts, response.get("stop_reason"))]
    if isinstance(response.get("content"), list):  # Anthropic
        return [_answer(_parts(response["content"]), response.get("stop_reason"))]
    if isinstance(response.get("choices"), list):  # OpenAI Chat Completions
        out = []
        for choice in response["choices"]:
            if isinstance(choice, dict):
                msg = _message(choice.get("message"))
                msg["finish_reason"] = choice.get("finish_reason")
                out.append(msg)
        return out
    if isinstance(response.get("candidates"), list):  # Gemini
        out = []
        for cand in response["candidates"]:
            if isinstance(cand, dict):
                msg = _message(cand.get("content"))
                msg["role"] = "assistant"
                msg["finish_reason"] = cand.get("finishReason")
                out.append(msg)
        return out
    if isinstance(response.get("output"), list):  # OpenAI Responses
        out = []
        for item in response["output"]:
            if isinstance(item, dict) and item.get("type") == "message":
                out.append(_message(item))
        return out
    return None


def _answer(parts: Parts, finish: Any) -> dict[str, Any]:
    return {"role": "assistant", "parts": parts, "finish_reason": finish}
