"""Forwarding: paths, methods, query strings, headers and bodies pass through;
streams go chunk by chunk; content-encoding survives both ways."""

from __future__ import annotations

import asyncio
import gzip
import json
import time

from tests.proxies.proxyhelpers import (
    AUTH,
    BEARER,
    anthropic_body,
    openai_body,
    self_signed_tls,
    sse_events,
    start_site,
)


async def test_non_streamed_call_is_forwarded_and_recorded(start_proxy, fake, client):
    proxy = await start_proxy()
    async with client.post(
        f"{proxy.url}/anthropic/v1/messages", json=anthropic_body(), headers=AUTH
    ) as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["type"] == "message"
    assert body["content"][0]["text"].startswith("Hello from the fake anthropic model")
    (rec,) = await proxy.wait_records(1)
    assert rec["provider"] == "anthropic"
    assert rec["bot"] == "bot1"
    assert rec["method"] == "POST"
    assert rec["path"] == "/anthropic/v1/messages"
    assert rec["model"] == "claude-sonnet-4-5"
    assert rec["status"] == 200
    assert rec["stream"] is False
    assert rec["response"]["content"][0]["text"] == body["content"][0]["text"]
    assert rec["request"]["messages"][0]["content"] == "hello there"
    assert rec["req_bytes"] > 0 and rec["resp_bytes"] > 0
    assert 0 < rec["ttfb_ms"] <= rec["duration_ms"]
    assert rec["ts"].endswith("Z") and len(rec["ts"]) == 24
    assert rec["upstream_request_id"].startswith("req_fake_")
    assert rec["error"] is None


async def test_stream_is_forwarded_chunk_by_chunk_as_it_arrives(start_proxy, client):
    proxy = await start_proxy()
    headers = {**AUTH, "x-fake-chunks": "5", "x-fake-chunk-gap-ms": "80"}
    arrivals: list[float] = []
    raw = b""
    t0 = time.perf_counter()
    async with client.post(
        f"{proxy.url}/anthropic/v1/messages", json=anthropic_body(stream=True), headers=headers
    ) as resp:
        assert resp.status == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        async for chunk in resp.content.iter_any():
            arrivals.append(time.perf_counter() - t0)
            raw += chunk
    deltas = [e for e in sse_events(raw) if e["type"] == "content_block_delta"]
    assert len(deltas) == 5
    # Five pieces 80 ms apart: a buffering proxy would deliver them in one lump
    # at the end. Measured between arrivals, not from the request's start (a
    # loaded CI machine took 0.42 s to the first one).
    assert len(arrivals) >= 5
    assert arrivals[-1] - arrivals[0] > 0.25
    (rec,) = await proxy.wait_records(1)
    assert rec["stream"] is True
    assert rec["response"]["text"] == "".join(d["delta"]["text"] for d in deltas)
    assert rec["response"]["stop_reason"] == "end_turn"
    assert rec["stop_reason"] == "end_turn"
    assert rec["usage_status"] == "complete"
    assert rec["chunks"] >= 5
    assert rec["max_chunk_gap_ms"] >= 60
    assert rec["ttft_ms"] >= rec["ttfb_ms"]


async def test_query_string_method_and_headers_pass_through(start_proxy, fake, client):
    proxy = await start_proxy()
    headers = {
        **BEARER,
        "anthropic-version": "2023-06-01",
        "x-custom": "kept",
        "connection": "keep-alive, x-hop",
        "x-hop": "dropped",
        "keep-alive": "timeout=5",
    }
    async with client.post(
        f"{proxy.url}/openai/v1/chat/completions?a=1&b=two%20words",
        json=openai_body(),
        headers=headers,
    ) as resp:
        assert resp.status == 200
        assert "x-request-id" in resp.headers
    seen = fake.requests()[-1]
    assert seen["path"] == "/v1/chat/completions"
    assert seen["query"] == "a=1&b=two%20words"
    lower = {k.lower(): v for k, v in seen["headers"].items()}
    assert lower["x-custom"] == "kept"
    assert lower["anthropic-version"] == "2023-06-01"
    assert "x-hop" not in lower and "keep-alive" not in lower
    assert lower["host"] == fake.url.removeprefix("http://")
    assert json.loads(json.dumps(seen["body"])) == openai_body()
    (rec,) = await proxy.wait_records(1)
    assert rec["path"] == "/openai/v1/chat/completions?a=1&b=two%20words"


