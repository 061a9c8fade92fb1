"""Issue #15, leaks 4 and 6 and the proxy's weaknesses, played as the agent:
an upstream that reflects the key it was sent (headers, body, a stream that
splits it across chunks, gzip), the fake provider's introspection, paths
that are not an inference API or read two ways, the bot's own token and the
operator's keys placed in every field of a record, and `/health`."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from tests.proxies.proxyhelpers import (
    ANTHROPIC_KEY,
    AUTH,
    GEMINI_KEY,
    OPENAI_KEY,
    OPENROUTER_KEY,
    TOKEN,
    anthropic_body,
    start_site,
)

SECRETS = (ANTHROPIC_KEY, OPENAI_KEY, GEMINI_KEY, OPENROUTER_KEY, TOKEN)


class Echo:
    """An upstream that tells the caller the credential it was sent."""

    def __init__(self) -> None:
        self.gates: list[asyncio.Event] = [asyncio.Event(), asyncio.Event()]
        self.seen: list[str] = []

    async def messages(self, request: web.Request) -> web.StreamResponse:
        key = request.headers.get("x-api-key", "")
        self.seen.append(request.path)
        await request.read()
        mode = request.headers.get("x-echo", "json")
        payload = {
            "id": key,
            "type": "message",
            "model": key,
            "content": [{"type": "text", "text": f"you sent {key}"}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 1, "output_tokens": 2, "note": key},
        }
        headers = {"x-echo-key": key, "request-id": key, "set-cookie": f"k={key}"}
        if mode == "json":
            return web.json_response(payload, headers=headers)
        if mode == "gzip":
            body = gzip.compress(json.dumps(payload).encode())
            return web.Response(
                body=body,
                headers={**headers, "content-encoding": "gzip", "content-type": "application/json"},
            )
        # "split": a stream whose second event carries the key cut in two
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b'event: ping\ndata: {"type": "ping"}\n\n')
        await self.gates[0].wait()  # the test saw the first event: nothing was held
        start = (
            b'event: content_block_delta\ndata: {"type": "content_block_delta", "delta": {"text": "'
        )
        await resp.write(start + key[:12].encode())
        await self.gates[1].wait()
        await resp.write(key[12:].encode() + b'"}}\n\n')
        await resp.write_eof()
        return resp

    async def anything(self, request: web.Request) -> web.Response:
        self.seen.append(request.path)
        return web.json_response({"headers": dict(request.headers)})


@pytest.fixture
async def echo() -> AsyncIterator[tuple[Echo, str]]:
    upstream = Echo()
    app = web.Application()
    app.router.add_post("/v1/messages", upstream.messages)
    app.router.add_route("*", "/{tail:.*}", upstream.anything)
    runner, url = await start_site(app)
    yield upstream, url
    await runner.cleanup()


def _no_secret_in(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


async def test_the_fake_providers_introspection_is_not_forwarded(start_proxy, fake, client):
    proxy = await start_proxy()
    async with client.get(f"{proxy.url}/anthropic/_fake/requests", headers=AUTH) as resp:
        assert resp.status == 403
        text = await resp.text()
    error = json.loads(text)["error"]
    assert error["type"] == "route_not_allowed" and "\n" not in text
    _no_secret_in(text)
    assert fake.requests() == []  # it never reached the provider
    (rec,) = await proxy.wait_records(1)
    assert rec["status"] == 403 and rec["error_kind"] == "route_not_allowed"
    assert proxy.starts() == []  # refused before it went upstream: one line


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/anthropic/v1/messages"),  # the right path, the wrong method
        ("DELETE", "/openai/v1/models"),
        ("POST", "/openai/v1/files"),
        ("POST", "/openai/v1/organization/api_keys"),
        ("GET", "/gemini/v1beta/cachedContents"),
        ("POST", "/openrouter/api/v1/keys"),
        ("POST", "/anthropic/v1/messages/batches"),
    ],
)
async def test_only_inference_routes_are_forwarded(start_proxy, echo, client, method, path):
    upstream, url = echo
    proxy = await start_proxy(upstream=url)
    async with client.request(method, f"{proxy.url}{path}", headers=AUTH) as resp:
        assert resp.status == 403
    assert upstream.seen == []


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/anthropic/v1/messages/count_tokens", {"messages": []}),
        ("/openai/v1/embeddings", {"input": "x"}),
        ("/openai/v1/responses", {"input": "x"}),
        ("/gemini/v1beta/models/gemini-2.5-flash:countTokens", {}),
        ("/gemini/v1beta/models/gemini-2.5-flash%3AgenerateContent", {}),
    ],
)
async def test_the_inference_routes_are_forwarded(start_proxy, echo, client, path, body):
    upstream, url = echo
    proxy = await start_proxy(upstream=url)
    async with client.post(f"{proxy.url}{path}", json=body, headers=AUTH) as resp:
        assert resp.status == 200
        _no_secret_in(await resp.text())  # the echoed header is masked too
    assert len(upstream.seen) == 1


async def test_the_operator_widens_the_routes_with_a_flag_or_the_environment(
    start_proxy, echo, client
):
    _upstream, url = echo
    proxy = await start_proxy("--allow-route", "gemini POST /v1beta/cachedContents", upstream=url)
    async with client.post(f"{proxy.url}/gemini/v1beta/cachedContents", headers=AUTH) as resp:
        assert resp.status == 200
    async with client.post(f"{proxy.url}/openai/v1/files", headers=AUTH) as resp:
        assert resp.status == 403  # for gemini only
    from cfproxies.llm_proxy import load_config

    cfg = load_config(
        ["--bot", "b", "--audit-dir", "/tmp"], {"CF_ALLOW_ROUTES": "* GET /**;x POST /a"}
    )
    assert [(r.provider, r.method, r.glob) for r in cfg.extra_routes] == [
        ("*", "GET", "/**"),
        ("x", "POST", "/a"),
    ]


async def _raw(url: str, target: str) -> tuple[int, bytes]:
    """One request with the target exactly as given (a client would tidy it)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"POST {target} HTTP/1.1\r\nHost: x\r\nx-api-key: {TOKEN}\r\n"
        "Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".encode()
    )
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.mark.parametrize(
    "target",
    [
        "/anthropic/v1/../../_fake/requests",
        "/anthropic/v1/%2e%2E/_fake/requests",
        "/anthropic/v1/%2E%2e%2F_fake%2frequests",
        "/anthropic/v1%2Fmessages",
        "/anthropic/./v1/messages",
        "/anthropic//v1/messages",
        "/anthropic/v1\\messages",
        "http://evil.example/anthropic/v1/messages",
        "http://127.0.0.1:1/anthropic/v1/messages",
    ],
)
async def test_ambiguous_request_targets_are_refused(start_proxy, echo, target):
    upstream, url = echo
    proxy = await start_proxy(upstream=url)
    status, body = await _raw(proxy.url, target)
    assert status == 400, body
    assert json.loads(body)["error"]["type"] == "bad_request_target" and body.count(b"\n") == 0
    assert upstream.seen == []
    (rec,) = await proxy.wait_records(1)
    assert rec["status"] == 400


