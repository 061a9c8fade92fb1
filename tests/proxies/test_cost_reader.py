"""The operator's reader on what the real LLM proxy writes (real HTTP to the
fake provider, Anthropic, OpenAI and Gemini, streamed and not, an unknown
model): the totals, the spend per model and the month's counter add up the
`cost_usd` of the records the proxy wrote, and count the unpriced call
apart. The fast paths (the price read from a line's header or tail) agree
with the records parsed whole."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from cftui.audit.traffic.daily import DailyCounter, month_start
from cftui.audit.traffic.fields import PICO, cost_pico
from cftui.audit.traffic.log import TrafficLog
from cftui.audit.traffic.spend import spend
from cftui.audit.traffic.totals import Totals, chunk_totals
from tests.proxies.proxyhelpers import AUTH, BEARER, GOOG, anthropic_body, gemini_body, openai_body


async def _post(client, url: str, body: dict, headers: dict) -> None:
    async with client.post(url, json=body, headers=headers) as resp:
        await resp.read()


async def test_the_reader_adds_up_what_the_proxy_priced(start_proxy, client) -> None:
    proxy = await start_proxy()
    base = proxy.url
    for stream in (False, True):
        await _post(client, f"{base}/anthropic/v1/messages", anthropic_body(stream=stream), AUTH)
        await _post(client, f"{base}/openai/v1/chat/completions", openai_body(stream), BEARER)
    await _post(
        client, f"{base}/gemini/v1beta/models/gemini-2.5-flash:generateContent", gemini_body(), GOOG
    )
    unknown = {**anthropic_body(), "model": "claude-from-the-future-9"}
    await _post(client, f"{base}/anthropic/v1/messages", unknown, AUTH)
    records = await proxy.wait_records(6)
    assert len(records) == 6
    priced = [r for r in records if cost_pico(r.get("cost_usd")) is not None]
    assert len(priced) == 5 and all(r["cost_usd"] > 0 for r in priced)
    want = sum(round(r["cost_usd"] * PICO) for r in priced)

    with TrafficLog(proxy.log_path) as log:
        totals = log.totals()
    assert (totals.calls, totals.priced, totals.unpriced) == (6, 5, 1)
    assert totals.cost_pico == want

    raw = proxy.log_path.read_bytes()
    fast, slow = Totals(), Totals()
    chunk_totals(raw, fast)
    for line in raw.splitlines():
        slow.add_line(line)
    assert fast == slow == totals

    by_model = spend(proxy.log_path, "model")
    assert by_model["claude-from-the-future-9"].unpriced == 1
    assert by_model["claude-from-the-future-9"].priced == 0
    claude = [r for r in priced if r["model"] == "claude-sonnet-4-5"]
    assert math.isclose(by_model["claude-sonnet-4-5"].cost_usd, sum(r["cost_usd"] for r in claude))

    now = datetime.now(UTC)
    month = DailyCounter(proxy.log_path, month_start).update(now)
    assert (month.calls, month.cost_pico) == (6, want)
