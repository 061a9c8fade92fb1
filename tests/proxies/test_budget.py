"""The operator's budget: past the daily tokens or the requests per minute,
calls answer 429 saying which limit and when it resets, and are recorded."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from cfproxies.record import new_record

from tests.proxies.proxyhelpers import AUTH, anthropic_body


async def _post(client, proxy):
    async with client.post(
        f"{proxy.url}/anthropic/v1/messages", json=anthropic_body(), headers=AUTH
    ) as resp:
        return resp.status, dict(resp.headers), await resp.json()


async def test_daily_token_budget_refuses_with_429_until_midnight_utc(start_proxy, fake, client):
    proxy = await start_proxy("--daily-token-budget", "5")
    status, _, _ = await _post(client, proxy)
    assert status == 200  # the budget is checked before a call; this one uses it up
    await proxy.wait_records(1)
    status, headers, body = await _post(client, proxy)
    assert status == 429
    error = body["error"]
    assert error["limit"] == "daily_token_budget"
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT00:00:00Z")
    assert error["resets_at"] == tomorrow
    assert 0 < int(headers["Retry-After"]) <= 86400
    assert len(fake.requests()) == 1  # the refused call never reached the provider
    recs = await proxy.wait_records(2)
    assert recs[1]["status"] == 429
    assert recs[1]["error_kind"] == "budget"
    assert recs[1]["budget_limit"] == "daily_token_budget"


async def test_requests_per_minute_cap_refuses_the_next_call(start_proxy, fake, client):
    proxy = await start_proxy("--rpm", "2")
    assert (await _post(client, proxy))[0] == 200
    assert (await _post(client, proxy))[0] == 200
    status, headers, body = await _post(client, proxy)
    assert status == 429
    assert body["error"]["limit"] == "rpm"
    assert 0 < int(headers["Retry-After"]) <= 60
    recs = await proxy.wait_records(3)
    assert [r["status"] for r in recs] == [200, 200, 429]
    assert recs[2]["budget_limit"] == "rpm"


async def test_restart_keeps_todays_token_count(start_proxy, client, audit_dir):
    now = datetime.now(UTC).timestamp()
    lines = []
    for bot, tokens in (("bot1", 60), ("other", 1000)):
        rec = new_record(bot=bot, provider="anthropic", method="POST", path="/x", epoch=now)
        rec["tokens_in"] = tokens
        lines.append(json.dumps(rec))
    old = new_record(
        bot="bot1", provider="anthropic", method="POST", path="/x", epoch=now - 2 * 86400
    )
    old["tokens_in"] = 10_000
    lines.append(json.dumps(old))
    (audit_dir / "traffic.jsonl").write_text("\n".join(lines) + "\n{torn")
    proxy = await start_proxy("--daily-token-budget", "100")
    async with client.get(f"{proxy.url}/health") as resp:
        assert (await resp.json())["budget"]["tokens_today"] == 60
    proxy2 = await start_proxy("--daily-token-budget", "50")
    assert (await _post(client, proxy2))[0] == 429
    recs = await proxy2.wait_records(4)
    assert recs[-1]["status"] == 429  # written on a line of its own after the torn one


def test_daily_budget_resets_at_utc_midnight_and_rpm_after_a_minute():
    import time

    from cfproxies.llm_proxy.budget import Budget

    budget = Budget(daily_tokens=100, rpm=None)
    now = time.time()
    budget.add_tokens(150, now)
    refusal = budget.check(now)
    assert refusal is not None and refusal.limit == "daily_token_budget"
    assert refusal.resets_at > now and refusal.resets_at % 86400 == 0
    assert budget.check(refusal.resets_at + 1) is None
    rpm = Budget(daily_tokens=None, rpm=1)
    assert rpm.check(now) is None
    refusal = rpm.check(now + 30)
    assert refusal is not None and refusal.retry_after(now + 30) == 30
    assert rpm.check(now + 60.5) is None
