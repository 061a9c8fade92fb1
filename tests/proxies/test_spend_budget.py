"""Money budgets (issue 19): per UTC day and calendar month, the proxy
refuses calls once a budget is spent, with a 429 in the provider's own shape
naming the budget and its reset; the spend survives a restart (from
spend.json's checkpoint, or the whole log when that is missing or stale);
the day resets at midnight UTC; and concurrent calls overrun a nearly spent
budget by at most the reservation of one call (spend.py states the bound)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from cfproxies.record import new_record

from tests.proxies.proxyhelpers import AUTH, BEARER, GOOG, anthropic_body, gemini_body, openai_body

ANTHROPIC = "/anthropic/v1/messages"
# A call that costs about $0.0045 in output (300 words, one token each at the
# fake) and reserves more: its max_tokens of 400 at $15/MTok, plus its prompt.
BIG = {**anthropic_body(), "max_tokens": 400}
BIG_REPLY = {"x-fake-reply": " ".join(["word"] * 300)}
# Make each call cost about $0.0045 at claude-sonnet-4-5's prices ($3.75/MTok writes).
PRICEY = {"x-fake-cache-write": "1200"}


async def _post(client, proxy, path=ANTHROPIC, body=None, headers=None):
    async with client.post(
        f"{proxy.url}{path}", json=body or anthropic_body(), headers=headers or {**AUTH, **PRICEY}
    ) as resp:
        return resp.status, dict(resp.headers), await resp.json()


async def _spend_until_refused(client, proxy, limit=20) -> int:
    for n in range(limit):
        status, _, _ = await _post(client, proxy)
        if status == 429:
            return n
        assert status == 200
    raise AssertionError("the budget never refused a call")


async def test_daily_budget_refuses_with_429_naming_it_and_its_reset(start_proxy, fake, client):
    proxy = await start_proxy("--daily-usd-budget", "0.012")
    calls = await _spend_until_refused(client, proxy)
    assert 2 <= calls <= 3  # a few calls' worth
    status, headers, body = await _post(client, proxy)
    assert status == 429
    assert body["type"] == "error"  # Anthropic's error shape
    error = body["error"]
    assert error["type"] == "rate_limit_error" and error["limit"] == "daily_usd_budget"
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT00:00:00Z")
    assert error["resets_at"] == tomorrow
    assert "daily budget of $0.012 spent" in error["message"] and tomorrow in error["message"]
    assert 0 < int(headers["Retry-After"]) <= 86400 and error["retry_after_s"] > 0
    assert len(fake.requests()) == calls  # refused calls never reach the provider
    recs = await proxy.wait_records(calls + 2)
    assert recs[-1]["status"] == 429 and recs[-1]["budget_limit"] == "daily_usd_budget"
    assert recs[-1]["cost_usd"] == 0.0 and recs[-1]["cost_status"] == "not_sent"
    assert sum(r["cost_usd"] for r in recs) >= 0.012


@pytest.mark.parametrize(
    ("path", "body", "headers"),
    [
        ("/openai/v1/chat/completions", openai_body(), BEARER),
        ("/gemini/v1beta/models/gemini-2.5-flash:generateContent", gemini_body(), GOOG),
    ],
)
async def test_the_refusal_is_in_each_providers_error_shape(
    start_proxy, client, path, body, headers
):
    proxy = await start_proxy("--daily-usd-budget", "0.000001")
    assert (await _post(client, proxy, path, body, headers))[0] == 200
    status, headers_back, reply = await _post(client, proxy, path, body, headers)
    assert status == 429 and "Retry-After" in headers_back
    error = reply["error"]
    assert error["limit"] == "daily_usd_budget" and "resets_at" in error
    if path.startswith("/gemini"):
        assert error["code"] == 429 and error["status"] == "RESOURCE_EXHAUSTED"
    else:
        assert error["code"] == "rate_limit_exceeded" and error["type"] == "rate_limit_error"


async def test_monthly_budget_resets_on_the_first_of_next_month(start_proxy, client):
    proxy = await start_proxy("--monthly-usd-budget", "0.000001", "--daily-usd-budget", "100")
    assert (await _post(client, proxy))[0] == 200
    status, _, body = await _post(client, proxy)
    assert status == 429 and body["error"]["limit"] == "monthly_usd_budget"
    now = datetime.now(UTC)
    first = datetime(now.year + (now.month == 12), now.month % 12 + 1, 1, tzinfo=UTC)
    assert body["error"]["resets_at"] == first.strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_the_day_resets_at_midnight_utc(start_proxy, client):
    clock = [datetime(2026, 3, 9, 23, 59, 0, tzinfo=UTC).timestamp()]
    proxy = await start_proxy("--daily-usd-budget", "0.001", clock=lambda: clock[0])
    assert (await _post(client, proxy))[0] == 200
    status, _, body = await _post(client, proxy)
    assert status == 429 and body["error"]["resets_at"] == "2026-03-10T00:00:00Z"
    clock[0] += 59.5  # still the 9th
    assert (await _post(client, proxy))[0] == 429
    clock[0] += 1.0  # the 10th
    assert (await _post(client, proxy))[0] == 200
    assert proxy.state.spend.today == "2026-03-10"


async def test_a_restart_keeps_the_spend_from_the_checkpoint(start_proxy, client, audit_dir):
    proxy = await start_proxy("--daily-usd-budget", "0.012")
    await _spend_until_refused(client, proxy)
    spent = proxy.state.spend.today_usd
    await proxy.stop()  # writes the checkpoint
    state = json.loads((audit_dir / "spend.json").read_text())
    assert state["bot"] == "bot1" and abs(state["today_usd"] - spent) < 1e-9
    assert state["crossed"] == {"day": [80, 100]}
    assert (audit_dir / "spend.json").stat().st_mode & 0o777 == 0o600
    again = await start_proxy("--daily-usd-budget", "0.012")
    assert again.state.spend.rebuilt.startswith("checkpoint at byte")
    assert abs(again.state.spend.today_usd - spent) < 1e-9
    status, _, body = await _post(client, again)
    assert status == 429 and body["error"]["limit"] == "daily_usd_budget"


async def test_a_restart_without_a_checkpoint_rebuilds_from_the_log(start_proxy, client, audit_dir):
    proxy = await start_proxy("--daily-usd-budget", "0.012")
    await _spend_until_refused(client, proxy)
    spent = proxy.state.spend.today_usd
    await proxy.stop()
    (audit_dir / "spend.json").unlink()
    again = await start_proxy("--daily-usd-budget", "0.012")
    assert again.state.spend.rebuilt == "whole log"
    assert abs(again.state.spend.today_usd - spent) < 1e-9
    assert (await _post(client, again))[0] == 429


async def test_a_stale_checkpoint_is_not_trusted(start_proxy, client, audit_dir):
    proxy = await start_proxy("--daily-usd-budget", "0.012")
    await _spend_until_refused(client, proxy)
    await proxy.stop()
    # The log was replaced since (the operator rotated it): same size or not,
    # the checkpoint no longer describes it.
    log = audit_dir / "traffic.jsonl"
    data = log.read_bytes()
    log.unlink()
    log.write_bytes(data.replace(b'"cost_usd":0.00', b'"cost_usd":0.10'))
    again = await start_proxy("--daily-usd-budget", "100")
    assert again.state.spend.rebuilt == "whole log (checkpoint stale)"
    assert again.state.spend.today_usd > 0.2


async def test_checkpoint_plus_later_lines_counts_each_call_once(start_proxy, client, audit_dir):
    """A proxy killed after its last checkpoint: the calls after it are read
    from the log; the calls before it are not counted again."""
    proxy = await start_proxy("--daily-usd-budget", "100")
    for _ in range(3):
        assert (await _post(client, proxy))[0] == 200
    await proxy.wait_records(3)
    proxy.state.spend.checkpoint(force=True)
    checkpoint = (audit_dir / "spend.json").read_bytes()
    for _ in range(2):
        assert (await _post(client, proxy))[0] == 200
    recs = await proxy.wait_records(5)
    await proxy.stop()
    (audit_dir / "spend.json").write_bytes(checkpoint)  # as if killed before the next one
    again = await start_proxy("--daily-usd-budget", "100")
    assert again.state.spend.rebuilt.startswith("checkpoint at byte")
    want = sum(r["cost_usd"] for r in recs)
    assert abs(again.state.spend.today_usd - want) < 1e-9
    assert again.state.spend.days[again.state.spend.today].calls == 5


def _line(rec: dict) -> str:
    return json.dumps(rec, separators=(",", ":"))


async def test_torn_and_forged_lines_do_not_crash_the_rebuild(start_proxy, client, audit_dir):
    now = time.time()
    good = new_record(bot="bot1", provider="anthropic", method="POST", path="/x", epoch=now)
    good.update(status=200, cost_usd=0.25, cost_status="priced")
    legacy = dict(good, id="f" * 32)  # written before costs: priced from its usage
    del legacy["cost_usd"], legacy["cost_status"], legacy["phase"]
    legacy.update(model="claude-sonnet-4-5", tokens_in=1_000_000, tokens_out=0)
    started = dict(good, id="a" * 32, phase="start", cost_est_usd=0.5)  # its proxy died
    del started["cost_usd"], started["cost_status"]
    hostile = [
        b'{"v":1,"phase":"end","id":"' + b"b" * 20,  # torn mid-line
        _line(dict(good, cost_usd="lots", phase=None)).encode(),
        _line(dict(good, cost_usd=-5.0, phase=None)).encode(),
        _line(dict(good, ts=12, phase=None)).encode(),
        _line(dict(good, bot="other", phase=None)).encode(),
        _line(dict(good, cost_status="no_usage", cost_est_usd=[1], phase=None)).encode(),
        b"[" * 100_000 + b"]" * 100_000,
        b"\xff\xfe not utf-8 \x00",
        b'{"v":1,"phase":"start","id":"' + b"c" * 32 + b'","ts":"9999-99',
    ]
    good_start = dict(started, id=good["id"])
    lines = [_line(good_start).encode(), *hostile, _line(good).encode()]
    lines += [_line(legacy).encode(), _line(started).encode()]
    (audit_dir / "traffic.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    (audit_dir / "spend.json").write_bytes(b'{"v":1,"bot":"bot1","days":{"x":1}')  # torn too
    proxy = await start_proxy("--daily-usd-budget", "100")
    spend = proxy.state.spend
    assert spend.rebuilt == "whole log (checkpoint stale)" or spend.rebuilt == "whole log"
    # 0.25 + the legacy call's million input tokens (past the 200k tier:
    # $6/MTok) + the dead call's estimate; an end with no start (a refused
    # call) is free, and nothing else counts.
    assert abs(spend.today_usd - (0.25 + 6.0 + 0.5)) < 1e-9
    # charged an estimate: the dead call, and the no_usage line (its bad estimate as 0)
    assert spend.days[spend.today].estimated == 2
    assert (await _post(client, proxy))[0] == 200


async def test_concurrent_calls_overrun_a_nearly_spent_budget_by_at_most_one_reservation(
    start_proxy, client
):
    budget = 0.05
    proxy = await start_proxy("--daily-usd-budget", str(budget))
    # Spend up to within one call of the budget.
    while proxy.state.spend.today_usd + 0.0045 * 2 < budget:
        assert (await _post(client, proxy, body=BIG, headers={**AUTH, **BIG_REPLY}))[0] == 200
    slow = {**AUTH, **BIG_REPLY, "x-fake-delay-ms": "300"}
    results = await asyncio.gather(
        *(_post(client, proxy, body=BIG, headers=slow) for _ in range(32))
    )
    statuses = [r[0] for r in results]
    assert statuses.count(200) >= 1 and statuses.count(429) >= 24
    recs = await proxy.wait_records(len(proxy.records()) + 0)
    admitted = [r for r in recs if r.get("cost_est_usd") is not None and r["status"] == 200]
    largest = max(r["cost_est_usd"] for r in admitted)
    spent = proxy.state.spend.today_usd
    assert spent <= budget + largest  # overrun by at most one reservation, if at all
    assert proxy.state.spend.reserved == 0.0 and not proxy.state.spend.open


async def test_with_room_for_a_few_calls_concurrency_admits_only_those(start_proxy, client):
    proxy = await start_proxy("--daily-usd-budget", "0.02")
    slow = {**AUTH, **BIG_REPLY, "x-fake-delay-ms": "300"}
    results = await asyncio.gather(
        *(_post(client, proxy, body=BIG, headers=slow) for _ in range(32))
    )
    ok = [r for r in results if r[0] == 200]
    recs = await proxy.wait_records(32)
    largest = max(r["cost_est_usd"] for r in recs if r["status"] == 200)
    # Each admitted call reserved its estimate: admission stopped once the
    # reservations reached the budget, not after 32 calls.
    assert 1 <= len(ok) <= 0.02 / min(r["cost_est_usd"] for r in recs if r["status"] == 200) + 1
    assert proxy.state.spend.today_usd <= 0.02 + largest


async def test_a_crossed_threshold_is_written_to_spend_json_at_once(start_proxy, client, audit_dir):
    """cftui's events come from spend.json: a crossing may not wait for the
    next periodic rewrite (here an hour away)."""
    proxy = await start_proxy("--daily-usd-budget", "0.012", "--spend-checkpoint-s", "3600")
    await _spend_until_refused(client, proxy)
    await proxy.wait_records(3)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while loop.time() < deadline:
        state = json.loads((audit_dir / "spend.json").read_text())
        if state["crossed"].get("day") == [80, 100]:
            break
        await asyncio.sleep(0.02)
    assert state["crossed"] == {"day": [80, 100]}
    assert state["today_usd"] >= 0.012 and state["daily_usd_budget"] == 0.012
