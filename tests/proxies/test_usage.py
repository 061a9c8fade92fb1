"""Usage in the record for each provider, streamed or not, normalised as
CONTRACTS §3 says (tokens_in includes cache tokens, tokens_out reasoning)."""

from __future__ import annotations

import json

import pytest
from cfproxies.record import REQUIRED_KEYS

from tests.proxies.proxyhelpers import (
    AUTH,
    BEARER,
    GOOG,
    anthropic_body,
    gemini_body,
    openai_body,
    sse_events,
)

USAGE = {"x-fake-cache-read": "7", "x-fake-cache-write": "3"}


async def _call(client, url, body, headers):
    async with client.post(url, json=body, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.read()


@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_usage_counts_cache_tokens_in_tokens_in(start_proxy, client, stream):
    proxy = await start_proxy()
    raw = await _call(
        client,
        f"{proxy.url}/anthropic/v1/messages",
        anthropic_body(stream=stream, text="one two three"),
        {**AUTH, **USAGE},
    )
    (rec,) = await proxy.wait_records(1)
    assert set(REQUIRED_KEYS) <= set(rec)
    # The fake counts words: 3 prompt tokens, plus 7 read and 3 written from cache.
    assert rec["tokens_in"] == 3 + 7 + 3
    assert rec["cache_read"] == 7
    assert rec["cache_write"] == 3
    if stream:
        events = sse_events(raw)
        final = next(e for e in events if e["type"] == "message_delta")
        assert rec["tokens_out"] == final["usage"]["output_tokens"]
    else:
        assert rec["tokens_out"] == json.loads(raw)["usage"]["output_tokens"]
    assert rec["usage_status"] == "complete"
    assert rec["stream"] is stream


@pytest.mark.parametrize("provider", ["openai", "openrouter"])
@pytest.mark.parametrize("stream", [False, True])
async def test_openai_usage_streamed_with_include_usage_or_not(
    start_proxy, client, provider, stream
):
    proxy = await start_proxy()
    raw = await _call(
        client,
        f"{proxy.url}/{provider}/v1/chat/completions",
        openai_body(stream=stream, text="a b c d"),
        {**BEARER, "x-fake-cache-read": "2", "x-fake-reasoning": "5"},
    )
    (rec,) = await proxy.wait_records(1)
    assert rec["tokens_in"] == 4 + 2  # prompt_tokens already includes the cached ones
    assert rec["cache_read"] == 2
    assert rec["tokens_reasoning"] == 5
    if stream:
        usage = [e for e in sse_events(raw) if isinstance(e, dict) and e.get("usage")][-1]["usage"]
        assert rec["tokens_out"] == usage["completion_tokens"]
        assert rec["response"]["stop_reason"] == "stop"
    else:
        assert rec["tokens_out"] == json.loads(raw)["usage"]["completion_tokens"]
    assert rec["usage_status"] == "complete"


async def test_openai_stream_without_include_usage_is_recorded_as_missing(start_proxy, client):
    proxy = await start_proxy()
    raw = await _call(
        client,
        f"{proxy.url}/openai/v1/chat/completions",
        openai_body(stream=True, include_usage=False),
        BEARER,
    )
    assert b"[DONE]" in raw
    (rec,) = await proxy.wait_records(1)
    assert rec["tokens_in"] == 0 and rec["tokens_out"] == 0
    assert rec["usage_status"] == "missing"
    assert rec["response"]["text"].startswith("Hello from the fake openai model")


@pytest.mark.parametrize(
    ("action", "stream"),
    [
        ("generateContent", False),
        ("streamGenerateContent?alt=sse", True),
        ("streamGenerateContent", True),  # a streamed JSON array, not SSE
    ],
)
async def test_gemini_usage_metadata_takes_the_last_running_total(
    start_proxy, client, action, stream
):
    proxy = await start_proxy()
    await _call(
        client,
        f"{proxy.url}/gemini/v1beta/models/gemini-2.5-pro:{action}",
        gemini_body("x y z"),
        {**GOOG, "x-fake-cache-read": "4", "x-fake-reasoning": "6", "x-fake-chunks": "3"},
    )
    (rec,) = await proxy.wait_records(1)
    assert rec["model"] == "gemini-2.5-pro"
    assert rec["stream"] is stream
    assert rec["tokens_in"] == 3 + 4
    assert rec["cache_read"] == 4
    words = len(rec["response"]["text"].split()) if stream else None
    if stream:
        assert rec["tokens_out"] == words + 6  # candidates + thoughts
        assert rec["stop_reason"] == "STOP"
    else:
        text = rec["response"]["candidates"][0]["content"]["parts"][0]["text"]
        assert rec["tokens_out"] == len(text.split()) + 6
    assert rec["usage_status"] == "complete"