async def test_gzip_body_reaches_the_client_decoded_and_the_record_says_gzip(start_proxy, client):
    # Keys are looked for in what the gateway reads, so a compressed answer
    # is decoded for it (a key inside gzip bytes would pass unseen).
    proxy = await start_proxy()
    headers = {**AUTH, "x-fake-gzip": "1", "accept-encoding": "gzip, br, zstd"}
    async with client.post(
        f"{proxy.url}/anthropic/v1/messages", json=anthropic_body(), headers=headers
    ) as resp:
        assert resp.status == 200
        assert "content-encoding" not in resp.headers
        raw = await resp.read()
    body = json.loads(raw)
    assert int(resp.headers["content-length"]) == len(raw)
    (rec,) = await proxy.wait_records(1)
    assert rec["response"]["content"][0]["text"] == body["content"][0]["text"]
    assert rec["resp_content_encoding"] == "gzip"
    assert 0 < rec["resp_bytes"] < len(raw)  # the compressed size, as the upstream sent it
    assert rec["tokens_out"] > 0


async def test_upstream_is_offered_only_encodings_the_proxy_can_decode(start_proxy, fake, client):
    proxy = await start_proxy()
    headers = {**AUTH, "accept-encoding": "br, zstd"}
    async with client.post(
        f"{proxy.url}/anthropic/v1/messages", json=anthropic_body(), headers=headers
    ) as resp:
        assert resp.status == 200
    seen = {k.lower(): v for k, v in fake.requests()[-1]["headers"].items()}
    assert seen["accept-encoding"] == "identity"


async def test_gzip_stream_is_forwarded_and_parsed(start_proxy, client):
    proxy = await start_proxy()
    headers = {**AUTH, "x-fake-gzip": "1", "accept-encoding": "gzip", "x-fake-chunks": "3"}
    async with client.post(
        f"{proxy.url}/anthropic/v1/messages", json=anthropic_body(stream=True), headers=headers
    ) as resp:
        assert "content-encoding" not in resp.headers  # decoded for the key check
        raw = await resp.read()
    events = sse_events(raw)
    text = "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta")
    (rec,) = await proxy.wait_records(1)
    assert rec["response"]["text"] == text
    assert rec["usage_status"] == "complete"


async def test_body_without_length_is_relayed_and_recorded(start_proxy, client):
    proxy = await start_proxy()
    headers = {**AUTH, "x-fake-no-length": "1"}
    async with client.post(
        f"{proxy.url}/anthropic/v1/messages", json=anthropic_body(), headers=headers
    ) as resp:
        body = await resp.json()
    (rec,) = await proxy.wait_records(1)
    assert rec["stream"] is False
    assert rec["response"]["id"] == body["id"]
    assert rec["tokens_out"] == body["usage"]["output_tokens"]


async def test_unknown_provider_answers_404_and_is_recorded(start_proxy, client):
    proxy = await start_proxy()
    async with client.post(f"{proxy.url}/nosuch/v1/x", json={}, headers=AUTH) as resp:
        assert resp.status == 404
        assert "unknown provider" in (await resp.json())["error"]["message"]
    (rec,) = await proxy.wait_records(1)
    assert rec["status"] == 404 and rec["error_kind"] == "unknown_provider"


