"""What calls cost, as the traffic reader adds it up: the C-speed totals of
a chunk, of a filter's matching lines and of byte ranges in worker
processes agree with the parsed records; a record without a price (null,
absent in an old log, or a value no provider would write) is unpriced,
counted apart, never $0; spend by model, provider and day since a date;
the month's counter."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from cfproxies.jsoncodec import dumps_line
from cfproxies.record import new_record, start_line

from cftui.audit.traffic import scan as traffic_scan
from cftui.audit.traffic import spend as traffic_spend
from cftui.audit.traffic.daily import DailyCounter, month_start
from cftui.audit.traffic.fields import PICO, cost_pico, record_cost
from cftui.audit.traffic.filter import TrafficFilter
from cftui.audit.traffic.log import TrafficLog
from cftui.audit.traffic.spend import NONE, OTHER, since_ts, spend
from cftui.audit.traffic.totals import Totals, chunk_totals
from tests.audit.test_traffic_filter_edges import COMPACT, SPACED, TRICKY, rec, write


def priced(n: int, cost: object, **over: object) -> dict:
    return rec(n, **over) | {"cost_usd": cost}


ODD_COSTS: list[object] = [None, "0.5", -1.0, True, 10**400, 1e300, float("nan")]

PRICED = [
    *TRICKY,
    priced(20, 0.0031, provider="openai", model="gpt-4o"),
    priced(21, 0.25),
    priced(22, 0),  # a free call is priced at 0, and counted as priced
    priced(23, None) | {"cost_status": "unknown_model"},
    # A decoy price in the request body: only the record's own key counts.
    priced(24, None, request={"cost_usd": 99.0}),
    rec(25, request={"cost_usd": 7.0}),  # an old record: no own key, a decoy
    # The record's own key after its bodies (a writer that appends it).
    {**rec(26), "cost_usd": 0.5},
    {"cost_usd": 1.5e-5, **rec(27)},
    priced(28, "0.5"),  # a string is no price
    priced(29, -2.0),  # nor a credit
    priced(30, 1e-12),
    # The proxy's order: the price after the bodies and the raw usage.
    {**rec(31), "usage_raw": {"cost_usd": 3.0}, "cost_usd": 0.002, "cost_status": "priced"},
    # A nested price last of all (the upstream's usage): not the record's own.
    {**rec(32), "usage_raw": {"cost_usd": 3.0}},
    {**rec(33), "cost_usd": 0.004, "cost_status": "odd}]"},  # brackets after the key
    {**rec(34), "cost_usd": None, "cost_status": "unknown_model"},
]


def expected_cost(records: list[dict | None]) -> tuple[int, int]:
    """(priced calls, picodollars) from parsed records."""
    costs = [record_cost(r) for r in records if r is not None]
    found = [c for c in costs if c is not None]
    return len(found), sum(round(c * PICO) for c in found)


def test_a_cost_is_a_finite_non_negative_number() -> None:
    assert cost_pico(0.0031) == 3_100_000_000
    assert cost_pico(0) == 0
    for odd in ODD_COSTS:
        assert cost_pico(odd) is None, odd
    assert cost_pico(float("inf")) is None


@pytest.mark.parametrize("odd", ODD_COSTS, ids=repr)
def test_chunk_cost_counts_as_each_line_would(odd: object) -> None:
    records = [priced(n, (0.001 * n if n % 4 else odd)) for n in range(40)]
    records[5] = rec(5)  # an old record among them
    records[9] = {**rec(9), "cost_usd": 0.2}  # the key after the bodies
    lines = [json.dumps(r, allow_nan=True) for r in records]
    chunk = "\n".join(lines).encode() + b"\n"
    fast, slow = Totals(), Totals()
    chunk_totals(chunk, fast)
    for line in chunk.split(b"\n")[:-1]:
        slow.add_line(line)
    assert fast == slow
    assert slow.priced == expected_cost([json.loads(x) for x in lines])[0]
    assert slow.unpriced == slow.calls - slow.priced > 0


def test_an_old_log_is_unpriced_never_free(tmp_path: Path) -> None:
    path = tmp_path / "traffic.jsonl"
    write(path, [rec(n) for n in range(30)], COMPACT, torn=False)
    with TrafficLog(path) as log:
        totals = log.totals()
    assert (totals.calls, totals.priced, totals.unpriced, totals.cost_pico) == (30, 0, 30, 0)


@pytest.fixture(params=["tiny", "here", "workers"])
def cut(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    monkeypatch.setattr(traffic_scan, "RANGE", 300 if request.param == "tiny" else 1000)
    monkeypatch.setattr(traffic_scan, "PARALLEL_MIN", 0 if request.param == "workers" else 1 << 40)
    return request.param


@pytest.mark.parametrize("style", [COMPACT, SPACED], ids=["compact", "spaced"])
@pytest.mark.parametrize("spec", ["", "provider:openai", "model:claude", "status:ok", "answer"])
def test_filter_costs_agree_with_parsed_records(
    tmp_path: Path, cut: str, style: dict, spec: str
) -> None:
    path = tmp_path / "traffic.jsonl"
    write(path, PRICED * 5, style)
    flt = TrafficFilter.parse(spec)
    with TrafficLog(path) as log:
        log.scan()
        records = [log.record(i) for i in range(len(log))]
        matching = [r for r in records if r is not None and flt.matches(r)]
        result = log.filter(flt)
    t = result.totals
    assert t.calls == len(matching)
    assert (t.priced, t.cost_pico) == expected_cost(matching)
    assert t.unpriced == len(matching) - t.priced


def proxy_lines(ts: str, model: str, cost: float | None, *, ended: bool = True) -> list[bytes]:
    """A call as the proxy writes it: a start line, then (if `ended`) its end."""
    record = new_record(bot="alpha", provider="openai", method="POST", path="/v1", epoch=0)
    record.update(ts=ts, model=model)
    start = start_line(record, 500)
    record.update(status=200, tokens_in=10, tokens_out=5, cost_usd=cost)
    if cost is None:
        record["cost_status"] = "unknown_model"
    return [dumps_line(start)] + ([dumps_line(record)] if ended else [])


def spend_log(path: Path) -> None:
    lines = []
    for day in (22, 23, 24):
        for hour in range(0, 24, 6):
            ts = f"2026-11-{day:02d}T{hour:02d}:15:00.000Z"
            lines += proxy_lines(ts, "gpt-4o", 0.01)
            lines += proxy_lines(ts, "mystery-1", None)
    lines += proxy_lines("2026-11-24T23:00:00.000Z", "gpt-4o", None, ended=False)
    path.write_bytes(b"".join(lines))


@pytest.mark.parametrize("where", ["here", "workers"])
def test_spend_by_model_and_day_since_a_date(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    if where == "workers":
        monkeypatch.setattr(traffic_spend, "PARALLEL_MIN", 0)
        monkeypatch.setattr(traffic_spend, "RANGE", 2000)
    path = tmp_path / "traffic.jsonl"
    spend_log(path)
    by_model = spend(path, "model", since_ts(date(2026, 11, 23)))
    assert set(by_model) == {"gpt-4o", "mystery-1"}
    gpt, mystery = by_model["gpt-4o"], by_model["mystery-1"]
    # 8 priced calls, and the unfinished one: a call, unpriced
    assert (gpt.calls, gpt.priced, gpt.unfinished, gpt.cost_pico) == (9, 8, 1, 8 * PICO // 100)
    assert (mystery.calls, mystery.priced, mystery.unpriced) == (8, 0, 8)
    by_day = spend(path, "day")
    assert sorted(by_day) == ["2026-11-22", "2026-11-23", "2026-11-24"]
    assert [by_day[d].calls for d in sorted(by_day)] == [8, 8, 9]
    assert by_day["2026-11-22"].cost_usd == pytest.approx(0.04)
    by_hour = spend(path, "hour", since_ts(datetime(2026, 11, 24, 12, 30, tzinfo=UTC)))
    assert sorted(by_hour) == ["2026-11-24T12", "2026-11-24T18", "2026-11-24T23"]
    whole = spend(path, "bot", bot="alpha")["alpha"]
    assert (whole.calls, whole.priced, whole.unpriced) == (25, 12, 13)
    assert spend(path, "provider", since_ts(date(2026, 12, 1))) == {}
    assert spend(tmp_path / "none.jsonl", "model") == {}


def test_a_log_naming_endless_models_costs_bounded_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(traffic_spend, "MAX_GROUPS", 10)
    path = tmp_path / "traffic.jsonl"
    lines = [
        b"".join(proxy_lines("2026-11-24T06:00:00.000Z", f"m{n}\x1b]0;", 0.5)) for n in range(50)
    ]
    path.write_bytes(
        b"".join(lines)
        + b'{"v":1,"model":5,'
        + b"\n"
        + json.dumps(rec(9) | {"model": 5}).encode()
        + b"\n"
    )
    groups = spend(path, "model")
    assert len(groups) == 11 and groups[OTHER].calls == 50 - 10 + 1
    assert sum(t.calls for t in groups.values()) == 51
    assert NONE not in groups  # the 51st (a model that is no string) went to OTHER too


def test_month_counter_counts_from_the_first_of_the_month(tmp_path: Path) -> None:
    path = tmp_path / "traffic.jsonl"
    lines = proxy_lines("2026-10-31T23:59:59.999Z", "gpt-4o", 1.0)
    lines += proxy_lines("2026-11-01T00:00:00.000Z", "gpt-4o", 0.5)
    lines += proxy_lines("2026-11-24T06:00:00.000Z", "gpt-4o", 0.25)
    path.write_bytes(b"".join(lines))
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    assert month_start(now.timestamp()) == "2026-11-01T00:00:00.000Z"
    month = DailyCounter(path, month_start).update(now)
    today = DailyCounter(path).update(now)
    assert (month.calls, month.cost_usd) == (2, 0.75)
    assert (today.calls, today.cost_usd) == (1, 0.25)
    counter = DailyCounter(path, month_start)
    counter.update(now)
    with open(path, "ab") as f:  # appends are read forward
        f.write(b"".join(proxy_lines("2026-11-24T07:00:00.000Z", "x", None)))
    later = counter.update(now)
    assert (later.calls, later.priced, later.cost_usd) == (3, 2, 0.75)
