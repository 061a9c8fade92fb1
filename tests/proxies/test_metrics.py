"""`/metrics` on the LLM proxy (issue #23): the Prometheus text format, read
with prometheus_client's own parser, counting what the calls did."""

from __future__ import annotations

import math

from cfproxies.llm_proxy.callmetrics import MAX_MODELS
from cfproxies.metrics import OVERFLOW, Counter, Histogram, render
from prometheus_client.parser import text_string_to_metric_families

from tests.proxies.proxyhelpers import AUTH, BEARER, anthropic_body, openai_body

PASTED_KEY = "sk-ant-api03-" + "Q" * 60


async def scrape(client, proxy) -> dict[str, list]:
    """Every sample of /metrics by family name: [(sample name, labels, value)]."""
    async with client.get(f"{proxy.url}/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
        text = (await resp.read()).decode()
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        out[family.name] = [(s.name, s.labels, s.value) for s in family.samples]
    return out


def total(samples, name: str | None = None, **labels: str) -> float:
    return sum(
        v
        for n, lab, v in samples
        if (name is None or n == name) and all(lab.get(k) == x for k, x in labels.items())
    )


async def _call(client, url, body, headers=AUTH) -> int:
    async with client.post(url, json=body, headers=headers) as resp:
        await resp.read()
        return resp.status


async def test_metrics_count_calls_tokens_cost_errors_and_latency(start_proxy, client):
    proxy = await start_proxy()
    before = await scrape(client, proxy)
    assert total(before["cf_llm_calls"]) == 0
    assert await _call(client, f"{proxy.url}/anthropic/v1/messages", anthropic_body()) == 200
    assert (
        await _call(client, f"{proxy.url}/openai/v1/chat/completions", openai_body(), BEARER) == 200
    )
    headers = {**AUTH, "x-fake-status": "429"}
    assert (
        await _call(client, f"{proxy.url}/anthropic/v1/messages", anthropic_body(), headers) == 429
    )
    records = await proxy.wait_records(3)
    m = await scrape(client, proxy)
    calls = m["cf_llm_calls"]
    assert total(calls) == 3
    assert total(calls, status="200", provider="anthropic", model="claude-sonnet-4-5") == 1
    assert total(calls, status="429") == 1
    assert all(lab["bot"] == "bot1" for _, lab, _ in calls)
    assert total(m["cf_llm_errors"], status="429", error_kind="upstream_http") == 1
    assert total(m["cf_llm_input_tokens"]) == sum(r["tokens_in"] for r in records) > 0
    assert total(m["cf_llm_output_tokens"]) == sum(r["tokens_out"] for r in records) > 0
    cost = sum(r["cost_usd"] for r in records if r["cost_usd"])
    assert math.isclose(total(m["cf_llm_cost_usd"]), cost) and cost > 0
    duration = m["cf_llm_call_duration_seconds"]
    assert total(duration, "cf_llm_call_duration_seconds_count") == 3
    assert math.isclose(
        total(duration, "cf_llm_call_duration_seconds_sum"),
        sum(r["duration_ms"] for r in records) / 1000,
    )
    inf = [v for n, lab, v in duration if n.endswith("_bucket") and lab["le"] == "+Inf"]
    assert sum(inf) == 3
    assert (
        total(m["cf_llm_time_to_first_byte_seconds"], "cf_llm_time_to_first_byte_seconds_count")
        == 3
    )
    assert m["cf_llm_inflight_calls"][0][2] == 0


async def test_an_agents_model_name_is_scrubbed_and_escaped_in_its_label(start_proxy, client):
    proxy = await start_proxy()
    hostile = f'evil"}} x{{le="1\\\n\x1b[31m {PASTED_KEY}'
    body = {**anthropic_body(), "model": hostile}
    await _call(client, f"{proxy.url}/anthropic/v1/messages", body)
    await _call(client, f"{proxy.url}/nosuch-{PASTED_KEY[:20]}/v1/x", anthropic_body())
    await proxy.wait_records(2)
    async with client.get(f"{proxy.url}/metrics") as resp:
        text = (await resp.read()).decode()
    assert PASTED_KEY not in text and "\x1b" not in text
    m = {f.name: f for f in text_string_to_metric_families(text)}  # parses, escapes and all
    models = {s.labels["model"] for s in m["cf_llm_calls"].samples}
    (label,) = [x for x in models if x.startswith("evil")]
    assert '"' in label and "\n" not in label and "[REDACTED" in label
    providers = {s.labels["provider"] for s in m["cf_llm_calls"].samples}
    assert providers == {"anthropic", "_unknown"}


async def test_the_model_labels_are_bounded(start_proxy, client):
    proxy = await start_proxy()
    for i in range(MAX_MODELS + 10):
        body = {**anthropic_body(), "model": f"model-{i}"}
        await _call(client, f"{proxy.url}/anthropic/v1/messages", body)
    m = await scrape(client, proxy)
    models = {lab["model"] for _, lab, _ in m["cf_llm_calls"]}
    assert len(models) == MAX_MODELS + 1 and OVERFLOW in models
    assert total(m["cf_llm_calls"]) == MAX_MODELS + 10


async def test_metrics_are_not_forwarded_and_need_no_token(start_proxy, client, fake):
    proxy = await start_proxy()
    await scrape(client, proxy)
    assert fake.requests() == []
    assert proxy.records() == []  # a scrape is not a call


def test_the_exposition_parses_and_overflows_into_one_series():
    c = Counter("t_total", 'help with "quotes" \\ and\nnewline', ("k",), {"bot": "b"}, max_series=2)
    for key in ("a", "b", "c", "d"):
        c.inc((key,))
    h = Histogram("t_seconds", "h", (0.1, 1.0), ("k",), {"bot": "b"})
    for v in (0.05, 0.1, 0.5, 5.0):
        h.observe(("x",), v)
    families = {f.name: f for f in text_string_to_metric_families(render([c, h]).decode())}
    samples = {s.labels["k"]: s.value for s in families["t"].samples}
    assert samples == {"a": 1, "b": 1, OVERFLOW: 2}
    buckets = {
        s.labels["le"]: s.value for s in families["t_seconds"].samples if s.name.endswith("_bucket")
    }
    assert buckets == {"0.1": 2, "1.0": 3, "+Inf": 4}