async def test_extra_upstream_name_is_forwarded(start_proxy, fake, client, providers_env):
    providers_env.write_text(providers_env.read_text() + "LOCAL_LLM_API_KEY=sk-local-123456789\n")
    proxy = await start_proxy("--upstream", f"local-llm={fake.url}")
    async with client.post(
        f"{proxy.url}/local-llm/v1/chat/completions", json=openai_body(), headers=BEARER
    ) as resp:
        assert resp.status == 200
    seen = {k.lower(): v for k, v in fake.requests()[-1]["headers"].items()}
    assert seen["authorization"] == "Bearer sk-local-123456789"
    (rec,) = await proxy.wait_records(1)
    assert rec["provider"] == "local-llm"
    assert rec["tokens_in"] > 0


async def test_concurrent_calls_each_get_one_whole_record(start_proxy, client):
    proxy = await start_proxy()

    async def one(i: int) -> int:
        body = anthropic_body(stream=i % 2 == 0, text=f"call {i}")
        async with client.post(f"{proxy.url}/anthropic/v1/messages", json=body, headers=AUTH) as r:
            await r.read()
            return r.status

    statuses = await asyncio.gather(*(one(i) for i in range(40)))
    assert statuses == [200] * 40
    recs = await proxy.wait_records(40)
    assert len(recs) == 40
    assert len({r["id"] for r in recs}) == 40
    lines = proxy.log_path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 81  # a start line and a record each
    assert sorted(r["id"] for r in proxy.starts()) == sorted(r["id"] for r in recs)


async def test_openai_base_url_with_or_without_v1_reaches_the_same_endpoint(
    start_proxy, fake, client
):
    proxy = await start_proxy()
    for path in ("/openai/v1/chat/completions", "/openai/chat/completions"):
        async with client.post(f"{proxy.url}{path}", json=openai_body(), headers=BEARER) as resp:
            assert resp.status == 200
        assert fake.requests()[-1]["path"] == "/v1/chat/completions"
    recs = await proxy.wait_records(2)
    assert [r["path"] for r in recs] == ["/openai/v1/chat/completions", "/openai/chat/completions"]


async def test_gzip_request_body_reaches_the_provider_consistent_and_is_recorded(
    start_proxy, fake, client
):
    proxy = await start_proxy()
    raw = gzip.compress(json.dumps(anthropic_body(text="compressed question")).encode())
    headers = {**AUTH, "content-encoding": "gzip"}
    async with client.post(f"{proxy.url}/anthropic/v1/messages", data=raw, headers=headers) as resp:
        assert resp.status == 200
        assert "compressed question" in (await resp.json())["content"][0]["text"]
    (rec,) = await proxy.wait_records(1)
    assert rec["request"]["messages"][0]["content"] == "compressed question"
    assert rec["req_bytes"] == len(raw)


async def test_an_https_provider_is_reached_with_its_certificate_checked(
    start_proxy, client, tmp_path, monkeypatch
):
    """Every real provider is https: the proxy's client checks the chain
    against the system's CAs (here SSL_CERT_FILE) and the host name."""
    from cfproxies.fake_llm import make_app as make_fake_app

    server_tls, _, cert = self_signed_tls(tmp_path)
    runner, provider_url = await start_site(make_fake_app(), server_tls)
    try:
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        proxy = await start_proxy(upstream=provider_url)
        for stream in (False, True):
            async with client.post(
                f"{proxy.url}/anthropic/v1/messages",
                json=anthropic_body(stream=stream),
                headers=AUTH,
            ) as resp:
                assert resp.status == 200
                await resp.read()
        recs = await proxy.wait_records(2)
        assert [r["status"] for r in recs] == [200, 200]
        assert recs[1]["stream"] is True and recs[1]["tokens_out"] > 0

        monkeypatch.delenv("SSL_CERT_FILE")  # a proxy that does not trust it refuses
        other = await start_proxy(upstream=provider_url)
        async with client.post(
            f"{other.url}/anthropic/v1/messages", json=anthropic_body(), headers=AUTH
        ) as resp:
            assert resp.status == 502
        rec = (await other.wait_records(3))[-1]  # the same bot's log as the first proxy's
        assert rec["status"] == 502 and "CERTIFICATE_VERIFY_FAILED" in rec["error"]
    finally:
        await runner.cleanup()