async def test_a_reflected_key_is_masked_in_the_answers_headers_and_body(start_proxy, echo, client):
    _upstream, url = echo
    proxy = await start_proxy(upstream=url)
    async with client.post(
        f"{proxy.url}/anthropic/v1/messages", json=anthropic_body(), headers=AUTH
    ) as resp:
        assert resp.status == 200
        raw = await resp.read()
        headers = "\n".join(f"{k}: {v}" for k, v in resp.headers.items())
    assert int(resp.headers["content-length"]) == len(raw)  # masks keep the length
    _no_secret_in(raw.decode() + headers)
    assert "[REDACTED]" in resp.headers["x-echo-key"]
    assert json.loads(raw)["content"][0]["text"].startswith("you sent [REDACTED]")


async def test_a_key_in_a_gzip_answer_is_masked(start_proxy, echo, client):
    _upstream, url = echo
    proxy = await start_proxy(upstream=url)
    headers = {**AUTH, "x-echo": "gzip", "accept-encoding": "gzip"}
    async with client.post(
        f"{proxy.url}/anthropic/v1/messages", json=anthropic_body(), headers=headers
    ) as resp:
        assert resp.status == 200
        raw = await resp.read()
    assert "content-encoding" not in resp.headers  # decoded so that the key could be found
    _no_secret_in(raw.decode())
    assert json.loads(raw)["content"][0]["text"].startswith("you sent [REDACTED]")


