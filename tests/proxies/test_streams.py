"""The side parsers on their own: framing split anywhere, each provider's
events, tool calls, refusals and the bounds that keep memory flat."""

from __future__ import annotations

import gzip
import json

import pytest
from cfproxies.llm_proxy.streams import (
    MAX_EVENT,
    AnthropicReader,
    GeminiReader,
    OpenAIReader,
    StreamParser,
)


def _sse(*events: tuple[str | None, object], crlf: bool = False) -> bytes:
    nl = "\r\n" if crlf else "\n"
    out = ""
    for name, data in events:
        if name:
            out += f"event: {name}{nl}"
        out += f"data: {data if isinstance(data, str) else json.dumps(data)}{nl}{nl}"
    return out.encode()


ANTHROPIC_TOOL_STREAM = _sse(
    (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "m1",
                "model": "c",
                "usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 1},
            },
        },
    ),
    (
        "content_block_start",
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "thinking", "thinking": ""},
        },
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "hmm"},
        },
    ),
    (
        "content_block_start",
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "tool_use", "name": "search", "input": {}},
        },
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"q": '},
        },
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '"cats"}'},
        },
    ),
    (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 7},
        },
    ),
    ("message_delta", {"type": "message_delta", "delta": {}, "usage": {"output_tokens": 9}}),
    ("unknown_future_event", {"type": "unknown_future_event"}),
    ("message_stop", {"type": "message_stop"}),
)


@pytest.mark.parametrize("step", [1, 3, 7, 64, 100_000])
def test_events_split_across_reads_at_any_byte_are_reassembled(step):
    parser = StreamParser(AnthropicReader(10_000), sse=True, encoding=None)
    for i in range(0, len(ANTHROPIC_TOOL_STREAM), step):
        parser.feed(ANTHROPIC_TOOL_STREAM[i : i + step])
    r = parser.close()
    assert r.tools == [{"name": "search", "arguments": '{"q": "cats"}'}]
    assert "".join(r.thinking) == "hmm"
    assert r.stop_reason == "tool_use"
    # message_delta usage is cumulative: the last one wins, never the sum.
    assert (r.usage.tokens_in, r.usage.tokens_out, r.usage.cache_read) == (15, 9, 5)
    assert r.usage_status == "complete"


def test_crlf_framing_and_gzip_are_handled():
    body = _sse(
        (
            None,
            {
                "candidates": [{"content": {"parts": [{"text": "a"}]}}],
                "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1},
            },
        ),
        (None, {"candidates": [{"content": {"parts": [{"text": "b"}]}, "finishReason": "STOP"}]}),
        crlf=True,
    )
    parser = StreamParser(GeminiReader(100), sse=True, encoding="gzip")
    packed = gzip.compress(body)
    for i in range(0, len(packed), 5):
        parser.feed(packed[i : i + 5])
    r = parser.close()
    assert "".join(r.text) == "ab"
    # A chunk without usageMetadata does not zero the running totals.
    assert (r.usage.tokens_in, r.usage.tokens_out) == (3, 1)
    assert r.stop_reason == "STOP"


def test_gemini_refusal_is_the_stop_reason():
    r = GeminiReader(100)
    r.body({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 4}})
    assert r.stop_reason == "blocked:SAFETY"
    assert r.usage.tokens_in == 4


def test_openai_tool_calls_and_null_choices():
    body = _sse(
        (
            None,
            {
                "id": "c1",
                "model": "g",
                "choices": [
                    {
                        "index": 0,
                        "delta": {
                            "tool_calls": [
                                {"index": 0, "function": {"name": "f", "arguments": '{"a"'}}
                            ]
                        },
                    }
                ],
            },
        ),
        (
            None,
            {
                "id": "c1",
                "choices": [
                    {
                        "index": 0,
                        "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]},
                        "finish_reason": "tool_calls",
                    }
                ],
            },
        ),
        (
            None,
            {"id": "c1", "choices": None, "usage": {"prompt_tokens": 5, "completion_tokens": 2}},
        ),
        (None, "[DONE]"),
    )
    parser = StreamParser(OpenAIReader(100), sse=True, encoding=None)
    parser.feed(body)
    r = parser.close()
    assert r.tools == [{"name": "f", "arguments": '{"a": 1}'}]
    assert r.stop_reason == "tool_calls"
    assert (r.usage.tokens_in, r.usage.tokens_out) == (5, 2)
    assert r.finished and r.usage_status == "complete"


def test_openai_responses_api_stream():
    body = _sse(
        ("response.created", {"type": "response.created", "response": {"id": "r1", "model": "g"}}),
        ("response.output_text.delta", {"type": "response.output_text.delta", "delta": "hi"}),
        (
            "response.completed",
            {
                "type": "response.completed",
                "response": {
                    "id": "r1",
                    "model": "g",
                    "status": "completed",
                    "usage": {
                        "input_tokens": 8,
                        "input_tokens_details": {"cached_tokens": 2},
                        "output_tokens": 3,
                        "output_tokens_details": {"reasoning_tokens": 1},
                    },
                },
            },
        ),
    )
    parser = StreamParser(OpenAIReader(100), sse=True, encoding=None)
    parser.feed(body)
    r = parser.close()
    assert "".join(r.text) == "hi"
    assert (r.usage.tokens_in, r.usage.cache_read, r.usage.tokens_out) == (8, 2, 3)
    assert r.stop_reason == "completed"


def test_stream_cut_before_usage_is_partial_and_without_end_marker():
    parser = StreamParser(OpenAIReader(100), sse=True, encoding=None)
    parser.feed(_sse((None, {"choices": [{"index": 0, "delta": {"content": "x"}}]})))
    assert parser.close().usage_status == "partial"


def test_oversized_event_is_skipped_without_buffering_it_all():
    parser = StreamParser(AnthropicReader(100), sse=True, encoding=None)
    parser.feed(b"data: " + b"x" * (MAX_EVENT + 10))
    assert len(parser._buf) == 0 and parser.overflow
    parser.feed(b"\n\n" + _sse(("message_stop", {"type": "message_stop"})))
    assert parser.close().finished


def test_text_and_tool_arguments_are_kept_to_the_cap():
    r = OpenAIReader(10)
    for _ in range(5):
        r.event(None, {"choices": [{"index": 0, "delta": {"content": "abcd"}}]})
    r.event(
        None,
        {
            "choices": [
                {"index": 0, "delta": {"tool_calls": [{"index": 10**9, "function": {"name": "x"}}]}}
            ]
        },
    )
    assert "".join(r.text) == "abcdabcdab"
    assert r.truncated and r.tools == []
