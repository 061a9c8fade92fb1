"""The LLM proxy's side parsers on hostile bytes (issue 15, fuzzing).

They read a copy of what the upstream sent after it went to the client; a
shape they did not expect used to raise out of the relay loop, cutting the
agent's stream and losing the call's record. Properties: every payload of
any shape is read without raising, within the text cap; the SSE framing
gives the same reassembly however the bytes are chunked; arbitrary bytes,
compressed or not, never raise. The examples found by fuzzing are kept.
"""

from __future__ import annotations

import gzip
import json
import zlib

import pytest
from cfproxies.jsoncodec import dumps_line, loads
from cfproxies.llm_proxy.streams import READERS, StreamParser
from cfproxies.record import usage_anthropic, usage_gemini, usage_openai
from hypothesis import given
from hypothesis import strategies as st

from .strategies import FUZZ, chunked, provider_json

CAP = 64
DIALECTS = sorted(READERS)


def _checked(reader) -> dict:
    """What the proxy takes from a reader into its record: it must not raise."""
    out = reader.as_response()
    assert isinstance(out["text"], str) and isinstance(out.get("thinking", ""), str)
    assert reader.text_len <= reader.cap
    assert reader.usage_status in ("missing", "partial", "complete")
    if reader.usage is not None:
        assert min(reader.usage.tokens_in, reader.usage.tokens_out) >= 0
    dumps_line({"response": out})  # the record line can be written
    return out


@FUZZ
@given(dialect=st.sampled_from(DIALECTS), payloads=st.lists(provider_json, max_size=4))
def test_any_payload_shape_is_read_without_raising(dialect: str, payloads: list) -> None:
    reader = READERS[dialect](CAP)
    for i, payload in enumerate(payloads):
        reader.event("message_start" if i % 2 else None, payload)
    reader.body(payloads[-1] if payloads else None)
    _checked(reader)


def _sse(events: list[tuple[str | None, object]], crlf: bool) -> bytes:
    nl = "\r\n" if crlf else "\n"
    out = ""
    for name, data in events:
        if name:
            out += f"event: {name}{nl}"
        for line in json.dumps(data).split("\n"):
            out += f"data: {line}{nl}"
        out += nl
    return out.encode()


@FUZZ
@given(
    dialect=st.sampled_from(DIALECTS),
    events=st.lists(st.tuples(st.none() | st.sampled_from(["message_start", "x"]), provider_json)),
    crlf=st.booleans(),
    data=st.data(),
)
def test_sse_reassembly_does_not_depend_on_chunking(dialect, events, crlf, data) -> None:
    raw = _sse(events, crlf)
    whole = StreamParser(READERS[dialect](CAP), sse=True, encoding=None)
    whole.feed(raw)
    pieces = StreamParser(READERS[dialect](CAP), sse=True, encoding=None)
    for piece in data.draw(chunked(raw)):
        pieces.feed(piece)
    assert json.dumps(_checked(whole.close()), default=str) == json.dumps(
        _checked(pieces.close()), default=str
    )
    assert whole.reader.events == pieces.reader.events == len(events)


@FUZZ
@given(
    dialect=st.sampled_from(DIALECTS),
    sse=st.booleans(),
    encoding=st.sampled_from([None, "gzip", "deflate", "br"]),
    blob=st.binary(max_size=600),
    compress=st.booleans(),
    data=st.data(),
)
def test_arbitrary_bytes_never_raise(dialect, sse, encoding, blob, compress, data) -> None:
    if compress and encoding == "gzip":
        blob = gzip.compress(blob)
    elif compress and encoding == "deflate":
        blob = zlib.compress(blob)
    parser = StreamParser(READERS[dialect](CAP), sse=sse, encoding=encoding)
    for piece in data.draw(chunked(blob)):
        parser.feed(piece)
    _checked(parser.close())


# --- found by fuzzing: each raised out of the relay loop before the fix ----------

FOUND = [
    ("anthropic", {"type": "message_start", "message": "x"}),
    ("anthropic", {"type": "content_block_start", "content_block": [1]}),
    ("anthropic", {"type": "content_block_delta", "delta": {"type": "text_delta", "text": 5}}),
    ("anthropic", {"type": "content_block_delta", "delta": {"type": "text_delta", "text": ["a"]}}),
    ("anthropic", {"type": "message_delta", "delta": "x"}),
    ("anthropic", {"content": [{"type": "text", "text": {"a": 1}}], "usage": 1}),
    ("openai", {"choices": [{"delta": "x"}]}),
    ("openai", {"choices": [{"delta": {"tool_calls": [{"function": "x"}]}}]}),
    ("openai", {"choices": 5}),
    ("openai", {"choices": [{"message": {"content": [{"text": 1}]}}]}),
    ("openai", {"type": "response.completed", "response": "x"}),
    ("openai", {"output": [{"content": 1}]}),
    ("gemini", {"candidates": [{"content": [1]}]}),
    ("gemini", {"candidates": [{"content": {"parts": [{"functionCall": "x"}]}}]}),
    ("gemini", {"promptFeedback": "x"}),
    ("gemini", {"candidates": 3}),
]


@pytest.mark.parametrize(("dialect", "payload"), FOUND)
def test_payloads_found_by_fuzzing_are_skipped_not_raised(dialect: str, payload: dict) -> None:
    for feed in ("event", "body"):
        reader = READERS[dialect](CAP)
        if feed == "event":
            reader.event(None, payload)
        else:
            reader.body(payload)
        _checked(reader)


@pytest.mark.parametrize("usage", [usage_anthropic, usage_openai, usage_gemini])
@pytest.mark.parametrize("count", [float("inf"), float("-inf"), float("nan"), 1e300])
def test_token_counts_that_are_not_finite_count_zero(usage, count) -> None:
    keys = ("input_tokens", "output_tokens", "prompt_tokens", "completion_tokens")
    got = usage({**dict.fromkeys(keys, count), "promptTokenCount": count})
    assert got.tokens_in >= 0 and got.tokens_out >= 0


def test_json_nested_deeper_than_the_parser_goes_is_a_value_error() -> None:
    """orjson stops at 1024 levels and the stdlib fallback used to recurse
    until RecursionError: now both say ValueError, which every caller handles."""
    with pytest.raises(ValueError):
        loads(b"[" * 100_000)
    parser = StreamParser(READERS["gemini"](CAP), sse=False, encoding=None)
    parser.feed(b"[" * 100_000)
    _checked(parser.close())
    sse = StreamParser(READERS["openai"](CAP), sse=True, encoding=None)
    sse.feed(b"data: " + b"[" * 100_000 + b"\n\n")
    _checked(sse.close())


def test_the_stream_atheris_found_is_reassembled() -> None:
    """`make fuzz` (streams), against the code before the fix: a text delta
    whose text is an object went into the text and broke the join."""
    sse = (
        b'data: {"type": "message_start", "message": {"id": "m", "model": "c", "usage": {}}}\n\n'
        b'data: {"type": "content_block_start", "content_block": {"type": "tool_use", "name": "t"}}'
        b'\n\ndata: {"type": "content_block_delta", "delta": {"type": "text_delta", "text": '
        b'{"input_tokens": 1}}}\n\n'
        b'data: {"candidates": [{"content": {"parts": [{"text": "g"}]}}], "usageMetadata": {}}\n\n'
    )
    parser = StreamParser(READERS["anthropic"](CAP), sse=True, encoding=None)
    for at in range(0, len(sse), 10):
        parser.feed(sse[at : at + 10])
    out = _checked(parser.close())
    assert out["id"] == "m" and out["tool_calls"] == [{"name": "t", "arguments": ""}]
