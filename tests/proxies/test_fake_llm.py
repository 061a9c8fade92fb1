"""The fake provider speaks each wire format exactly, streamed and not, and
shows tests what it received."""

from __future__ import annotations

import json

import pytest

from tests.proxies.proxyhelpers import (
    anthropic_body,
    gemini_body,
    openai_body,
    sse_events,
    start_site,
)


async def test_anthropic_stream_has_the_real_event_sequence_and_framing(fake, client):
    async with client.post(
        f"{fake.url}/v1/messages", json=anthropic_body(stream=True), headers={"x-fake-chunks": "3"}
    ) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        raw = await resp.read()
    blocks = raw.decode().split("\n\n")
    assert blocks[-1] == ""
    names = [b.split("\n")[0].removeprefix("event: ") for b in blocks[:-1]]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    events = sse_events(raw)
    assert all(e["type"] == n for e, n in zip(events, names, strict=True))
    start = events[0]["message"]["usage"]
    assert {"input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"} <= set(start)
    assert events[-2]["delta"]["stop_reason"] == "end_turn"
    assert events[-2]["usage"]["output_tokens"] > 0


async def test_openai_stream_ends_with_usage_then_done(fake, client):
    async with client.post(
        f"{fake.url}/v1/chat/completions", json=openai_body(stream=True)
    ) as resp:
        raw = await resp.read()
    lines = [line for line in raw.decode().split("\n\n") if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


async def test_openai_stream_without_include_usage_has_no_usage_field(fake, client):
    body = openai_body(stream=True, include_usage=False)
    async with client.post(f"{fake.url}/v1/chat/completions", json=body) as resp:
        raw = await resp.read()
    assert b'"usage"' not in raw


async def test_gemini_sse_uses_crlf_framing_and_running_usage(fake, client):
    async with client.post(
        f"{fake.url}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
        json=gemini_body(),
        headers={"x-fake-chunks": "3"},
    ) as resp:
        raw = await resp.read()
    assert raw.count(b"\r\n\r\n") == 3
    events = sse_events(raw)
    counts = [e["usageMetadata"]["candidatesTokenCount"] for e in events]
    assert counts == sorted(counts)
    assert events[-1]["candidates"][0]["finishReason"] == "STOP"
    assert "finishReason" not in events[0]["candidates"][0]


async def test_gemini_stream_without_alt_sse_is_a_json_array(fake, client):
    async with client.post(
        f"{fake.url}/v1beta/models/gemini-2.5-flash:streamGenerateContent", json=gemini_body()
    ) as resp:
        assert resp.headers["content-type"].startswith("application/json")
        items = json.loads(await resp.read())
    assert isinstance(items, list) and items[-1]["usageMetadata"]["promptTokenCount"] == 1


@pytest.mark.parametrize(
    ("path", "body", "check"),
    [
        ("/v1/messages", anthropic_body(), lambda b: b["error"]["type"] == "overloaded_error"),
        ("/v1/chat/completions", openai_body(), lambda b: "message" in b["error"]),
        (
            "/v1beta/models/m:generateContent",
            gemini_body(),
            lambda b: b["error"]["code"] == 529 and b["error"]["status"] == "INTERNAL",
        ),
    ],
)
async def test_error_status_in_each_providers_format(fake, client, path, body, check):
    async with client.post(
        f"{fake.url}{path}", json=body, headers={"x-fake-status": "529"}
    ) as resp:
        assert resp.status == 529
        assert check(await resp.json())


async def test_requests_are_listed_without_credentials_and_can_be_cleared(fake, client):
    creds = {
        "x-api-key": "seen-key-1",
        "Authorization": "Bearer seen-key-2",
        "x-goog-api-key": "seen-key-3",
        "Cookie": "session=seen-key-4",
        "x-fake-reply": "ok",
    }
    async with client.post(
        f"{fake.url}/v1/messages?key=seen-key-5&x=1", json=anthropic_body(), headers=creds
    ) as resp:
        assert resp.status == 200
    async with client.get(f"{fake.url}/_fake/requests") as resp:
        text = await resp.text()
        seen = json.loads(text)
    for n in range(1, 6):
        assert f"seen-key-{n}" not in text
    headers = {k.lower(): v for k, v in seen[-1]["headers"].items()}
    assert headers["x-api-key"] == headers["authorization"] == "[REDACTED]"
    assert headers["x-fake-reply"] == "ok"
    assert seen[-1]["query"] == "key=[REDACTED]&x=1"
    assert seen[-1]["body"]["model"] == "claude-sonnet-4-5"
    assert fake.requests()[-1]["headers"]["x-api-key"] == "seen-key-1"  # in-process only
    async with client.delete(f"{fake.url}/_fake/requests"):
        pass
    async with client.get(f"{fake.url}/_fake/requests") as resp:
        assert await resp.json() == []
    async with client.get(f"{fake.url}/health") as resp:
        assert (await resp.json())["ok"] is True


async def test_default_chunking_is_set_at_start(client):
    from cfproxies.fake_llm import make_app

    runner, url = await start_site(make_app(chunks=2, chunk_gap_ms=1))
    try:
        async with client.post(f"{url}/v1/messages", json=anthropic_body(stream=True)) as resp:
            events = sse_events(await resp.read())
        assert sum(e["type"] == "content_block_delta" for e in events) == 2
    finally:
        await runner.cleanup()


def test_bad_chunk_settings_are_refused(capsys):
    from cfproxies.fake_llm.__main__ import main

    assert main(["--listen", "127.0.0.1:0", "--chunks", "0"]) == 2
    assert "--chunks (CF_FAKE_CHUNKS) must be a number from 1" in capsys.readouterr().err
