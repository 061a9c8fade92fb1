"""`stream` in a call's record says whether the response was streamed
(CONTRACTS §3), not whether the request asked for a stream: a call
refused or failed before any stream says `false` (issue #23)."""

from __future__ import annotations

import socket

import pytest

from tests.proxies.proxyhelpers import AUTH, anthropic_body


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("headers", "status", "kind"),
    [
        ({"x-api-key": "wrong-token-123456"}, 401, "auth"),  # the proxy's own refusal
        ({**AUTH, "x-fake-status": "401"}, 401, "upstream_http"),  # the provider's
        # chunked, no length: relayed as it comes, still no stream
        ({**AUTH, "x-fake-status": "401", "x-fake-no-length": "1"}, 401, "upstream_http"),
        ({**AUTH, "x-fake-status": "429"}, 429, "upstream_http"),
    ],
    ids=["proxy-401", "upstream-401", "upstream-401-chunked", "upstream-429"],
)
async def test_a_refused_stream_request_is_recorded_as_not_streamed(
    start_proxy, client, headers, status, kind
):
    proxy = await start_proxy()
    async with client.post(
        f"{proxy.url}/anthropic/v1/messages", json=anthropic_body(stream=True), headers=headers
    ) as resp:
        assert resp.status == status
        await resp.read()
    (rec,) = await proxy.wait_records(1)
    assert (rec["status"], rec["error_kind"]) == (status, kind)
    assert rec["stream"] is False


async def test_an_unreachable_upstream_is_recorded_as_not_streamed(start_proxy, client):
    proxy = await start_proxy(upstream=f"http://127.0.0.1:{_closed_port()}")
    async with client.post(
        f"{proxy.url}/anthropic/v1/messages", json=anthropic_body(stream=True), headers=AUTH
    ) as resp:
        assert resp.status == 502
    (rec,) = await proxy.wait_records(1)
    assert rec["error_kind"] == "connect"
    assert rec["stream"] is False


async def test_a_streamed_answer_is_recorded_as_streamed(start_proxy, client):
    proxy = await start_proxy()
    async with client.post(
        f"{proxy.url}/anthropic/v1/messages", json=anthropic_body(stream=True), headers=AUTH
    ) as resp:
        assert resp.status == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        await resp.read()
    (rec,) = await proxy.wait_records(1)
    assert rec["stream"] is True