async def test_a_key_split_across_stream_chunks_is_masked_and_the_stream_not_delayed(
    start_proxy, echo, client
):
    upstream, url = echo
    proxy = await start_proxy(upstream=url)
    headers = {**AUTH, "x-echo": "split"}
    got = b""
    async with client.post(
        f"{proxy.url}/anthropic/v1/messages", json=anthropic_body(stream=True), headers=headers
    ) as resp:
        assert resp.status == 200
        # The first event arrives while the upstream waits: nothing is held back.
        got += await asyncio.wait_for(resp.content.readany(), 2)
        assert got.endswith(b'"ping"}\n\n')
        upstream.gates[0].set()
        # The second chunk ends in the first 12 characters of the key: that
        # tail, and only that, waits for the next chunk.
        part = await asyncio.wait_for(resp.content.readany(), 2)
        assert part.endswith(b'"text": "') and ANTHROPIC_KEY[:12].encode() not in part
        got += part
        upstream.gates[1].set()
        got += await resp.content.read()
    text = got.decode()
    _no_secret_in(text)
    assert '"text": "[REDACTED]' in text and text.endswith('"}}\n\n')
    assert len(got) == len(
        b'event: ping\ndata: {"type": "ping"}\n\n'
        b'event: content_block_delta\ndata: {"type": "content_block_delta", "delta": {"text": "'
        + ANTHROPIC_KEY.encode()
        + b'"}}\n\n'
    )


def test_a_held_tail_is_only_ever_a_key_prefix_and_is_flushed_at_the_end():
    from cfproxies.llm_proxy.reflect import KeyStripper

    keys = KeyStripper([ANTHROPIC_KEY, "short"])  # too short to be a credential: left alone
    stream = keys.stream()
    assert stream.feed(b"plain text, short") == b"plain text, short"
    out = stream.feed(b"abc " + ANTHROPIC_KEY[:5].encode())
    assert out == b"abc "  # "sk-an" may start the key
    assert stream.feed(b"d-not-a-key") == ANTHROPIC_KEY[:5].encode() + b"d-not-a-key"
    assert stream.feed(ANTHROPIC_KEY[:-1].encode()) == b""
    assert stream.flush() == ANTHROPIC_KEY[:-1].encode()  # never completed: not a key
    escaped = json.dumps("k/" * 6 + "x")[1:-1].encode()
    assert KeyStripper(["k/" * 6 + "x"]).strip(b"a " + escaped) == b"a [REDACTED]***"


async def test_keys_and_the_token_placed_in_record_fields_never_reach_the_log(
    start_proxy, echo, client
):
    _upstream, url = echo
    proxy = await start_proxy(upstream=url)
    body: dict[str, Any] = {**anthropic_body(), "model": TOKEN}
    async with client.post(f"{proxy.url}/anthropic/v1/messages", json=body, headers=AUTH) as resp:
        assert resp.status == 200
    # and the token glued into the path of an unknown provider, and a route refused
    async with client.post(f"{proxy.url}/x{TOKEN}/v1/messages", json=body, headers=AUTH):
        pass
    async with client.post(f"{proxy.url}/openai/v1/{TOKEN}", json=body, headers=AUTH):
        pass
    recs = await proxy.wait_records(3)
    text = proxy.log_path.read_text()
    _no_secret_in(text)
    rec = recs[0]
    assert rec["model"] == "[REDACTED:secret]"
    for key in ("model_resp", "response_id", "upstream_request_id"):
        assert rec[key] == "[REDACTED:secret]", key
    assert rec["usage_raw"]["note"] == "[REDACTED:secret]"
    assert proxy.starts()[0]["model"] == "[REDACTED:secret]"


async def test_health_and_gateway_errors_do_not_show_upstream_urls(start_proxy, fake, client):
    proxy = await start_proxy(upstream=fake.url)
    async with client.get(f"{proxy.url}/health") as resp:
        text = await resp.text()
    assert fake.url not in text and "127.0.0.1" not in text
    dead = await start_proxy(upstream="http://127.0.0.1:9")
    async with client.post(
        f"{dead.url}/anthropic/v1/messages", json=anthropic_body(), headers=AUTH
    ) as resp:
        assert resp.status == 502
        assert "127.0.0.1:9" not in await resp.text()
    rec = (await dead.wait_records(1))[0]
    assert rec["error_kind"] == "connect"  # the operator's record still says what failed
