"""What each call cost (issue 19): every end record carries `cost_usd`, the
price genai-prices itself gives for the same usage (cache reads and writes at
their own rates, never counted twice), or the operator's price when
fleet.toml sets one; null with a `cost_status` when there is no price or no
usage. Tested through the proxy, against the fake provider, for each wire
format, streamed and not."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
import warnings

import genai_prices
import pytest
from cfproxies.llm_proxy.pricing import GENAI_PROVIDER, Pricer, Rates, Usage

from tests.proxies.proxyhelpers import AUTH, BEARER, GOOG, anthropic_body, gemini_body, openai_body


def genai_cost(rec: dict, provider_id: str, model: str | None = None) -> float:
    usage = genai_prices.Usage(
        input_tokens=rec["tokens_in"],
        output_tokens=rec["tokens_out"],
        cache_read_tokens=rec["cache_read"],
        cache_write_tokens=rec["cache_write"],
    )
    return float(
        genai_prices.calc_price(usage, model or rec["model"], provider_id=provider_id).total_price
    )


async def _call(client, url, body, headers, status=200):
    async with client.post(url, json=body, headers=headers) as resp:
        assert resp.status == status, await resp.text()
        return await resp.read()


def _same(got: float, want: float) -> bool:
    return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12)


CACHE = {"x-fake-cache-read": "1200", "x-fake-cache-write": "300"}


@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_call_costs_what_genai_prices_says_with_cache_read_and_write(
    start_proxy, client, stream
):
    proxy = await start_proxy()
    await _call(
        client,
        f"{proxy.url}/anthropic/v1/messages",
        anthropic_body(stream=stream),
        {**AUTH, **CACHE},
    )
    (rec,) = await proxy.wait_records(1)
    assert rec["cache_read"] == 1200 and rec["cache_write"] == 300
    assert rec["cost_status"] == "priced"
    assert _same(rec["cost_usd"], genai_cost(rec, "anthropic"))
    # Not the naive price that counts the cached tokens twice, nor at the input rate.
    naive = (rec["tokens_in"] * 3 + rec["tokens_out"] * 15) / 1e6
    assert rec["cost_usd"] < naive
    assert rec["cost_est_usd"] > 0  # the reservation it was admitted with


@pytest.mark.parametrize("stream", [False, True])
async def test_openai_call_costs_what_genai_prices_says(start_proxy, client, stream):
    proxy = await start_proxy()
    await _call(
        client,
        f"{proxy.url}/openai/v1/chat/completions",
        openai_body(stream=stream, text="a b c d"),
        {**BEARER, "x-fake-cache-read": "1024", "x-fake-reasoning": "50"},
    )
    (rec,) = await proxy.wait_records(1)
    assert rec["cost_status"] == "priced"
    assert _same(rec["cost_usd"], genai_cost(rec, "openai"))


async def test_openrouter_call_is_priced_as_openrouter_serves_the_model(start_proxy, client):
    proxy = await start_proxy()
    body = {**openai_body(), "model": "anthropic/claude-sonnet-4"}
    await _call(client, f"{proxy.url}/openrouter/v1/chat/completions", body, BEARER)
    (rec,) = await proxy.wait_records(1)
    assert rec["cost_status"] == "priced"
    assert _same(rec["cost_usd"], genai_cost(rec, "openrouter"))


@pytest.mark.parametrize(
    "action", ["generateContent", "streamGenerateContent?alt=sse", "streamGenerateContent"]
)
async def test_gemini_call_costs_what_genai_prices_says(start_proxy, client, action):
    proxy = await start_proxy()
    await _call(
        client,
        f"{proxy.url}/gemini/v1beta/models/gemini-2.5-flash:{action}",
        gemini_body("x y z"),
        {**GOOG, "x-fake-cache-read": "2048", "x-fake-reasoning": "30"},
    )
    (rec,) = await proxy.wait_records(1)
    assert rec["model"] == "gemini-2.5-flash" and rec["cache_read"] == 2048
    assert rec["cost_status"] == "priced"
    assert _same(rec["cost_usd"], genai_cost(rec, "google"))


async def test_unknown_model_is_recorded_with_a_null_cost_and_counted(start_proxy, client):
    proxy = await start_proxy("--daily-usd-budget", "1")
    body = {**anthropic_body(), "model": "claude-from-the-future-9"}
    await _call(client, f"{proxy.url}/anthropic/v1/messages", body, AUTH)
    (rec,) = await proxy.wait_records(1)
    assert rec["cost_usd"] is None and rec["cost_status"] == "unknown_model"
    assert rec["tokens_in"] > 0
    proxy.state.spend.checkpoint(force=True)
    spend = json.loads((proxy.config.audit_dir / "spend.json").read_text())
    (day,) = spend["days"].values()
    assert day == {"usd": 0.0, "calls": 1, "unpriced": 1, "estimated": 0}


async def test_the_operators_price_wins_over_the_database(start_proxy, client):
    prices = {
        "claude-sonnet-4-5": {
            "input_per_mtok": 1.0,
            "output_per_mtok": 2.0,
            "cache_read_per_mtok": 0.5,
            "cache_write_per_mtok": 4.0,
        },
        "my-llama": {"input_per_mtok": 0.25, "output_per_mtok": 0.5},
    }
    proxy = await start_proxy("--prices", json.dumps(prices))
    url = f"{proxy.url}/anthropic/v1/messages"
    await _call(client, url, anthropic_body(), {**AUTH, **CACHE})
    await _call(client, url, {**anthropic_body(), "model": "my-llama"}, {**AUTH, **CACHE})
    rec, llama = await proxy.wait_records(2)
    plain = rec["tokens_in"] - 1200 - 300
    want = (plain * 1.0 + 1200 * 0.5 + 300 * 4.0 + rec["tokens_out"] * 2.0) / 1e6
    assert rec["cost_status"] == "override" and _same(rec["cost_usd"], want)
    # A model the database does not know, priced by the operator; no cache
    # rates given: cached tokens at the input rate.
    want = (llama["tokens_in"] * 0.25 + llama["tokens_out"] * 0.5) / 1e6
    assert llama["cost_status"] == "override" and _same(llama["cost_usd"], want)


async def test_a_stream_without_usage_has_no_cost_and_a_refused_call_costs_nothing(
    start_proxy, client
):
    proxy = await start_proxy("--daily-usd-budget", "5")
    body = openai_body(stream=True, include_usage=False)
    await _call(client, f"{proxy.url}/openai/v1/chat/completions", body, BEARER)
    headers = {**BEARER, "authorization": "Bearer wrong-token-123"}
    await _call(client, f"{proxy.url}/openai/v1/chat/completions", openai_body(), headers, 401)
    no_usage, refused = await proxy.wait_records(2)
    assert no_usage["cost_usd"] is None and no_usage["cost_status"] == "no_usage"
    assert refused["cost_usd"] == 0.0 and refused["cost_status"] == "not_sent"
    # Hiding its usage does not make a call free: it is charged its reservation.
    today = proxy.state.spend.today_usd
    assert math.isclose(today, no_usage["cost_est_usd"], abs_tol=1e-9) and today > 0


async def test_an_error_answer_with_no_usage_costs_nothing(start_proxy, client):
    proxy = await start_proxy()
    headers = {**AUTH, "x-fake-status": "400"}
    await _call(client, f"{proxy.url}/anthropic/v1/messages", anthropic_body(), headers, 400)
    (rec,) = await proxy.wait_records(1)
    assert rec["cost_usd"] == 0.0 and rec["cost_status"] == "upstream_error"


def test_cached_rates_price_as_genai_prices_does_for_every_model_and_usage() -> None:
    """The per-model shortcut against genai-prices itself: every model of the
    four providers, random usages (long contexts past the price tiers too)."""
    pricer = Pricer({})
    snapshot = genai_prices.data_snapshot.get_snapshot()
    rnd = random.Random(19)
    checked = 0
    for ours, theirs in GENAI_PROVIDER.items():
        provider = next(p for p in snapshot.providers if p.id == theirs)
        for model in provider.models:
            rates = pricer.rates(ours, model.id)
            if not isinstance(rates, Rates):
                continue
            for _ in range(3):
                tokens_in = rnd.randint(0, 400_000)
                read = rnd.randint(0, tokens_in // 2)
                write = rnd.randint(0, (tokens_in - read) // 2) if ours == "anthropic" else 0
                usage = Usage(tokens_in, rnd.randint(0, 8000), read, write)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    want = model.calc_price(
                        genai_prices.Usage(
                            input_tokens=usage.tokens_in,
                            output_tokens=usage.tokens_out,
                            cache_read_tokens=usage.cache_read,
                            cache_write_tokens=usage.cache_write,
                        ),
                        provider,
                    ).total_price
                assert _same(rates.cost(*usage), float(want)), (ours, model.id, usage)
                checked += 1
    assert checked > 300


def test_a_model_is_looked_up_once_then_priced_from_the_cache() -> None:
    pricer = Pricer({})
    for _ in range(1000):
        pricer.cost("anthropic", "claude-sonnet-4-5", Usage(1000, 100, 200, 50))
        pricer.cost("anthropic", "no-such-model", Usage(1000, 100, 0, 0))
    assert pricer.lookups == 2


def test_the_agents_model_names_cannot_grow_the_cache_or_slow_the_lookup() -> None:
    from cfproxies.llm_proxy import pricing

    pricer = Pricer({})
    assert pricer.cost("openai", "gpt-4o" + "x" * 100_000, Usage(1, 1, 0, 0)) == (
        None,
        "unknown_model",
    )
    assert pricer.lookups == 0  # too long to be a model: never looked up
    for n in range(pricing.MAX_CACHED + 10):
        pricer.rates("openai", f"made-up-{n}")
    assert len(pricer._cache) <= pricing.MAX_CACHED


def test_prices_come_from_the_bundled_data_with_no_network() -> None:
    """Every connection refused: the proxy's pricing still works, and
    genai-prices' auto-update is not running."""
    code = """
import socket
def refuse(*a, **k):
    raise OSError("network is off in this test")
socket.socket.connect = refuse
socket.create_connection = refuse
from cfproxies.llm_proxy.pricing import Pricer, Usage
from genai_prices import data_snapshot
p = Pricer({})
for provider, model in [("anthropic", "claude-sonnet-4-5"), ("openai", "gpt-4o-mini"),
                        ("gemini", "gemini-2.5-flash")]:
    cost, status = p.cost(provider, model, Usage(1000, 100, 100, 0))
    assert status == "priced" and cost > 0, (model, cost, status)
assert data_snapshot.get_snapshot().from_auto_update is False
print("ok")
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
