"""Failures: unreachable and slow upstreams, gateways that hang up, streams
that break, and provider errors, each answered sensibly and recorded."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import aiohttp

from tests.proxies.proxyhelpers import AUTH, BEARER, anthropic_body, openai_body


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _wait_for(predicate, timeout: float = 5.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def test_unreachable_upstream_answers_502_with_json_and_is_recorded(start_proxy, client):
    proxy = await start_proxy(upstream=f"http://127.0.0.1:{_closed_port()}")
    async with client.post(
        f"{proxy.url}/anthropic/v1/messages", json=anthropic_body(), headers=AUTH
    ) as resp:
        assert resp.status == 502
        assert "unreachable" in (await resp.json())["error"]["message"]
    (rec,) = await proxy.wait_records(1)
    assert rec["status"] == 502
    assert rec["error_kind"] == "connect"
    assert rec["error"].startswith("upstream unreachable")


async def test_silent_upstream_answers_504_and_is_recorded(start_proxy, fake, client):
    proxy = await start_proxy("--read-timeout", "0.3")
    headers = {**AUTH, "x-fake-delay-ms": "3000"}
    async with client.post(
        f"{proxy.url}/anthropic/v1/messages", json=anthropic_body(), headers=headers
    ) as resp:
        assert resp.status == 504
        assert (await resp.json())["error"]["type"] == "upstream_timeout"
    (rec,) = await proxy.wait_records(1)
    assert rec["status"] == 504 and rec["error_kind"] == "timeout"
    assert 250 < rec["duration_ms"] < 2500


async def test_client_disconnect_mid_stream_closes_upstream_and_is_recorded(
    start_proxy, fake, client
):
    proxy = await start_proxy()
    headers = {**AUTH, "x-fake-hang-after": "1"}
    resp = await client.post(
        f"{proxy.url}/anthropic/v1/messages", json=anthropic_body(stream=True), headers=headers
    )
    first = await resp.content.readany()
    assert b"message_start" in first
    resp.close()  # the gateway hangs up while the model is still "generating"
    (rec,) = await proxy.wait_records(1)
    assert rec["client_disconnected"] is True
    assert rec["error_kind"] == "client_disconnect"
    assert rec["status"] == 200
    assert rec["stream"] is True
    assert rec["usage_status"] == "partial"
    assert rec["tokens_in"] > 0  # message_start's usage was already seen
    # The provider's side of the call was closed too, not left generating.
    assert await _wait_for(lambda: fake.requests()[-1]["outcome"] == "client_closed")


async def test_client_disconnect_before_the_first_byte_closes_upstream(start_proxy, fake, client):
    proxy = await start_proxy()
    headers = {**AUTH, "x-fake-delay-ms": "10000"}
    task = asyncio.create_task(
        client.post(f"{proxy.url}/anthropic/v1/messages", json=anthropic_body(), headers=headers)
    )
    assert await _wait_for(lambda: len(fake.requests()) == 1)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    (rec,) = await proxy.wait_records(1)
    assert rec["client_disconnected"] is True
    assert rec["status"] == 499
    assert rec["duration_ms"] < 5000
    assert await _wait_for(lambda: fake.requests()[-1]["outcome"] == "client_closed")


async def test_upstream_breaking_off_mid_stream_is_recorded_and_the_client_sees_it(
    start_proxy, client
):
    proxy = await start_proxy()
    headers = {**AUTH, "x-fake-drop-after": "2", "x-fake-chunk-gap-ms": "20"}
    async with client.post(
        f"{proxy.url}/anthropic/v1/messages", json=anthropic_body(stream=True), headers=headers
    ) as resp:
        assert resp.status == 200
        try:
            await resp.read()
            broke = False
        except aiohttp.ClientPayloadError:
            broke = True
    assert broke, "a stream cut upstream must not look complete to the gateway"
    (rec,) = await proxy.wait_records(1)
    assert rec["error_kind"] == "upstream_disconnect"
    assert rec["usage_status"] == "partial"
    assert rec["response"]["text"]  # what arrived before the break


async def test_stream_going_silent_past_the_read_timeout_is_recorded(start_proxy, client):
    proxy = await start_proxy("--read-timeout", "0.3")
    headers = {**AUTH, "x-fake-hang-after": "1"}
    async with client.post(
        f"{proxy.url}/anthropic/v1/messages", json=anthropic_body(stream=True), headers=headers
    ) as resp:
        with contextlib.suppress(aiohttp.ClientPayloadError):
            await resp.read()
    (rec,) = await proxy.wait_records(1)
    assert rec["error_kind"] == "timeout"
    assert "silent" in rec["error"]


async def test_in_stream_error_event_inside_a_200_is_recorded(start_proxy, client):
    proxy = await start_proxy()
    headers = {**AUTH, "x-fake-stream-error": "1"}
    async with client.post(
        f"{proxy.url}/anthropic/v1/messages", json=anthropic_body(stream=True), headers=headers
    ) as resp:
        assert resp.status == 200
        assert b"overloaded_error" in await resp.read()
    (rec,) = await proxy.wait_records(1)
    assert rec["status"] == 200
    assert rec["error_kind"] == "stream_error_event"
    assert "overloaded_error" in rec["error"]


async def test_provider_error_status_and_retry_after_pass_through(start_proxy, client):
    proxy = await start_proxy()
    headers = {**BEARER, "x-fake-status": "429", "x-fake-retry-after": "17"}
    async with client.post(
        f"{proxy.url}/openai/v1/chat/completions", json=openai_body(), headers=headers
    ) as resp:
        assert resp.status == 429
        assert resp.headers["retry-after"] == "17"
        body = await resp.json()
    assert body["error"]["type"] == "rate_limit_exceeded"
    (rec,) = await proxy.wait_records(1)
    assert rec["status"] == 429
    assert rec["error_kind"] == "upstream_http"
    assert rec["retry_after"] == "17"
    assert "429" in rec["error"]
