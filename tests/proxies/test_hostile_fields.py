"""What the agent names in a call (its model) reaches the record, the
metrics and the spans bounded: a model name of megabytes made the call's
record one line longer than the audit mirrors carry (they drop a line
over `cftui.audit.mirror.MAX_LINE`, so the call vanished from the
operator's copy of a remote or Lima bot's traffic) and a span of the same
size for every call."""

from __future__ import annotations

import asyncio

from cfproxies.llm_proxy.handler import MAX_MODEL_CHARS

from cftui.audit import mirror
from tests.proxies.otlp_receiver import otlp_receiver
from tests.proxies.proxyhelpers import AUTH, anthropic_body


async def test_a_model_name_of_megabytes_is_cut_in_the_record_and_the_span(start_proxy, client):
    with otlp_receiver() as rx:
        proxy = await start_proxy("--otlp-endpoint", rx.url)
        huge = "claude-" + "\x01" * (3 << 20)  # six bytes a character once escaped in JSON
        body = {**anthropic_body(), "model": huge}
        async with client.post(f"{proxy.url}/anthropic/v1/messages", json=body, headers=AUTH) as r:
            await r.read()
        (rec,) = await proxy.wait_records(1)
        (span,) = await asyncio.to_thread(rx.wait_spans, 1)
    line = max(proxy.log_path.read_bytes().splitlines(), key=len)
    assert len(line) < 2 << 20 < mirror.MAX_LINE, len(line)
    assert rec["model"].startswith("claude-") and len(rec["model"]) <= MAX_MODEL_CHARS
    assert rec.get("model_truncated") is True
    assert span.attributes["gen_ai.request.model"] == rec["model"]
    assert len(span.name) < MAX_MODEL_CHARS + 40
    assert sum(len(b) for b in rx.bodies) < 64 << 10


async def test_a_model_name_of_ordinary_length_is_kept_whole(start_proxy, client):
    proxy = await start_proxy()
    name = "anthropic/claude-sonnet-4-5:beta-" + "x" * 200
    body = {**anthropic_body(), "model": name}
    async with client.post(f"{proxy.url}/anthropic/v1/messages", json=body, headers=AUTH) as r:
        await r.read()
    (rec,) = await proxy.wait_records(1)
    assert rec["model"] == name and "model_truncated" not in rec
